"""The sandbox's HTTP server: Wistia's Upload API and the Data API parts ingestd uses.

One loopback server answers for both hosts: `POST /` is the Upload API, `/v1/...` the Data API.
Uploads stream from the socket through a multipart parser straight to a file on disk (with
their sha256), so any size works with flat memory. Every request is recorded (`Record`), with
the token removed, for tests to assert on; `/_sandbox/...` exposes the records and the fault
switches to other processes and is neither recorded nor rate limited.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from python_multipart.multipart import MultipartParser, parse_options_header

from ingestd.sandbox.faults import Faults, RateWindow
from ingestd.sandbox.store import IMAGE_MAGIC, VIDEO_LIMIT_ERROR, Media, Store, media_type

CHUNK = 64 * 1024
MAX_FIELD_BYTES = 4 * 1024 * 1024
SECRET_KEYS = {"access_token", "api_password"}
HIDDEN_HEADERS = {"authorization", "cookie"}


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


@dataclass
class Record:
    """One request as the sandbox received it (never with the token)."""

    id: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    started: float
    finished: float | None = None
    status: int | None = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    json: Any = None
    dropped: bool = False
    hashed_id: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    # How the credential came, without the credential: "bearer" (the account's token in the
    # Authorization header), "bearer-other" (another token there), "none".
    auth: str = "none"
    # Whether the account's token also appeared anywhere else: the URL, another header, a
    # form field. A client that keeps its token to the Authorization header never does this.
    token_elsewhere: bool = False

    @property
    def is_upload(self) -> bool:
        return self.method == "POST" and self.path == "/"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Dropped(Exception):
    """The sandbox hangs up on purpose (a fault)."""


class HttpAnswer(Exception):
    """An error answer, raised from deep in a handler."""

    def __init__(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: Sandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (killed, timed out) is part of the game, not a sandbox error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Sandbox:
    """A Wistia stand-in on a loopback port. `start()` serves from a background thread."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        any_token: bool = False,
        processing_seconds: float = 3.0,
        data_dir: Path | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.token = token or secrets.token_hex(32)
        # Standalone without --token: any Bearer token is accepted, but one must be sent.
        self.any_token = any_token
        self.store = Store(processing_seconds)
        self.faults = faults or Faults()
        self.rate_window = RateWindow()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="ingestd-sandbox-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._records: list[Record] = []
        self._lock = threading.Lock()
        self._server = _Server((host, port), _Handler)
        self._server.sandbox = self
        self._thread: threading.Thread | None = None
        self.account = {"id": 1, "name": "ingestd sandbox", "url": "https://sandbox.wistia.test"}

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def upload_url(self) -> str:
        return self.url

    @property
    def api_url(self) -> str:
        return self.url + "v1/"

    def start(self) -> Sandbox:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sandbox", kwargs={"poll_interval": 0.1}
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- records --------------------------------------------------------------------------

    @property
    def records(self) -> list[Record]:
        with self._lock:
            return list(self._records)

    def uploads(self) -> list[Record]:
        """Upload requests that created a media."""
        return [r for r in self.records if r.is_upload and r.status == 200]

    def _new_record(self, **values: Any) -> Record:
        with self._lock:
            record = Record(id=len(self._records) + 1, **values)
            self._records.append(record)
            return record

    def auth_kind(self, header: str | None) -> str:
        if not header or not header.lower().startswith("bearer "):
            return "none"
        offered = header[7:].strip().encode()
        return "bearer" if hmac.compare_digest(offered, self.token.encode()) else "bearer-other"

    def token_seen_in(self, texts: list[str]) -> bool:
        return any(self.token in unquote(text) for text in texts)

    def authorized(self, header: str | None, params: dict[str, str]) -> bool:
        offered = ""
        if header and header.lower().startswith("bearer "):
            offered = header[7:].strip()
        offered = offered or params.get("access_token", "") or params.get("api_password", "")
        if not offered:
            return False
        return self.any_token or hmac.compare_digest(offered.encode(), self.token.encode())


