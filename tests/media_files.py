"""Media files for tests: MP4 boxes and Matroska elements, whole or cut, made from bytes.

They are real containers as far as ingestd's container check reads them (the top-level box
and element headers); the media data inside is pseudo-random.
"""

from __future__ import annotations

import random
import struct


def box(kind: bytes, payload: bytes = b"", *, declared: int | None = None) -> bytes:
    """An ISO box with a 32-bit size (the true one unless `declared`)."""
    size = 8 + len(payload) if declared is None else declared
    return struct.pack(">I4s", size, kind) + payload


def large_box(kind: bytes, payload: bytes = b"", *, declared: int | None = None) -> bytes:
    """An ISO box with size 1 and a 64-bit size after the type."""
    size = 16 + len(payload) if declared is None else declared
    return struct.pack(">I4sQ", 1, kind, size) + payload


FTYP = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")
MOOV = box(b"moov", box(b"mvhd", bytes(100)))


def mp4(
    media_bytes: int = 200_000, seed: int = 0, *, faststart: bool = False, large: bool = False
) -> bytes:
    """A whole MP4: ftyp, then mdat and moov (moov first with `faststart`); `large` gives
    mdat a 64-bit size."""
    data = random.Random(seed).randbytes(media_bytes)
    mdat = large_box(b"mdat", data) if large else box(b"mdat", data)
    return FTYP + (MOOV + mdat if faststart else mdat + MOOV)


def vint(value: int, length: int) -> bytes:
    """An EBML variable-length size of `length` bytes holding `value`."""
    return ((1 << (7 * length)) | value).to_bytes(length, "big")


EBML_HEADER = b"\x1a\x45\xdf\xa3" + vint(20, 1) + bytes(20)
SEGMENT_ID = b"\x18\x53\x80\x67"


def mkv(media_bytes: int = 200_000, seed: int = 0) -> bytes:
    """A whole Matroska file: the EBML header and a Segment of known size."""
    data = random.Random(seed).randbytes(media_bytes)
    return EBML_HEADER + SEGMENT_ID + vint(len(data), 8) + data
