#!/usr/bin/env python3
"""A minimal upload sink: reads each request's body as fast as the kernel delivers it, throws
it away, and answers like Wistia's Upload API. With it, an upload benchmark measures the
client, not the server (the sandbox parses multipart in Python, which is slower than curl).

    python benchmarks/sink.py --port 18799     # serves until killed

Loopback only. One connection at a time per thread; keep-alive is honoured.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading

ANSWER = json.dumps(
    {
        "id": 1,
        "hashed_id": "sink000001",
        "name": "sink",
        "created": "2026-01-01T00:00:00+00:00",
        "status": 0,
    }
).encode()
BUFFER = 4 * 1024 * 1024


def _handle(conn: socket.socket) -> None:
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    pending = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in pending:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                pending += chunk
            head, _, pending = pending.partition(b"\r\n\r\n")
            length, expect = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
                if name.strip().lower() == b"expect" and b"100-continue" in value.lower():
                    expect = True
            if expect:  # as any server does (curl otherwise waits a second before the body)
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            left = length - len(pending)
            pending = b"" if left >= 0 else pending[length:]
            while left > 0:
                got = conn.recv_into(view, min(left, BUFFER))
                if not got:
                    return
                left -= got
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(ANSWER)}\r\n\r\n".encode()
                + ANSWER
            )


def serve(port: int) -> None:
    server = socket.create_server(("127.0.0.1", port), reuse_port=False)
    server.listen(16)
    print(f"sink listening on http://127.0.0.1:{server.getsockname()[1]}/", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_handle, args=(conn,), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
