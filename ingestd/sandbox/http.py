"""The sandbox's HTTP plumbing: the server, and the life of one request.

One loopback server answers for every host: `POST /` is the Upload API, `/v1/...` the Data
API, `/modern/...` the newer API, `/_sandbox/...` the controls for tests (admin.py, neither
recorded nor rate limited). A request is recorded (`Record`, without the token), its body
read (bodies.py), then checked in Wistia's order: the token (401), the rate limit (429), the
random and deterministic faults, the route (404/405), the plan (403) and the token's scope
(401), and only then handed to its endpoint.
"""

from __future__ import annotations

import hmac
import json
import socket
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from python_multipart.multipart import parse_options_header

from ingestd.sandbox import admin
from ingestd.sandbox.bodies import (
    BodyError,
    UploadedFile,
    discard,
    rails_params,
    read_multipart,
    read_small,
)
from ingestd.sandbox.records import HIDDEN_HEADERS, Record, hide_secrets
from ingestd.sandbox.routing import Answer, HttpAnswer, Request, Route, error_body
from ingestd.sandbox.shapes import forbidden_message

if TYPE_CHECKING:
    from ingestd.sandbox.server import Sandbox


# Features whose changes move a media's `updated` on (a swap moves it when its job finishes).
_EDITS = ("medias", "captions", "customizations")


class Dropped(Exception):
    """The sandbox hangs up on purpose (a fault)."""


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: Sandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (killed, timed out) is part of the game, not a sandbox error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def auth_kind(sandbox: Sandbox, header: str | None) -> str:
    if not header or not header.lower().startswith("bearer "):
        return "none"
    offered = header[7:].strip().encode()
    return "bearer" if hmac.compare_digest(offered, sandbox.token.encode()) else "bearer-other"


def authorized(sandbox: Sandbox, header: str | None, params: dict[str, Any]) -> bool:
    offered = ""
    if header and header.lower().startswith("bearer "):
        offered = header[7:].strip()
    for key in ("access_token", "api_password"):
        if not offered and isinstance(params.get(key), str):
            offered = params[key]
    if not offered:
        return False
    return sandbox.any_token or hmac.compare_digest(offered.encode(), sandbox.token.encode())


def unauthorized(sandbox: Sandbox, path: str, code: str = "unauthorized_credentials") -> Answer:
    """The Upload API's 401 is text/html; the Data API's (and the newer API's) is JSON with a
    code: `unauthorized_credentials` for a refused token, `unauthorized_scope` for a token
    without the needed permission."""
    if path == "/":
        html = b"<html><body><h1>401 Unauthorized</h1></body></html>"
        return Answer(401, html, {"Content-Type": "text/html"})
    if code == "unauthorized_scope":
        message = "This token does not have the permission this request needs."
    else:
        message = "Invalid credentials."
    return Answer(401, {"code": code, "error": message})


