"""The status page (`web.listen`): what `ingestd status` shows, for the people who drop files
and have no shell on the server.

    GET /                    the page: counts, the hold in plain words, every active job with
                             a progress bar, the recent jobs (done ones linked to Wistia),
                             a filter by folder and by state; live, and readable without
                             JavaScript (the browser then refreshes it)
    GET /api/status.json     exactly what `ingestd status --json` prints (status.as_json)
    GET /api/jobs/<id>.json  exactly what `ingestd status --json <id>` prints

Flask (routing, Jinja2 templates that escape every name) served by waitress, a production
WSGI server whose own event loop reads requests before any thread sees them: a slowloris
or a huge header costs a socket, never a worker; idle ones are cut off (`channel_timeout`),
huge headers refused (`max_request_header_size`), connections capped (MAX_CONNECTIONS). A
client that holds more connections than that still shuts others out of the page (never the
daemon): for the open internet, put a proxy in front. It runs in its own
process (spawned by the daemon, ended with it), reading the ledger read-only like `ingestd
status`: a flood of
requests competes for no lock and no interpreter with the uploads. The view is built at most
once a second, however many ask. Nothing on it changes anything; the token never appears
(every answer is redacted like `status`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ctypes
import hashlib
import hmac
import ipaddress
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, abort, render_template, request

from ingestd import logs
from ingestd.config import Settings
from ingestd.errors import IngestdError
from ingestd.files import display
from ingestd.ledger import Ledger
from ingestd.redact import add_secret
from ingestd.status import as_json, history, snapshot

log = logs.get("ingestd.web")

TOP_FOLDER = "(top folder)"
MAX_CREDENTIALS = 12 * 1024  # base64 of a basic auth header, within the 16 KiB of headers
MAX_JOB_ID = 2**63 - 1
CACHE_SECONDS = 1.0  # the view is built at most this often, however many ask
# Open connections at most (a slow client holds one socket, no thread); beyond it waitress
# stops accepting until some close.
MAX_CONNECTIONS = 1000
REALM = "ingestd"
HOLD_WORDS = {
    "video_limit": "Your Wistia account has reached its video limit. Nothing is lost: files "
    "wait here and upload by themselves once there is room (someone deletes videos in Wistia "
    "or upgrades the plan).",
    "auth": "Wistia refused ingestd's access token. Nothing is lost: files wait here until "
    "whoever runs ingestd puts in a working token.",
}
TODO = {
    "failed": "Fix the file and drop it in again, or ask whoever runs ingestd to retry this "
    "job (ingestd retry).",
    "held": "This file waits for the problem above to be fixed; it then goes on by itself.",
}


@dataclass(frozen=True)
class PageSettings:
    """What the page process needs, passed to it whole (it reads no config of its own)."""

    ledger: Path
    watch_dir: Path
    settle_seconds: float
    upload_hours: str
    user: str
    password: str  # empty: no authentication (loopback only, checked at start-up)
    token: str  # for redaction only: never sent anywhere


class StatusSource:
    """The `status --json` view, built at most once per CACHE_SECONDS."""

    def __init__(self, settings: PageSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._built_at = 0.0
        self._view: dict[str, Any] = {}
        self._text = ""
        self._account_url: str | None = None

    def current(self) -> tuple[dict[str, Any], str]:
        """The view and its JSON text (as `status --json` prints it)."""
        with self._lock:
            now = time.monotonic()
            if now - self._built_at >= CACHE_SECONDS or not self._text:
                self._build()
                self._built_at = now
            return self._view, self._text

    def _build(self) -> None:
        from ingestd.limits import UploadHours

        ledger = Ledger(self.settings.ledger, read_only=True)
        try:
            view = snapshot(
                ledger,
                settle_seconds=self.settings.settle_seconds,
                hours=UploadHours.parse(self.settings.upload_hours),
            )
            self._account_url = ledger.fact("account_url")
        finally:
            ledger.close()
        self._text = as_json(view)
        self._view = json.loads(self._text)  # what the page shows is what the JSON says

    def job(self, job_id: int) -> str | None:
        from ingestd.limits import UploadHours

        ledger = Ledger(self.settings.ledger, read_only=True)
        try:
            job = ledger.get(job_id)
            if job is None:
                return None
            hours = UploadHours.parse(self.settings.upload_hours)
            return as_json(history(ledger, job, self.settings.settle_seconds, hours), indent=2)
        finally:
            ledger.close()

    @property
    def account_url(self) -> str | None:
        return self._account_url


def create_app(settings: PageSettings) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 0  # no request has a body worth reading
    source = StatusSource(settings)

    @app.before_request
    def _authenticate() -> Response | None:
        if request.method not in ("GET", "HEAD"):
            abort(405)
        if not settings.password:
            # Loopback without a password: only for a Host naming loopback, so that a web
            # page elsewhere cannot read this one through a browser here (DNS rebinding).
            if not _loopback_host(request.host):
                return Response("unknown host\n", 421, mimetype="text/plain")
            return None
        if _credentials_match(request.headers.get("Authorization", ""), settings):
            return None
        return Response(
            "authentication required\n",
            401,
            {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            mimetype="text/plain",
        )

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/")
    def page() -> str:
        view, _ = source.current()
        folder = request.args.get("folder", "")
        state = request.args.get("state", "")
        return render_template(
            "status.html", **page_context(view, settings, source.account_url, folder, state)
        )

    @app.get("/api/status.json")
    def status_json() -> Response:
        _, text = source.current()
        return Response(text + "\n", mimetype="application/json")

    @app.get(f"/api/jobs/<int(max={MAX_JOB_ID}):job_id>.json")
    def job_json(job_id: int) -> Response:
        text = source.job(job_id)
        if text is None:
            message = json.dumps({"error": f"no job {job_id}"})
            return Response(message + "\n", 404, mimetype="application/json")
        return Response(text + "\n", mimetype="application/json")

    @app.errorhandler(404)
    def _not_found(_error: Exception) -> Response:
        return Response(json.dumps({"error": "not found"}) + "\n", 404, mimetype="application/json")

    return app


def _loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _credentials_match(header: str, settings: PageSettings) -> bool:
    """HTTP basic auth, compared in constant time (user and password both)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or len(encoded) > MAX_CREDENTIALS:
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    # Digests of equal length: the time taken tells nothing, not even the password's length.
    good_user = hmac.compare_digest(_digest(user), _digest(settings.user.encode()))
    good_password = hmac.compare_digest(_digest(password), _digest(settings.password.encode()))
    return bool(sep) and good_user and good_password


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


