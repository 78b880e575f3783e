"""Whole containers: is a media file's container complete, judged by its headers alone?

A quiet file whose writer is gone can still be half a file: a copy that died, a remote writer
that stalled. Two container families say in their headers how long they are, so a cut is
visible without reading the media data:

- ISO media (mp4, mov, m4v, m4a, 3gp: the first box is `ftyp`): the top-level boxes, each
  starting with its size (32-bit, or 1 then a 64-bit size, or 0 for "to the end of the file"),
  must run exactly to the end of the file and include `moov` (the index most encoders write
  last; without it nothing plays).
- Matroska (mkv, webm: the EBML magic `1A 45 DF A3`): the EBML header must be whole and the
  Segment's size must fit the file (an "unknown" size, as live writers leave it, cannot be
  checked and passes).

Only headers are read (a few bytes per top-level box), never the media data. Files that begin
otherwise get no check. `problem` returns the reason a file is not whole, or None.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

ReadAt = Callable[[int, int], bytes]  # (offset, length) -> at most length bytes

EBML_MAGIC = b"\x1a\x45\xdf\xa3"
MATROSKA_SEGMENT = 0x18538067
# A hostile file of millions of tiny boxes must not keep the settle step busy: past this many
# top-level boxes (a fragmented MP4 of a long film has some thousands) the walk stops, and the
# file is taken as it is.
MAX_TOP_LEVEL_BOXES = 200_000
# Elements between Matroska's EBML header and its Segment (Void padding, at most a few).
MAX_ELEMENTS_BEFORE_SEGMENT = 64


def problem(fd: int, size: int, beat: Callable[[], None] | None = None) -> str | None:
    """Why the file open at `fd` (of `size` bytes) is not a whole container, or None.
    `beat` is called per read (a walk on a slow share is slow, not stuck)."""

    def read_at(offset: int, length: int) -> bytes:
        if beat is not None:
            beat()
        return os.pread(fd, length, offset)

    return problem_in(read_at, size)


def problem_in(read_at: ReadAt, size: int) -> str | None:
    """`problem` for any reader: unit tests hand it crafted bytes."""
    start = read_at(0, 8)
    if len(start) == 8 and start[4:8] == b"ftyp":
        return iso_problem(read_at, size)
    if start[:4] == EBML_MAGIC:
        return matroska_problem(read_at, size)
    return None


# --- ISO base media (MP4, QuickTime) ----------------------------------------------------------


def iso_problem(read_at: ReadAt, size: int) -> str | None:
    """Walk the top-level boxes: they must end exactly at the file's end and include moov."""
    offset, boxes, has_moov = 0, 0, False
    while offset < size:
        boxes += 1
        if boxes > MAX_TOP_LEVEL_BOXES:
            return None
        header = read_at(offset, 16)
        if len(header) < 8:
            return "incomplete MP4: the file ends inside a box header"
        box_size, kind = struct.unpack(">I4s", header[:8])
        name = box_name(kind)
        header_size = 8
        if box_size == 1:  # a 64-bit size follows the type
            if len(header) < 16:
                return f"incomplete MP4: the file ends inside the header of box '{name}'"
            (box_size,) = struct.unpack(">Q", header[8:16])
            header_size = 16
        elif box_size == 0:  # the box runs to the end of the file
            box_size = size - offset
        if not _is_box_type(kind):
            if kind == b"\0\0\0\0":  # space set aside (preallocated) and not written yet
                return "incomplete MP4: it ends in zeros where a box should begin"
            return f"not a whole MP4: '{name}' where a box should begin"
        if box_size < header_size:
            return f"not a whole MP4: box '{name}' declares {box_size} bytes, less than its header"
        if offset + box_size > size:
            return f"incomplete MP4: box '{name}' runs past the end of the file"
        has_moov = has_moov or kind == b"moov"
        offset += box_size
    if not has_moov:
        return "incomplete MP4: it has no 'moov' box (the index, which most encoders write last)"
    return None


def _is_box_type(kind: bytes) -> bool:
    """Top-level box types are four printable ASCII characters (ftyp, moov, mdat, free...)."""
    return all(32 <= b < 127 for b in kind)


def box_name(kind: bytes) -> str:
    """A box type for people: printable ASCII as is, any other byte as \\xNN."""
    return "".join(chr(b) if 32 <= b < 127 and b != 0x27 else f"\\x{b:02x}" for b in kind)


# --- Matroska (MKV, WebM) ---------------------------------------------------------------------


class _Malformed(Exception):
    """The bytes cannot be an EBML element: the reason says which part."""


def _vint_length(first: int, longest: int) -> int:
    """How many bytes a variable-length integer takes, from its first byte's leading zeros."""
    for length in range(1, longest + 1):
        if first & (0x80 >> (length - 1)):
            return length
    raise _Malformed("malformed element")


def _element(read_at: ReadAt, offset: int) -> tuple[int, int, int | None] | None:
    """(id, where its data starts, its data size or None for "unknown") of the element at
    `offset`; None when the file ends inside its header."""
    head = read_at(offset, 12)  # at most 4 bytes of id and 8 of size
    if not head:
        return None
    id_length = _vint_length(head[0], 4)
    if len(head) < id_length + 1:
        return None
    size_length = _vint_length(head[id_length], 8)
    if len(head) < id_length + size_length:
        return None
    element_id = int.from_bytes(head[:id_length], "big")
    raw = int.from_bytes(head[id_length : id_length + size_length], "big")
    value_bits = (1 << (7 * size_length)) - 1
    value = raw & value_bits
    return element_id, offset + id_length + size_length, None if value == value_bits else value


def matroska_problem(read_at: ReadAt, size: int) -> str | None:
    """The EBML header whole, and the Segment's size within the file (or unknown)."""
    try:
        return _matroska_problem(read_at, size)
    except _Malformed as exc:
        return f"not a whole Matroska file: {exc}"


def _matroska_problem(read_at: ReadAt, size: int) -> str | None:
    header = _element(read_at, 0)
    if header is None:
        return "incomplete Matroska: the file ends inside its EBML header"
    _, data, length = header
    if length is None:
        raise _Malformed("the EBML header declares no size")
    offset = data + length
    if offset > size:
        return "incomplete Matroska: the file ends inside its EBML header"
    for _ in range(MAX_ELEMENTS_BEFORE_SEGMENT):
        if offset >= size:
            return "incomplete Matroska: the file ends before its Segment"
        element = _element(read_at, offset)
        if element is None:
            return "incomplete Matroska: the file ends inside an element header"
        element_id, data, length = element
        if element_id == MATROSKA_SEGMENT:
            if length is not None and data + length > size:
                return "incomplete Matroska: the Segment runs past the end of the file"
            return None
        if length is None:
            raise _Malformed("an element before the Segment declares no size")
        offset = data + length
    raise _Malformed("no Segment after the EBML header")
