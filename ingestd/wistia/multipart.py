"""One file as multipart/form-data, streamed from its descriptor: what a browser form (and
httpx) would send, with a Content-Length computed from fstat, never chunked; memory stays flat
whatever the file's size."""

from __future__ import annotations

import mimetypes
import os
import secrets
import threading
from collections.abc import Callable, Iterator

from ingestd.core import liveness
from ingestd.core.errors import Cancelled, TransientError
from ingestd.wistia.limiter import Throttle

READ_CHUNK = 1024 * 1024  # large reads: per-chunk work is paid once per MiB, not per 64 KiB
# Characters that HTML5 (and Wistia's form parser) escape inside a quoted multipart parameter.
_FORM_ESCAPES = {'"': "%22", "\\": "\\\\"} | {chr(c): f"%{c:02X}" for c in range(32) if c != 27}


class MultipartUpload:
    """One file as multipart/form-data, streamed from its descriptor in large reads.

    The body is what a browser form (and httpx) would send: the fields, then the file part.
    Its length is known from fstat, so it goes with a Content-Length, never chunked.
    """

    def __init__(self, fd: int, filename: str, fields: dict[str, str]) -> None:
        self.fd = fd
        self.size = os.fstat(fd).st_size
        boundary = secrets.token_hex(16)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        parts = [
            f"--{boundary}\r\nContent-Disposition: form-data; {_param('name', name)}"
            f"\r\n\r\n".encode()
            + value.encode()
            + b"\r\n"
            for name, value in fields.items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f"{_param('filename', filename)}\r\nContent-Type: {content_type}\r\n\r\n".encode()
        )
        self.head = b"".join(parts)
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(self.head) + self.size + len(self.tail)),
        }

    def body(
        self,
        on_progress: Callable[[int], None],
        stop: threading.Event,
        throttle: Throttle,
        allow: float,
    ) -> Iterator[bytes]:
        """The body's chunks. A failing read of our own file is retried later like a network
        error (an attempt counted); a file that shrank ends the body short, which the server
        and h11 refuse, and the uploader then sees the file changed."""
        yield self.head
        sent = 0
        os.lseek(self.fd, 0, os.SEEK_SET)
        while sent < self.size:
            if stop.is_set():
                raise Cancelled()
            try:
                chunk = os.read(self.fd, min(throttle.chunk_size(READ_CHUNK), self.size - sent))
            except OSError as exc:  # EIO, a stale NFS handle
                raise TransientError(
                    f"cannot read the file while sending it: {exc.strerror}"
                ) from None
            if not chunk:
                break
            throttle.take(len(chunk), stop)
            sent += len(chunk)
            liveness.beat(allow)  # after the last chunk, Wistia may take this long to answer
            on_progress(sent)
            yield chunk
        yield self.tail


def _param(name: str, value: str) -> str:
    escaped = "".join(_FORM_ESCAPES.get(ch, ch) for ch in value)
    return f'{name}="{escaped}"'