# --- what the page shows ------------------------------------------------------------------------


def page_context(
    view: dict[str, Any], settings: PageSettings, account_url: str | None, folder: str, state: str
) -> dict[str, Any]:
    jobs = [_job_card(job, settings.watch_dir, account_url) for job in view["jobs"]]
    folders = sorted({card["folder"] for card in jobs})
    shown = [card for card in jobs if _matches(card, folder, state)]
    final = ("done", "failed")
    hold = view["hold"]
    waiting = view["notifications"]
    line = f"{waiting['waiting']} notification(s) waiting to be delivered"
    if waiting["last_error"]:
        line += f"; last error: {display(waiting['last_error'])}"
    busy = [f"{n} {s}" for s, n in view["counts"].items() if n and s not in final]
    return {
        "title": "ingestd: " + (", ".join(busy) or "idle"),
        "daemon_line": _daemon_line(view["daemon"]),
        "hold": None
        if hold is None
        else {
            "words": HOLD_WORDS.get(hold["kind"], display(hold["reason"])),
            "reason": display(hold["reason"]),
        },
        "hold_words": HOLD_WORDS,
        "notifications": {"waiting": waiting["waiting"], "line": line},
        "counts": view["counts"],
        "states": list(view["counts"]),
        "folders": folders,
        "chosen_folder": folder,
        "chosen_state": state,
        "active": [card for card in shown if card["state"] not in final],
        "recent": [card for card in shown if card["state"] in final],
        "todo": TODO,
        "account_url": account_url or "",
        "watch_dir": str(settings.watch_dir),
        "top_folder": TOP_FOLDER,
    }


def _daemon_line(daemon: dict[str, Any]) -> str:
    if not daemon["running"]:
        return "ingestd is not running: nothing moves until it is started again."
    return f"ingestd is running (since {daemon['since']})."


def _job_card(job: dict[str, Any], watch_dir: Path, account_url: str | None) -> dict[str, Any]:
    path = job["path"]
    root = str(watch_dir)
    relative = path[len(root) + 1 :] if path.startswith(root + "/") else path
    folder, _, name = relative.rpartition("/")
    reason = job["error"] if job["state"] == "failed" else job["reason"]
    card = {  # control characters shown escaped (files.display); HTML escaped by Jinja2
        "id": job["id"],
        "state": job["state"],
        "name": display(name),
        "folder": display(folder),  # "" for the top folder (the filter calls it "/")
        "when": job["updated_at"],
        "reason": display(reason) if reason else None,
        "todo": TODO.get(job["state"]),
        "url": None,
        "bar": None,
        "numbers": "",
    }
    if job["state"] == "done" and account_url and job["hashed_id"]:
        card["url"] = f"{account_url}/medias/{quote(job['hashed_id'], safe='')}"
    if job["state"] == "uploading" and job["size"]:
        sent = job["bytes_sent"] or 0
        card["bar"] = min(100.0, round(sent * 1000 / job["size"]) / 10)
        card["numbers"] = _numbers(sent, job)
    return card