def rate_limited(sandbox: Sandbox, wait: float) -> Answer:
    faults = sandbox.faults
    headers = {"Retry-After": faults.retry_after_header(wait)}
    if faults.rate_limit_body == "json":
        return Answer(faults.rate_limit_status, {"error": "Rate limit exceeded"}, headers)
    return Answer(
        faults.rate_limit_status,
        b"Rate limit exceeded",
        {**headers, "Content-Type": "text/plain; charset=utf-8"},
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the records are the log

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # --- the request's life ---------------------------------------------------------------

    def _handle(self, method: str) -> None:
        sandbox = self.server.sandbox
        target = urlsplit(self.path)
        path = target.path or "/"
        if path.startswith("/_sandbox/"):
            self._admin(method, path)
            return
        if sandbox.faults.latency:
            time.sleep(sandbox.faults.latency)
        pairs = parse_qsl(target.query, keep_blank_values=True)
        record = sandbox.new_record(
            method=method,
            path=path,
            query=hide_secrets(dict(pairs)),
            headers={k: v for k, v in self.headers.items() if k.lower() not in HIDDEN_HEADERS},
            started=time.time(),
            auth=auth_kind(sandbox, self.headers.get("Authorization")),
        )
        files: dict[str, UploadedFile] = {}
        try:
            self._serve(method, path, pairs, record, files)
        finally:
            record.finished = time.time()
            for upload in files.values():
                if record.hashed_id is None:
                    upload.path.unlink(missing_ok=True)  # refused: keep nothing of it

    def _serve(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        record: Record,
        files: dict[str, UploadedFile],
    ) -> None:
        sandbox = self.server.sandbox
        faults = sandbox.faults
        is_upload = method == "POST" and path == "/"
        try:
            drop = faults.roll(faults.drop_rate) or (is_upload and faults.take("drop_uploads"))
            form, body_json = self._read_body(record, files, drop_halfway=drop)
            params = rails_params(query + form)
            if isinstance(body_json, dict):
                params.update(body_json)  # Rails merges a JSON body's keys into params
            record.params = hide_secrets(params)
            record.token_elsewhere = sandbox.token_seen_in(
                [self.path, *(v for _, v in form)]
                + [v for k, v in self.headers.items() if k.lower() != "authorization"]
            )
            if method == "POST" and str(params.get("_method", "")).upper() in ("PUT", "DELETE"):
                method = str(params["_method"]).upper()
            request = Request(
                sandbox, method, path, params, body_json, files, record, dict(self.headers)
            )
            answer = self._answer(request, is_upload)
        except Dropped:
            record.dropped = True
            self._hang_up()
            return
        except BodyError as exc:
            answer = Answer(exc.status, error_body(sandbox, exc.status, exc.message))
        except HttpAnswer as raised:
            answer = raised.answer
        except OSError:
            record.dropped = True  # the client went away mid-request
            self.close_connection = True
            return
        record.status = answer.status
        record.response_headers = dict(answer.headers)
        slow = faults.slow_upload_seconds if is_upload else faults.slow_seconds
        if slow and answer.status < 400:
            time.sleep(slow)
        self._respond(answer)

    def _answer(self, request: Request, is_upload: bool) -> Answer:
        sandbox = request.sandbox
        faults = sandbox.faults
        auth = self.headers.get("Authorization")
        if faults.auth_fail or not authorized(sandbox, auth, request.params):
            return unauthorized(sandbox, request.path)
        if faults.rate_limit_per_minute is not None:
            wait = sandbox.rate_window.admit(
                faults.rate_limit_per_minute, faults.rate_window_seconds
            )
            if wait is not None:
                return rate_limited(sandbox, wait)
        if faults.roll(faults.error_rate):
            return Answer(faults.random_error_status(), {"error": "Internal server error"})
        if is_upload and faults.take("fail_uploads"):
            return Answer(faults.fail_status, {"error": "Internal server error"})
        sandbox.store.settle()  # background jobs whose time has come are done first
        route = self._route(request)
        if route is None:
            return self._no_route(request)
        request.record.endpoint = route.name
        refusal = self._refusal(route, request)
        if refusal is not None:
            return refusal
        answer = route.handler(request)
        hid = request.match.get("hid")
        changed = request.method != "GET" and answer.status < 300
        if changed and hid and route.feature in _EDITS:
            sandbox.store.touch(hid)  # every change moves `updated` on
        return answer

    def _route(self, request: Request) -> Route | None:
        for route in self.server.sandbox.routes:
            match = route.pattern.fullmatch(request.path)
            if match and route.method == request.method and route.serves(request.sandbox):
                request.match = match.groupdict()
                return route
        return None

    def _no_route(self, request: Request) -> Answer:
        sandbox = request.sandbox
        known = any(r.pattern.fullmatch(request.path) and r.serves(sandbox) for r in sandbox.routes)
        if known:
            return Answer(405, error_body(sandbox, 405, "Method not allowed"))
        return Answer(404, b"")

    def _refusal(self, route: Route, request: Request) -> Answer | None:
        """403 where the plan lacks the feature, 401 where the token lacks the scope."""
        faults = request.sandbox.faults
        names = route.names(request)
        refused = faults.refuses("forbidden", names)
        if refused is not None:
            feature = refused if refused in ("tags", "still") else route.feature
            message = forbidden_message(feature)
            return Answer(403, error_body(request.sandbox, 403, message, "forbidden"))
        if faults.refuses("scope_denied", names) is not None:
            return unauthorized(request.sandbox, request.path, "unauthorized_scope")
        return None

    # --- bodies ---------------------------------------------------------------------------

    def _read_body(
        self, record: Record, files: dict[str, UploadedFile], *, drop_halfway: bool
    ) -> tuple[list[tuple[str, str]], Any]:
        """The form's (name, value) pairs and the parsed JSON body (None if not JSON)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise BodyError(411, "Content-Length required")
        length = int(self.headers.get("Content-Length") or 0)
        if drop_halfway:
            discard(self.rfile, length // 2)
            raise Dropped()
        if length == 0:
            return [], None
        kind, options = parse_options_header(self.headers.get("Content-Type", ""))
        if kind == b"multipart/form-data":
            boundary = options.get(b"boundary", b"")
            data_dir = self.server.sandbox.data_dir
            try:
                pairs = read_multipart(self.rfile, length, boundary, data_dir, files)
            finally:
                record.files = {
                    name: {"filename": f.filename, "size": f.size, "sha256": f.sha256}
                    for name, f in files.items()
                }
            record.form = hide_secrets(dict(pairs))
            return pairs, None
        raw = read_small(self.rfile, length)
        if kind == b"application/json":
            try:
                record.json = json.loads(raw)
            except ValueError:
                raise BodyError(400, "Invalid JSON") from None
            return [], record.json
        pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        record.form = hide_secrets(dict(pairs))
        return pairs, None

    # --- answers --------------------------------------------------------------------------

    def _respond(self, answer: Answer) -> None:
        headers = dict(answer.headers)
        if isinstance(answer.body, bytes):
            data = answer.body
            content_type = headers.pop("Content-Type", "application/json")
        else:
            data = b"" if answer.body is None else json.dumps(answer.body).encode()
            content_type = "application/json; charset=utf-8"
        self.send_response(answer.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            # Linger 0: a reset, as when a proxy or the network gives up on a connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _admin(self, method: str, path: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = read_small(self.rfile, length) if length else b""
        except BodyError as exc:
            self._respond(Answer(exc.status, {"error": exc.message}))
            return
        self._respond(admin.serve(self.server.sandbox, method, path, body))
