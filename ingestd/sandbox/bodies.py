"""Request bodies: multipart streamed to disk, small forms and JSON, and parameters read the
way Wistia's Rails app reads them.

Uploads stream from the socket through a multipart parser straight to a file (with their
sha256 and md5), so any size works with flat memory. Parameters from the query string, a form
and a JSON body are merged into one dict, as Rails merges them: a key ending in `[]`
(`tags[]=a&tags[]=b`) is a list, and of a plain key sent twice the last one wins.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from python_multipart.multipart import MultipartParser, parse_options_header

CHUNK = 64 * 1024
MAX_FIELD_BYTES = 4 * 1024 * 1024


class BodyError(Exception):
    """A body the sandbox refuses: answered with `status` and `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class UploadedFile:
    filename: str
    content_type: str
    path: Path
    size: int
    sha256: str
    md5: str

    def text(self) -> str:
        return self.path.read_bytes().decode("utf-8", errors="replace")

    def begins_with(self, magics: tuple[bytes, ...]) -> bool:
        with open(self.path, "rb") as kept:
            head = kept.read(16)
        return head.startswith(magics)


def rails_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in pairs:
        if key.endswith("[]"):
            listed = params.setdefault(key[:-2], [])
            if isinstance(listed, list):
                listed.append(value)
            else:
                params[key[:-2]] = [value]
        else:
            params[key] = value
    return params


def read_small(rfile: IO[bytes], length: int) -> bytes:
    if length > MAX_FIELD_BYTES:
        raise BodyError(413, "Request body too large")
    data = rfile.read(length)
    if len(data) < length:
        raise ConnectionError("client closed the connection mid-body")
    return data


def discard(rfile: IO[bytes], length: int) -> None:
    while length > 0:
        chunk = rfile.read(min(CHUNK, length))
        if not chunk:
            return
        length -= len(chunk)


def html5_unescape(filename: str) -> str:
    """Multipart file names escape `"`, CR and LF as %22, %0D, %0A (HTML5 and httpx do)."""
    return filename.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


class _Part:
    """One multipart part while it is being read: a small field in memory, or a file on disk."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.headers: dict[str, bytes] = {}
        self.header_name = b""
        self.header_value = b""
        self.field = ""
        self.data = bytearray()
        self.sink: IO[bytes] | None = None
        self.filename = ""
        self.stored: Path | None = None
        self.sha = hashlib.sha256()
        self.md5 = hashlib.md5()
        self.size = 0

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", b""))
        self.field = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is not None:
            self.filename = html5_unescape(filename.decode("utf-8", "replace"))
            self.stored = self.data_dir / f"{secrets.token_hex(8)}.upload"
            self.sink = open(self.stored, "wb")  # noqa: SIM115 (closed in finish)

    def write(self, chunk: bytes) -> None:
        if self.sink is not None:
            self.sink.write(chunk)
            self.sha.update(chunk)
            self.md5.update(chunk)
            self.size += len(chunk)
        elif len(self.data) + len(chunk) <= MAX_FIELD_BYTES:
            self.data.extend(chunk)

    def finish(self) -> UploadedFile | None:
        if self.sink is None or self.stored is None:
            return None
        self.sink.close()
        self.sink = None
        content_type = self.headers.get("content-type", b"").decode("latin-1")
        return UploadedFile(
            self.filename,
            content_type or "application/octet-stream",
            self.stored,
            self.size,
            self.sha.hexdigest(),
            self.md5.hexdigest(),
        )


def read_multipart(
    rfile: IO[bytes], length: int, boundary: bytes, data_dir: Path, files: dict[str, UploadedFile]
) -> list[tuple[str, str]]:
    """The body's fields as (name, value) pairs; its files land in `files` as they finish (so
    the caller can remove them even when the body breaks off)."""
    if not boundary:
        raise BodyError(400, "multipart body without a boundary")
    pairs: list[tuple[str, str]] = []
    part = _Part(data_dir)

    def on_part_begin() -> None:
        nonlocal part
        part = _Part(data_dir)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part.header_name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part.header_value += data[start:end]

    def on_header_end() -> None:
        part.headers[part.header_name.decode("latin-1").lower()] = part.header_value
        part.header_name, part.header_value = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part.write(data[start:end])

    def on_part_end() -> None:
        uploaded = part.finish()
        if uploaded is not None:
            files[part.field] = uploaded
        else:
            pairs.append((part.field, part.data.decode("utf-8", "replace")))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": lambda: part.headers_finished(),
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    remaining = length
    try:
        while remaining > 0:
            chunk = rfile.read(min(CHUNK, remaining))
            if not chunk:
                raise ConnectionError("client closed the connection mid-upload")
            remaining -= len(chunk)
            parser.write(chunk)
        parser.finalize()
    finally:
        if part.sink is not None:  # broken off mid-file: keep nothing of it
            part.sink.close()
            if part.stored is not None:
                part.stored.unlink(missing_ok=True)
    return pairs