def _numbers(sent: int, job: dict[str, Any]) -> str:
    parts = [f"{_size(sent)} of {_size(job['size'])}"]
    if job.get("speed"):
        parts.append(f"{_size(job['speed'])}/s")
    if job.get("seconds_left") is not None:
        parts.append(f"{_duration(job['seconds_left'])} left")
    return " · ".join(parts)


def _matches(card: dict[str, Any], folder: str, state: str) -> bool:
    if state and card["state"] != state:
        return False
    if folder == "/":
        return card["folder"] == ""  # the top folder alone
    return not folder or card["folder"] == folder or card["folder"].startswith(folder + "/")


def _size(n: float | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


# --- its own process ------------------------------------------------------------------------------


def listen(address: str) -> socket.socket:
    """The page's socket, bound by the daemon itself: a taken port is one line at start-up."""
    from ingestd.config import parse_listen

    host, port = parse_listen(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise IngestdError(
            f"web.listen: cannot listen on {address}: {exc.strerror or exc}",
            "choose a free port, or leave web.listen empty",
        ) from None
    return sock


def page_settings(settings: Settings, token: str, password: str) -> PageSettings:
    return PageSettings(
        ledger=settings.ledger,
        watch_dir=settings.watch_dir,
        settle_seconds=settings.ingest.settle_seconds,
        upload_hours=settings.ingest.upload_hours,
        user=settings.web.user,
        password=password,
        token=token,
    )


def serve(
    settings: PageSettings, sock: socket.socket, log_level: str, log_format: str, daemon: int
) -> None:
    """The page process: ends with the daemon (even a kill -9 of it) and on SIGTERM."""
    import waitress

    _end_with(daemon)
    logs.configure(
        level=log_level, fmt=log_format, under_journald=bool(os.environ.get("JOURNAL_STREAM"))
    )
    add_secret(settings.token)
    _more_descriptors()
    server = waitress.create_server(
        create_app(settings),
        sockets=[sock],
        threads=4,
        connection_limit=MAX_CONNECTIONS,
        channel_timeout=15,
        max_request_header_size=16 * 1024,
        max_request_body_size=1024,
        ident="ingestd",
        clear_untrusted_proxy_headers=True,
        asyncore_use_poll=True,  # select() fails on a descriptor above 1023
    )
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    log.info("serving the status page", url=_address(sock))
    server.run()


class PageProcess:
    """The status page's process, started and watched by the daemon: restarted (after a
    pause) if it dies, ended when the daemon stops. The socket is the daemon's, bound at
    start-up, so a taken port is one line then, and a restart never loses it."""

    RESTART_SECONDS = 5.0

    def __init__(self, settings: Settings, token: str, password: str) -> None:
        self.page = page_settings(settings, token, password)
        self.log_level, self.log_format = settings.log.level, settings.log.format
        self.sock = listen(settings.web.listen)
        self.process: Any = None
        self.restart_at = 0.0

    def start(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads
        self.process = context.Process(
            target=serve,
            args=(self.page, self.sock, self.log_level, self.log_format, os.getpid()),
            name="ingestd-web",
            daemon=True,
        )
        with _without_private_variables():
            self.process.start()

    def check(self, now: float) -> None:
        """From the daemon's main loop: a page process that died is started again."""
        if self.process is None or self.process.is_alive():
            return
        if self.restart_at == 0.0:
            log.error(
                "the status page's process ended; it is restarted", code=self.process.exitcode
            )
            self.restart_at = now + self.RESTART_SECONDS
        elif now >= self.restart_at:
            self.restart_at = 0.0
            self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(3)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(3)
        self.sock.close()


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


@contextlib.contextmanager
def _without_private_variables() -> Iterator[None]:
    """The page's process is started without ingestd's own variables (a token may be one)
    or systemd's credentials in its environment: it needs neither."""
    private = {
        name: value
        for name, value in os.environ.items()
        if name.upper().startswith(("INGESTD_", "CREDENTIALS_DIRECTORY"))
    }
    for name in private:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(private)


def _more_descriptors() -> None:
    """Room for MAX_CONNECTIONS sockets (the soft limit is often 1024; the hard one higher)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS + 100
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
        except (OSError, ValueError):  # a seccomp filter (the unit sets LimitNOFILE instead)
            log.warning("cannot raise the open-files limit; fewer connections fit", limit=soft)


def _end_with(daemon: int) -> None:
    """Ask the kernel to end this process when the daemon ends, however it ends."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != daemon:  # it was gone before the request was made
        os._exit(0)
