"""Real receivers on loopback for messages and heartbeats: an HTTP server that takes Apprise's
json:// posts and heartbeat GETs, and an SMTP server (aiosmtpd) with a login, as a mail
provider would have. Nothing of Apprise is mocked: the tests hear what a service would."""

from __future__ import annotations

import json
import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HttpReceiver:
    """Records each POST (a json:// message: `messages`) and each GET (a heartbeat: `pings`,
    with when it came and its headers); answers `status`."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []  # the messages it took (2xx)
        self.refused: list[dict[str, Any]] = []  # the ones it answered otherwise
        self.pings: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
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
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def json_url(self, path: str = "/hook") -> str:
        """The Apprise URL that posts messages here."""
        return f"json://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

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
