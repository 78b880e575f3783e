"""Real receivers on loopback for messages, webhooks and heartbeats: an HTTP server that takes
Apprise's json:// posts, webhook posts and heartbeat GETs (on IPv4 or IPv6 loopback, plain or
TLS), an SMTP server (aiosmtpd) with a login, as a mail provider would have, and the hostile
ends a deadline must survive: a listener that never accepts, a server that drips its answer
or its TLS handshake. Nothing of ours or Apprise's is mocked: the tests hear what a service
would."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class HttpReceiver:
    """Records each POST (a json:// message: `messages`) and each GET (a heartbeat: `pings`,
    with when it came and its headers), and every request's line and headers (`requests`);
    answers `status`, with `answer` as its body (or the credentials it got). On `host` (IPv6
    loopback too) and `port` (0: any free one), over TLS with `tls` (a server context)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.messages: list[dict[str, Any]] = []  # the messages it took (2xx)
        self.refused: list[dict[str, Any]] = []  # the ones it answered otherwise
        self.pings: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.answer = b""
        self.quote_credentials = False  # answer with the Basic credentials it was sent
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def parse_request(self) -> bool:
                parsed = super().parse_request()
                if parsed:
                    receiver.requests.append(
                        {"line": self.requestline, "headers": dict(self.headers)}
                    )
                return parsed

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                taken = 200 <= receiver.status < 300
                (receiver.messages if taken else receiver.refused).append(json.loads(raw))
                self._answer()

            def do_GET(self) -> None:
                receiver.pings.append(
                    {"at": time.monotonic(), "path": self.path, "headers": dict(self.headers)}
                )
                self._answer()

            def _answer(self) -> None:
                answer = receiver.answer
                if receiver.quote_credentials:  # as a careless service's error page might
                    sent = self.headers.get("Authorization", "")
                    decoded = base64.b64decode(sent.removeprefix("Basic ")).decode()
                    answer = f"who is {sent} ({decoded})?".encode()
                self.send_response(receiver.status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True

        self.server = Server((host, port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        self.host = f"[{host}]" if ":" in host else host
        self.scheme = "https" if tls is not None else "http"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def json_url(self, path: str = "/hook") -> str:
        """The Apprise URL that posts messages here."""
        return f"json://{self.host}:{self.port}{path}"

    def http_url(self, path: str, userinfo: str = "") -> str:
        """This receiver's URL (https:// over TLS), with `user:password@` when given."""
        return f"{self.scheme}://{userinfo}{self.host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    """A mail server on loopback that wants a login (over plain SMTP: it is loopback) and
    keeps every message it is given, parsed."""

    def __init__(self, user: str, password: str) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.mails: list[EmailMessage] = []
        self.envelopes: list[Any] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                receiver.envelopes.append(envelope)
                parsed = message_from_bytes(envelope.original_content, policy=policy.default)
                receiver.mails.append(parsed)  # type: ignore[arg-type]
                return "250 OK"

        def login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            good = (
                isinstance(data, LoginPassword)
                and data.login == user.encode()
                and data.password == password.encode()
            )
            return AuthResult(success=good)

        with socket.socket() as probe:  # aiosmtpd needs a port chosen up front
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=login,
            auth_require_tls=False,
        )
        self.controller.start()

    def url(self, user: str, password: str, to: str, sender: str) -> str:
        """The Apprise URL that mails `to` through this server, without TLS (loopback)."""
        return (
            f"mailto://{user}:{password}@127.0.0.1:{self.port}?to={to}&from={sender}&mode=insecure"
        )

    def close(self) -> None:
        self.controller.stop()


class StuckListener:
    """A TCP listener whose accept queue is full and never drained: a connect to it waits
    (its SYNs are dropped) as one to a host that never answers would."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(0)
        self.port = self.server.getsockname()[1]
        self._fillers: list[socket.socket] = []
        for _ in range(16):
            filler = socket.socket()
            filler.settimeout(0.3)
            try:
                filler.connect(("127.0.0.1", self.port))
            except OSError:  # the queue is full: this one waited in vain
                filler.close()
                return
            self._fillers.append(filler)
        raise RuntimeError("the listener's accept queue never filled")

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self.server.close()


class DrippingServer:
    """Takes what a client says first, then answers a byte every 0.1 s for as long as the
    client stays (at most a minute): with `tls`, a TLS record header and its body, so the
    handshake never ends; otherwise an HTTP status line and a header that never ends. Each
    read the client makes is quick: only a deadline ends it. Records when each connection
    came and when the client left."""

    def __init__(self, tls: bool = False) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.answer = b"\x16\x03\x03\x40\x00" if tls else b"HTTP/1.1 200 OK\r\nX-Drip: "
        self.connections: list[dict[str, float | None]] = []
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            record: dict[str, float | None] = {"came": time.monotonic(), "left": None}
            self.connections.append(record)
            threading.Thread(target=self._drip, args=(conn, record), daemon=True).start()

    def _drip(self, conn: socket.socket, record: dict[str, float | None]) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                for n in range(600):
                    if self.closed.wait(0.1):
                        break
                    conn.sendall(self.answer[n : n + 1] or b"a")
            except OSError:  # the client left
                pass
            record["left"] = time.monotonic()

    def close(self) -> None:
        self.closed.set()
        self.server.close()


def tls_for_loopback(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A certificate authority of the test's own (made with the openssl command) and a
    server certificate it signed for 127.0.0.1, ::1 and localhost: the server's TLS context,
    and the authority's file for clients to trust (SSL_CERT_FILE)."""
    ca_key, ca, key, request, cert = (
        folder / n for n in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem")
    )
    names = folder / "names.cnf"
    names.write_text("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        [
            "req",
            "-x509",
            *ec,
            "-keyout",
            ca_key,
            "-out",
            ca,
            "-days",
            "2",
            "-subj",
            "/CN=ingestd test authority",
        ],
        ["req", *ec, "-keyout", key, "-out", request, "-subj", "/CN=localhost"],
        [
            "x509",
            "-req",
            "-in",
            request,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "2",
            "-extfile",
            names,
        ],
    ):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, ca


class ForwardProxy:
    """An http:// proxy on loopback, as a server's outbound proxy: a CONNECT opens a tunnel to
    the host and port asked for; any other request (in absolute form) is passed on as it came
    to the host its URL names. Records each request's line and headers (`asked`); answers
    `status` itself instead when it is not 200 (407: credentials wanted)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.asked: list[dict[str, Any]] = []
        self.status = 200
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            client.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                more = client.recv(65536)
                if not more:
                    return
                head += more
            line, *fields = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            headers = dict(field.split(": ", 1) for field in fields)
            self.asked.append({"line": line, "headers": headers})
            if self.status != 200:
                client.sendall(f"HTTP/1.1 {self.status} No\r\nContent-Length: 0\r\n\r\n".encode())
                return
            method, where, _ = line.split(" ")
            if method == "CONNECT":
                host, _, port = where.rpartition(":")
                upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                parts = urlsplit(where)
                upstream = socket.create_connection((parts.hostname, parts.port), timeout=10)
                upstream.sendall(head)
            with upstream:
                threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
                _pipe(client, upstream)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Bytes from `source` to `sink` until either end goes."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