Route = tuple[str, re.Pattern[str], str]
ROUTES: list[Route] = [
    (method, re.compile(pattern), handler)
    for method, pattern, handler in [
        ("POST", r"/", "upload"),
        ("GET", r"/v1/account\.json", "account"),
        ("GET", r"/v1/medias\.json", "medias_list"),
        ("GET", r"/v1/medias/(?P<hid>[^/]+)\.json", "media_show"),
        ("PUT", r"/v1/medias/(?P<hid>[^/]+)\.json", "media_update"),
        ("DELETE", r"/v1/medias/(?P<hid>[^/]+)\.json", "media_delete"),
        ("GET", r"/v1/medias/(?P<hid>[^/]+)/captions\.json", "captions_index"),
        ("POST", r"/v1/medias/(?P<hid>[^/]+)/captions\.json", "captions_create"),
        ("GET", r"/v1/medias/(?P<hid>[^/]+)/captions/(?P<lang>[a-z]+)\.json", "captions_show"),
        ("PUT", r"/v1/medias/(?P<hid>[^/]+)/captions/(?P<lang>[a-z]+)\.json", "captions_update"),
        (
            "DELETE",
            r"/v1/medias/(?P<hid>[^/]+)/captions/(?P<lang>[a-z]+)\.json",
            "captions_delete",
        ),
        ("GET", r"/v1/medias/(?P<hid>[^/]+)/customizations\.json", "custom_show"),
        ("POST", r"/v1/medias/(?P<hid>[^/]+)/customizations\.json", "custom_replace"),
        ("PUT", r"/v1/medias/(?P<hid>[^/]+)/customizations\.json", "custom_update"),
        ("DELETE", r"/v1/medias/(?P<hid>[^/]+)/customizations\.json", "custom_delete"),
        ("GET", r"/v1/projects\.json", "projects_list"),
        ("POST", r"/v1/projects\.json", "project_create"),
        ("GET", r"/v1/projects/(?P<hid>[^/]+)\.json", "project_show"),
    ]
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the records are the log

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # --- the request's life ---------------------------------------------------------------

    def _handle(self, method: str) -> None:
        sandbox = self.server.sandbox
        target = urlsplit(self.path)
        path = target.path or "/"
        query = dict(parse_qsl(target.query, keep_blank_values=True))
        if path.startswith("/_sandbox/"):
            self._admin(method, path)
            return
        faults = sandbox.faults
        if faults.latency:
            time.sleep(faults.latency)
        record = sandbox._new_record(
            method=method,
            path=path,
            query=_hide_secrets(query),
            headers={k: v for k, v in self.headers.items() if k.lower() not in HIDDEN_HEADERS},
            started=time.time(),
            auth=sandbox.auth_kind(self.headers.get("Authorization")),
        )
        self.files: dict[str, UploadedFile] = {}
        try:
            self._serve(method, path, query, record)
        finally:
            record.finished = time.time()
            for upload in self.files.values():
                if record.hashed_id is None:
                    upload.path.unlink(missing_ok=True)  # refused: keep nothing of it

    def _serve(self, method: str, path: str, query: dict[str, str], record: Record) -> None:
        sandbox = self.server.sandbox
        faults = sandbox.faults
        is_upload = method == "POST" and path == "/"
        try:
            drop = faults.roll(faults.drop_rate) or (is_upload and faults.take("drop_uploads"))
            form = self._read_body(record, drop_halfway=drop)
            record.token_elsewhere = sandbox.token_seen_in(
                [self.path, *form.values()]
                + [v for k, v in self.headers.items() if k.lower() != "authorization"]
            )
            params = {**query, **form}
            if method == "POST" and params.get("_method", "").upper() in ("PUT", "DELETE"):
                method = params["_method"].upper()
            status, body, headers = self._answer(method, path, params, record, is_upload)
        except Dropped:
            record.dropped = True
            self._hang_up()
            return
        except HttpAnswer as answer:
            status, body, headers = answer.status, answer.body, answer.headers
        except OSError:
            record.dropped = True  # the client went away mid-request
            self.close_connection = True
            return
        record.status = status
        record.response_headers = dict(headers)
        slow = faults.slow_upload_seconds if is_upload else faults.slow_seconds
        if slow and status < 400:
            time.sleep(slow)
        self._respond(status, body, headers)

    def _answer(
        self, method: str, path: str, params: dict[str, str], record: Record, is_upload: bool
    ) -> tuple[int, Any, dict[str, str]]:
        sandbox = self.server.sandbox
        faults = sandbox.faults
        if faults.auth_fail or not sandbox.authorized(self.headers.get("Authorization"), params):
            html = "<html><body><h1>401 Unauthorized</h1></body></html>"
            return 401, html.encode(), {"Content-Type": "text/html"}
        if faults.rate_limit_per_minute is not None:
            wait = sandbox.rate_window.admit(
                faults.rate_limit_per_minute, faults.rate_window_seconds
            )
            if wait is not None:
                return (
                    faults.rate_limit_status,
                    {"error": "Too many requests. Please slow down."},
                    {"Retry-After": faults.retry_after_header(wait)},
                )
        if faults.roll(faults.error_rate):
            return faults.random_error_status(), {"error": "Internal server error"}, {}
        if is_upload and faults.take("fail_uploads"):
            return faults.fail_status, {"error": "Internal server error"}, {}
        for route_method, pattern, name in ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                handler: Callable[..., tuple[int, Any]] = getattr(self, f"_{name}")
                status, body = handler(params, record, **match.groupdict())
                hid = match.groupdict().get("hid")
                if method != "GET" and hid and path.startswith("/v1/medias/") and status < 300:
                    sandbox.store.touch(hid)  # every change moves `updated` on
                return status, body, {}
        if any(p.fullmatch(path) for _, p, _ in ROUTES):
            return 405, {"error": "Method not allowed"}, {}
        return 404, b"", {}

    # --- bodies ---------------------------------------------------------------------------

    def _read_body(self, record: Record, *, drop_halfway: bool) -> dict[str, str]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise HttpAnswer(411, {"error": "Content-Length required"})
        length = int(self.headers.get("Content-Length") or 0)
        if drop_halfway:
            self._discard(length // 2)
            raise Dropped()
        if length == 0:
            return {}
        kind, options = parse_options_header(self.headers.get("Content-Type", ""))
        if kind == b"multipart/form-data":
            form = self._read_multipart(length, options.get(b"boundary", b""))
            record.files = {
                name: {"filename": f.filename, "size": f.size, "sha256": f.sha256}
                for name, f in self.files.items()
            }
        else:
            raw = self._read_small(length)
            if kind == b"application/json":
                try:
                    record.json = json.loads(raw)
                except ValueError:
                    raise HttpAnswer(400, {"error": "Invalid JSON"}) from None
                return {}
            form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        record.form = _hide_secrets(form)
        return form

    def _read_small(self, length: int) -> bytes:
        if length > MAX_FIELD_BYTES:
            raise HttpAnswer(413, {"error": "Request body too large"})
        data = self.rfile.read(length)
        if len(data) < length:
            raise ConnectionError("client closed the connection mid-body")
        return data

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)

    def _read_multipart(self, length: int, boundary: bytes) -> dict[str, str]:
        if not boundary:
            raise HttpAnswer(400, {"error": "multipart body without a boundary"})
        sandbox = self.server.sandbox
        fields: dict[str, str] = {}
        part: dict[str, Any] = {}

        def on_part_begin() -> None:
            part.clear()
            part.update(headers={}, name=b"", value=b"", data=bytearray(), sink=None)

        def on_header_field(data: bytes, start: int, end: int) -> None:
            part["name"] += data[start:end]

        def on_header_value(data: bytes, start: int, end: int) -> None:
            part["value"] += data[start:end]

        def on_header_end() -> None:
            part["headers"][part["name"].decode("latin-1").lower()] = part["value"]
            part["name"], part["value"] = b"", b""

        def on_headers_finished() -> None:
            _, options = parse_options_header(part["headers"].get("content-disposition", b""))
            part["field"] = options.get(b"name", b"").decode("utf-8", "replace")
            filename = options.get(b"filename")
            if filename is not None:
                name = _html5_unescape(filename.decode("utf-8", "replace"))
                stored = sandbox.data_dir / f"{secrets.token_hex(8)}.upload"
                part["sink"] = open(stored, "wb")  # noqa: SIM115 (closed in on_part_end)
                part["file"] = (name, stored, hashlib.sha256(), hashlib.md5(), [0])

        def on_part_data(data: bytes, start: int, end: int) -> None:
            chunk = data[start:end]
            if part["sink"] is not None:
                _, _, sha, md5, size = part["file"]
                part["sink"].write(chunk)
                sha.update(chunk)
                md5.update(chunk)
                size[0] += len(chunk)
            elif len(part["data"]) + len(chunk) <= MAX_FIELD_BYTES:
                part["data"].extend(chunk)

        def on_part_end() -> None:
            if part["sink"] is not None:
                part["sink"].close()
                name, stored, sha, md5, size = part["file"]
                content_type = part["headers"].get("content-type", b"").decode("latin-1")
                self.files[part["field"]] = UploadedFile(
                    name,
                    content_type or "application/octet-stream",
                    stored,
                    size[0],
                    sha.hexdigest(),
                    md5.hexdigest(),
                )
                part["sink"] = None
            else:
                fields[part["field"]] = part["data"].decode("utf-8", "replace")

        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": on_part_begin,
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_headers_finished": on_headers_finished,
                "on_part_data": on_part_data,
                "on_part_end": on_part_end,
            },
        )
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(CHUNK, remaining))
                if not chunk:
                    raise ConnectionError("client closed the connection mid-upload")
                remaining -= len(chunk)
                parser.write(chunk)
            parser.finalize()
        finally:
            if part.get("sink") is not None:
                part["sink"].close()
        return fields

    # --- answers --------------------------------------------------------------------------

    def _respond(self, status: int, body: Any, headers: dict[str, str]) -> None:
        if isinstance(body, bytes):
            data = body
            content_type = headers.pop("Content-Type", "application/json")
        else:
            data = b"" if body is None else json.dumps(body).encode()
            content_type = "application/json; charset=utf-8"
        self.send_response(status)
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

    # --- Upload API -----------------------------------------------------------------------

    def _upload(self, params: dict[str, str], record: Record) -> tuple[int, Any]:
        store = self.server.sandbox.store
        faults = self.server.sandbox.faults
        upload = self.files.get("file")
        url = params.get("url")
        if upload is None and not url:
            return 400, {"error": "Please provide a file or a url to upload."}
        project = store.daily_uploads_project()
        if params.get("project_id"):
            found = store.find_project(params["project_id"])
            if found is None:
                return 400, {"error": f"Project not found: {params['project_id']}"}
            project = found
        if upload is not None:
            name = params.get("name") or upload.filename
            kind = media_type(upload.filename)
            values: dict[str, Any] = {
                "type": kind,
                "processable": kind != "Image"
                or (upload.begins_with(IMAGE_MAGIC) and not faults.fail_images),
                "size": upload.size,
                "sha256": upload.sha256,
                "md5": upload.md5,
                "content_type": upload.content_type,
            }
        else:
            assert url is not None
            target = urlsplit(url)
            if target.scheme not in ("http", "https") or not target.hostname:
                return 400, {"error": "The url is not a valid http(s) URL."}
            filename = unquote(PurePosixPath(target.path).name)
            name = params.get("name") or filename
            values = {
                "type": _imported_type(target.hostname, target.path, target.query),
                "size": 1,
                "source_url": url,
            }
        if len(name) > 255:
            return 400, {"error": "Name is too long (maximum is 255 characters)."}
        media = store.add_media(
            limit=faults.video_limit,
            name=name,
            description=params.get("description", ""),
            project=project,
            contact_id=params.get("contact_id"),
            **values,
        )
        if media is None:
            return 400, {"error": VIDEO_LIMIT_ERROR}
        if upload is not None:
            kept = upload.path.with_name(f"{media.hashed_id}.bin")
            upload.path.rename(kept)
            upload.path = kept
            media.file_path = kept
        record.hashed_id = media.hashed_id
        return 200, media.to_upload_json()

    # --- Data API -------------------------------------------------------------------------

    def _media_or_404(self, hid: str) -> Media:
        media = self.server.sandbox.store.medias.get(hid)
        if media is None:
            raise HttpAnswer(404, b"")
        return media

    def _account(self, params: dict[str, str], record: Record) -> tuple[int, Any]:
        sandbox = self.server.sandbox
        return 200, {**sandbox.account, "mediaCount": len(sandbox.store.medias)}

    def _medias_list(self, params: dict[str, str], record: Record) -> tuple[int, Any]:
        sandbox = self.server.sandbox
        store = sandbox.store
        if sandbox.faults.list_fail_status:
            raise HttpAnswer(sandbox.faults.list_fail_status, b"<html>list unavailable</html>")
        lag = sandbox.faults.list_lag_seconds
        medias = [m for m in store.list_medias(params) if m.created <= time.time() - lag]
        page, per_page = _paging(params)
        chosen = medias[(page - 1) * per_page : page * per_page]
        return 200, [m.to_json(store.processing_seconds) for m in chosen]

    def _media_show(self, params: dict[str, str], record: Record, hid: str) -> tuple[int, Any]:
        media = self._media_or_404(hid)
        return 200, media.to_json(self.server.sandbox.store.processing_seconds)

    def _media_update(self, params: dict[str, str], record: Record, hid: str) -> tuple[int, Any]:
        media = self._media_or_404(hid)
        still = params.get("new_still_media_id")
        if still is not None:
            image = self.server.sandbox.store.medias.get(still)
            if media.type != "Video" or image is None or image.type != "Image":
                # As the Data API page says: a failure unless a video gets an image.
                return 400, {"error": "The new still must be an image, set on a video."}
        with self.server.sandbox.store.lock:
            if still is not None:
                media.still = still
            if "name" in params:
                media.name = params["name"]
            if "description" in params:
                media.description = params["description"]
            media.updated = time.time()
        return 200, media.to_json(self.server.sandbox.store.processing_seconds)

    def _media_delete(self, params: dict[str, str], record: Record, hid: str) -> tuple[int, Any]:
        media = self._media_or_404(hid)
        self.server.sandbox.store.delete_media(hid)
        return 200, media.to_json(self.server.sandbox.store.processing_seconds)

    def _caption_text(self, params: dict[str, str]) -> str | None:
        upload = self.files.get("caption_file")
        if upload is not None:
            return upload.text()
        return params.get("caption_file")

    def _captions_index(self, params: dict[str, str], record: Record, hid: str) -> tuple[int, Any]:
        media = self._media_or_404(hid)
        return 200, [
            {"captions": {"language": lang, "text": text}} for lang, text in media.captions.items()
        ]

    def _captions_create(self, params: dict[str, str], record: Record, hid: str) -> tuple[int, Any]:
        media = self._media_or_404(hid)
        text = self._caption_text(params)
        if not text:
            return 400, {"error": "caption_file is required"}
        language = params.get("language") or "eng"
        with self.server.sandbox.store.lock:
            if language in media.captions:
                return 400, {"error": "Captions already exist for this video in that language."}
            media.captions[language] = text
        return 200, b""

    def _captions_show(
        self, params: dict[str, str], record: Record, hid: str, lang: str
    ) -> tuple[int, Any]:
        media = self._media_or_404(hid)
        if lang not in media.captions:
            return 404, b""
        return 200, {"captions": {"language": lang, "text": media.captions[lang]}}

    def _captions_update(
        self, params: dict[str, str], record: Record, hid: str, lang: str
    ) -> tuple[int, Any]:
        media = self._media_or_404(hid)
        text = self._caption_text(params)
        if not text:
            return 400, {"error": "caption_file is required"}
        with self.server.sandbox.store.lock:
            if lang not in media.captions:
                return 404, b""
            media.captions[lang] = text
        return 200, b""

    def _captions_delete(
        self, params: dict[str, str], record: Record, hid: str, lang: str
    ) -> tuple[int, Any]:
        media = self._media_or_404(hid)
        with self.server.sandbox.store.lock:
            if media.captions.pop(lang, None) is None:
                return 404, b""
        return 200, b""

    def _custom_show(self, params: dict[str, str], record: Record, hid: str) -> tuple[int, Any]:
        return 200, self._media_or_404(hid).customizations

    def _custom_replace(self, params: dict[str, str], record: Record, hid: str) -> tuple[int, Any]:
        media = self._media_or_404(hid)
        if not isinstance(record.json, dict):
            return 400, {"error": "Expected a JSON object"}
        media.customizations = _stringify(record.json)
        return 201, media.customizations

    def _custom_update(self, params: dict[str, str], record: Record, hid: str) -> tuple[int, Any]:
        media = self._media_or_404(hid)
        if not isinstance(record.json, dict):
            return 400, {"error": "Expected a JSON object"}
        for key, value in record.json.items():
            if value is None:
                media.customizations.pop(key, None)
            else:
                media.customizations[key] = _stringify(value)
        return 200, media.customizations

    def _custom_delete(self, params: dict[str, str], record: Record, hid: str) -> tuple[int, Any]:
        self._media_or_404(hid).customizations = {}
        return 200, b""

    def _projects_list(self, params: dict[str, str], record: Record) -> tuple[int, Any]:
        store = self.server.sandbox.store
        projects = sorted(store.projects.values(), key=lambda p: p.id)
        page, per_page = _paging(params)
        chosen = projects[(page - 1) * per_page : page * per_page]
        return 200, [p.to_json(store.media_count(p)) for p in chosen]

    def _project_create(self, params: dict[str, str], record: Record) -> tuple[int, Any]:
        if not params.get("name"):
            return 400, {"error": "name is required"}
        sandbox = self.server.sandbox
        project = sandbox.store.create_project(params["name"])
        location = f"{sandbox.api_url.rstrip('/')}/projects/{project.hashed_id}.json"
        raise HttpAnswer(201, project.to_json(0), {"Location": location})

    def _project_show(self, params: dict[str, str], record: Record, hid: str) -> tuple[int, Any]:
        store = self.server.sandbox.store
        project = store.find_project(hid)
        if project is None:
            return 404, b""
        medias = [
            m.to_json(store.processing_seconds)
            for m in store.medias.values()
            if m.project is project
        ]
        return 200, {**project.to_json(len(medias)), "medias": medias}

    # --- control from other processes ------------------------------------------------------

    def _admin(self, method: str, path: str) -> None:
        sandbox = self.server.sandbox
        if method == "GET" and path == "/_sandbox/records":
            self._respond(200, [r.to_json() for r in sandbox.records], {})
        elif method == "GET" and path == "/_sandbox/faults":
            self._respond(200, sandbox.faults.as_dict(), {})
        elif method == "POST" and path == "/_sandbox/faults":
            length = int(self.headers.get("Content-Length") or 0)
            try:
                sandbox.faults.update(**json.loads(self.rfile.read(length) or b"{}"))
            except (ValueError, TypeError) as exc:
                self._respond(400, {"error": str(exc)}, {})
                return
            self._respond(200, sandbox.faults.as_dict(), {})
        elif method == "GET" and path == "/_sandbox/medias":
            store = sandbox.store
            self._respond(
                200,
                [
                    {
                        **m.to_json(store.processing_seconds),
                        "sha256": m.sha256,
                        "captions": m.captions,
                        "customizations": m.customizations,
                        "source_url": m.source_url,
                    }
                    for m in store.medias.values()
                ],
                {},
            )
        else:
            self._respond(404, {"error": "unknown sandbox control"}, {})


def _hide_secrets(values: dict[str, str]) -> dict[str, str]:
    return {k: ("[hidden]" if k in SECRET_KEYS else v) for k, v in values.items()}


def _html5_unescape(filename: str) -> str:
    """Multipart file names escape `"`, CR and LF as %22, %0D, %0A (HTML5 and httpx do)."""
    return filename.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


def _paging(params: dict[str, str]) -> tuple[int, int]:
    try:
        page = max(1, int(params.get("page", "1")))
        per_page = min(100, max(1, int(params.get("per_page", "100"))))
    except ValueError:
        raise HttpAnswer(400, {"error": "page and per_page must be integers"}) from None
    return page, per_page


def _imported_type(host: str, path: str, query: str) -> str:
    """What Wistia can make of a URL import: Dropbox links must be in their direct form."""
    if host.endswith("dropbox.com") and host != "dl.dropbox.com" and "/s/raw/" not in path:
        return "UnknownType"  # a share page, not the file: processing fails
    return media_type(path)


def _stringify(value: Any) -> Any:
    """Wistia saves customization values as strings (booleans as "true"/"false")."""
    if isinstance(value, dict):
        return {k: _stringify(v) for k, v in value.items()}
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    return value if isinstance(value, str) else json.dumps(value)
