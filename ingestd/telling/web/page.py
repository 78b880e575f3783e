"""The status page (`web.listen`): what `ingestd status` shows, for the people who drop files
and have no shell on the server.

    GET /                    the page: counts, the hold in plain words, every active job with
                             a progress bar, the recent jobs (done ones linked to Wistia),
                             a filter by folder and by state; live, and readable without
                             JavaScript (the browser then refreshes it)
    GET /api/status.json     exactly what `ingestd status --json` prints (status.as_json)
    GET /api/jobs/<id>.json  exactly what `ingestd status --json <id>` prints

Flask (routing, Jinja2 templates that escape every name), served from a process of its own
(serving.py: waitress, connections capped at MAX_CONNECTIONS, idle ones cut off, a lower CPU
priority), reading the ledger read-only like `ingestd status`: a flood of requests competes
for no lock, descriptor or interpreter with the uploads. A client that holds more connections
than the cap still shuts others out of the page (never the daemon): for the open internet,
put a proxy in front. The view is built at most once a second, however many ask. Nothing on
it changes anything; the token never appears (every answer is redacted like `status`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, abort, render_template, request

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core.names import display
from ingestd.ledger import Ledger
from ingestd.telling.serving import ServedProcess, address_of, become_served_process, listen, serve
from ingestd.telling.status import as_json, history, snapshot, waiting_words

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
        from ingestd.config.limits import UploadHours

        ledger = Ledger(self.settings.ledger, read_only=True)
        try:
            view = snapshot(
                ledger,
                settle_seconds=self.settings.settle_seconds,
                hours=UploadHours.parse(self.settings.upload_hours),
            )
            self._account_url = ledger.facts.get("account_url")
        finally:
            ledger.close()
        self._text = as_json(view)
        self._view = json.loads(self._text)  # what the page shows is what the JSON says

    def job(self, job_id: int) -> str | None:
        from ingestd.config.limits import UploadHours

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
    line = display(waiting_words(waiting))
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


def page_process(settings: Settings, token: str, password: str) -> ServedProcess:
    """The status page's process (serving.py: its own process, capped, idle cut off), on a
    socket the daemon binds now: a taken port is one line at start-up."""
    page = page_settings(settings, token, password)
    sock = listen(settings.web.listen, "web.listen")
    return ServedProcess(
        "ingestd-web", sock, _serve_page, lambda: (page, settings.log.level, settings.log.format)
    )


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


def _serve_page(
    sock: socket.socket, daemon: int, settings: PageSettings, log_level: str, log_format: str
) -> None:
    """The page process: ends with the daemon (even a kill -9 of it) and on SIGTERM."""
    become_served_process(daemon, log_level, log_format, (settings.token,))
    log.info("serving the status page", url=address_of(sock))
    serve(create_app(settings), sock, most_connections=MAX_CONNECTIONS)
