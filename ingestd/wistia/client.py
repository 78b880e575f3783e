"""The one HTTP client for Wistia: every request to either host goes through here.

Decided here, once:
- auth: `Authorization: Bearer <token>`, added only for the configured upload and API origins;
- rate: one limiter shared by every thread, so that in any 60-second window at most
  `wistia.requests_per_minute` requests leave; a 429 or 503 pauses it for the whole account
  until its `Retry-After` (seconds or an HTTP date) has passed;
- classification: every failure becomes a TransientError, HoldError (VideoLimitError,
  AuthError) or PermanentError (NotFoundError) from ingestd.errors;
- retries: idempotent Data API calls are retried in-process with tenacity, waiting by the
  one backoff law (outcomes.Backoff); uploads are not, since the upload POST is not
  idempotent: their attempts are the ledger's, decided by the outcome policy.

The HTTP transport can be given (`transport=`, an httpx.MockTransport in unit tests).
"""

from __future__ import annotations

import email.utils
import math
import mimetypes
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import h11
import httpx
import tenacity
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingestd import __version__
from ingestd.config.settings import WistiaSettings
from ingestd.core import liveness
from ingestd.core.errors import (
    AuthError,
    Cancelled,
    NotFoundError,
    PermanentError,
    TransientError,
    VideoLimitError,
    WistiaError,
)
from ingestd.core.outcomes import Backoff
from ingestd.wistia.meters import Meters

# Wistia's limit for a media's name (Upload API page).
MAX_NAME_LENGTH = 255
# Wistia's answer when the account may not hold more videos (Upload API page).
VIDEO_LIMIT_MARKER = "video limit"
# When a 429/503 carries no Retry-After, the whole account still pauses this long.
DEFAULT_PAUSE_SECONDS = 5.0
# A little more than a minute, so that requests spaced by the limiter cannot arrive at
# Wistia closer together than its window because of network jitter.
RATE_WINDOW_SECONDS = 60.5
# A Retry-After longer than this is taken as this (a broken header must not stop us for days).
MAX_RETRY_AFTER_SECONDS = 3600.0


# The Upload API's older numeric statuses.
NUMERIC_STATUSES = {-1: "failed", 0: "queued", 1: "processing", 2: "ready", 3: "failed"}


# --- media as Wistia describes it ------------------------------------------------------------


class Media(BaseModel):
    """A media as the Upload and Data APIs return it; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: int
    hashed_id: str
    name: str = ""
    status: str | int | None = None
    progress: float | None = None
    created: str | None = None
    created_at: str | None = None  # the Upload API's older spelling
    updated: str | None = None
    type: str | None = None
    project: dict[str, Any] | None = None
    assets: list[dict[str, Any]] = []

    @property
    def project_hashed_id(self) -> str | None:
        """The hashed id of the project the media is in, when the answer says."""
        hashed = (self.project or {}).get("hashed_id")
        return hashed if isinstance(hashed, str) and hashed else None

    @property
    def state(self) -> str:
        if isinstance(self.status, int):
            return NUMERIC_STATUSES.get(self.status, "processing")
        return (self.status or "queued").lower()

    @property
    def created_epoch(self) -> float | None:
        return _epoch(self.created or self.created_at)

    @property
    def updated_epoch(self) -> float | None:
        return _epoch(self.updated)

    @property
    def original_size(self) -> int | None:
        for asset in self.assets:
            if asset.get("type") == "OriginalFile" and isinstance(asset.get("fileSize"), int):
                return int(asset["fileSize"])
        return None


class Project(BaseModel):
    """A project as the Data API returns it (camelCase); unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: int
    name: str
    hashed_id: str = Field(alias="hashedId")


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# --- Retry-After and backoff -----------------------------------------------------------------


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds)) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    wait = when.timestamp() - (time.time() if now is None else now)
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, wait))


# Medias per page of a list (Wistia's maximum).
PER_PAGE = 100
# Wistia's clock and ours may differ a little: look this much further back when finding a
# media an interrupted upload made (by its name and creation time).
RECONCILE_MARGIN_SECONDS = 300.0
# The share of the request budget polling may use, whatever else waits.
POLL_SHARE = 0.25


def poll_share(per_minute: int) -> int:
    return max(1, int(per_minute * POLL_SHARE))


# In-process retries of Data API calls: 1 s, 2 s, 4 s ... (Retry-After instead when given).
API_RETRY_WAIT = Backoff(first=1.0, cap=30.0, jitter=1.0)
# How much longer than a request's own timeout it may take before its stage counts as stuck.
STALL_MARGIN_SECONDS = 30.0


# --- the shared rate limiter -----------------------------------------------------------------


class RateLimiter:
    """At most `per_minute` requests in any sliding window, and account-wide pauses.

    A sliding log rather than a token bucket: a bucket allows up to twice its size in a
    window, and Wistia counts per minute.
    """

    def __init__(self, per_minute: int, window: float = RATE_WINDOW_SECONDS) -> None:
        self.per_minute = per_minute
        self.window = window
        self._sent: deque[float] = deque()
        self._paused_until = 0.0  # monotonic
        self._lock = threading.Lock()

    def set_rate(self, per_minute: int) -> None:
        with self._lock:
            self.per_minute = per_minute

    def pause_for(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    @property
    def paused_for(self) -> float:
        with self._lock:
            return max(0.0, self._paused_until - time.monotonic())

    def acquire(self, stop: threading.Event) -> None:
        """Block until a request may be sent; raise Cancelled if `stop` is set meanwhile."""
        while True:
            with self._lock:
                now = time.monotonic()
                wait = self._paused_until - now
                if wait <= 0:
                    while self._sent and self._sent[0] <= now - self.window:
                        self._sent.popleft()
                    if len(self._sent) < self.per_minute:
                        self._sent.append(now)
                        return
                    wait = self._sent[0] + self.window - now
            liveness.beat()  # waiting for the budget is not being stuck
            if stop.wait(min(max(wait, 0.001), 1.0)):
                raise Cancelled()


# --- streaming the file ----------------------------------------------------------------------

READ_CHUNK = 1024 * 1024  # large reads: per-chunk work is paid once per MiB, not per 64 KiB
# Characters that HTML5 (and Wistia's form parser) escape inside a quoted multipart parameter.
_FORM_ESCAPES = {'"': "%22", "\\": "\\\\"} | {chr(c): f"%{c:02X}" for c in range(32) if c != 27}


class Throttle:
    """All uploads together stay under `rate` bytes per second (`ingest.upload_bandwidth`).

    Each chunk is given its slot in time (the generic cell rate algorithm): the long-run rate
    is exactly the limit, with at most a quarter of a second's worth sent ahead of it.
    """

    BURST_SECONDS = 0.25

    def __init__(self, rate: float | None = None) -> None:
        self._rate = rate
        self._due = time.monotonic()
        self._lock = threading.Lock()

    def set_rate(self, rate: float | None) -> None:
        with self._lock:
            self._rate = rate
            self._due = min(self._due, time.monotonic())  # the old rate's backlog is forgiven

    def chunk_size(self, largest: int) -> int:
        """A read small enough that the limit holds smoothly: a tenth of a second's worth."""
        rate = self._rate
        return largest if not rate else max(4096, min(largest, int(rate / 10)))

    def take(self, size: int, stop: threading.Event) -> None:
        with self._lock:
            if not self._rate:
                return
            now = time.monotonic()
            self._due = max(self._due, now) + size / self._rate
            wait = self._due - now - self.BURST_SECONDS - size / self._rate
        while wait > 0:
            liveness.beat(wait + STALL_MARGIN_SECONDS)
            if stop.wait(min(wait, 1.0)):
                raise Cancelled()
            wait -= 1.0


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


# --- auth --------------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return (parts.scheme, parts.hostname or "", parts.port)


class BearerAuth(httpx.Auth):
    """Adds the token only to requests for Wistia's configured origins."""

    def __init__(self, token: str, origins: set[tuple[str, str, int | None]]) -> None:
        self._token = token
        self._origins = origins

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if _origin(str(request.url)) in self._origins:
            request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


# --- the client --------------------------------------------------------------------------------


class WistiaClient:
    """Wistia's Upload and Data APIs, as ingestd uses them. Safe to share between threads."""

    def __init__(
        self,
        settings: WistiaSettings,
        token: str,
        limiter: RateLimiter,
        stop: threading.Event,
        *,
        api_retries: int = 4,
        transport: httpx.BaseTransport | None = None,
        meters: Meters | None = None,
    ) -> None:
        self.settings = settings
        self.meters = meters if meters is not None else Meters()
        self.upload_url = settings.upload_url
        self.api_url = settings.api_url
        self._limiter = limiter
        self._stop = stop
        self._api_retries = api_retries
        self.throttle = Throttle(None)  # ingest.upload_bandwidth, set by the daemon
        self._account_url: str | None = None
        self._account_lock = threading.Lock()
        # Polls may use at most this share of the account's requests: uploads keep the rest.
        self.poll_budget = RateLimiter(poll_share(limiter.per_minute))
        self._http = httpx.Client(
            auth=self._auth(token),
            timeout=httpx.Timeout(settings.timeout_seconds),
            headers={"User-Agent": f"ingestd/{__version__}", "Accept": "application/json"},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            follow_redirects=False,
            transport=transport,
        )

    def _auth(self, token: str) -> BearerAuth:
        return BearerAuth(token, {_origin(self.upload_url), _origin(self.api_url)})

    def set_token(self, token: str) -> None:
        """A new token (config reload) applies to the next request."""
        self._http.auth = self._auth(token)

    def close(self) -> None:
        self._http.close()

    # --- Upload API ------------------------------------------------------------------------

    def upload_file(
        self, fd: int, filename: str, fields: dict[str, str], on_progress: Callable[[int], None]
    ) -> Media:
        """Stream an open file as multipart/form-data, from its start. One attempt: retries
        are the outcome policy's. The descriptor stays open (the caller owns it)."""
        timeout = httpx.Timeout(
            self.settings.timeout_seconds, read=self.settings.upload_timeout_seconds
        )
        allow = max(self.settings.timeout_seconds, self.settings.upload_timeout_seconds)
        upload = MultipartUpload(fd, filename, fields)
        counted = 0

        def progress(sent: int) -> None:
            nonlocal counted
            self.meters.uploaded_bytes.inc(sent - counted)
            counted = sent
            on_progress(sent)

        response = self._send(
            "POST",
            self.upload_url,
            content=upload.body(progress, self._stop, self.throttle, allow + STALL_MARGIN_SECONDS),
            headers=upload.headers,
            timeout=timeout,
        )
        return self._media(response)

    def upload_image(
        self, filename: str, data: bytes, content_type: str, fields: dict[str, str]
    ) -> Media:
        """A small image (a thumbnail), sent from memory: it becomes a media of type Image."""
        files = {"file": (filename, data, content_type)}
        return self._media(self._send("POST", self.upload_url, data=fields, files=files))

    def import_url(self, url: str, fields: dict[str, str]) -> Media:
        """Ask Wistia to fetch a media from the web (form-encoded, like `curl -d`)."""
        response = self._send("POST", self.upload_url, data={"url": url, **fields})
        return self._media(response)

    # --- Data API --------------------------------------------------------------------------

    def media(self, hashed_id: str) -> Media:
        """One media (a poll: counted against the polls' share of the budget)."""
        return self._media(self._api("GET", f"medias/{hashed_id}.json", budget=self.poll_budget))

    def medias_by_update(self, page: int) -> tuple[list[Media], int]:
        """The account's medias, the most recently changed first, a page of PER_PAGE (a poll
        of all of them at once: counted against the polls' share of the budget), and how many
        items the page held (a full page may hold some that do not parse)."""
        params = {"sort_by": "updated", "sort_direction": "0", "per_page": str(PER_PAGE)}
        return self._medias({**params, "page": str(page)}, budget=self.poll_budget)

    def medias_named(self, name: str) -> list[Media]:
        """Medias whose name is exactly `name`, newest first (for reconciling a crash)."""
        params = {"name": name, "sort_by": "created", "sort_direction": "0", "per_page": "100"}
        return self._medias(params)[0]

    def _medias(
        self, params: dict[str, str], budget: RateLimiter | None = None
    ) -> tuple[list[Media], int]:
        payload = self._json(self._api("GET", "medias.json", params=params, budget=budget))
        if not isinstance(payload, list):
            raise TransientError("Wistia's medias list was not a JSON array")
        medias = []
        for item in payload:
            try:
                medias.append(Media.model_validate(item))
            except ValidationError:
                continue
        return medias, len(payload)

    def update_media(self, hashed_id: str, fields: dict[str, str]) -> Media:
        return self._media(self._api("PUT", f"medias/{hashed_id}.json", data=fields))

    def delete_media(self, hashed_id: str) -> None:
        self._api("DELETE", f"medias/{hashed_id}.json")

    def set_still(self, hashed_id: str, image_hashed_id: str) -> Media:
        """The image media `image_hashed_id` becomes the video's still (Data API, update)."""
        return self.update_media(hashed_id, {"new_still_media_id": image_hashed_id})

    def projects(self, page: int) -> tuple[list[Project], int]:
        """A page of PER_PAGE projects, oldest first, and how many items the page held."""
        params = {"page": str(page), "per_page": str(PER_PAGE)}
        payload = self._json(self._api("GET", "projects.json", params=params))
        if not isinstance(payload, list):
            raise TransientError("Wistia's projects list was not a JSON array")
        found = []
        for item in payload:
            try:
                found.append(Project.model_validate(item))
            except ValidationError:
                continue
        return found, len(payload)

    def create_project(self, name: str) -> Project:
        payload = self._json(self._api("POST", "projects.json", data={"name": name}))
        try:
            return Project.model_validate(payload)
        except ValidationError:
            raise TransientError("Wistia's answer to a new project had no hashedId") from None

    def account_url(self) -> str:
        """The account's own URL (a media's page is `<url>/medias/<hashed_id>`): asked once,
        from `GET /v1/account.json`, then remembered for this process."""
        with self._account_lock:
            if self._account_url is None:
                url = self.account().get("url")
                if not isinstance(url, str) or urlsplit(url).scheme not in ("https", "http"):
                    raise TransientError("Wistia's account answer has no url")
                parts = urlsplit(url)  # no query or fragment: paths are added to it
                self._account_url = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
            return self._account_url

    def media_url(self, hashed_id: str) -> str:
        return f"{self.account_url()}/medias/{hashed_id}"

    def account(self, tries: int | None = None) -> dict[str, Any]:
        payload = self._json(self._api("GET", "account.json", tries=tries))
        if not isinstance(payload, dict):
            raise TransientError("Wistia's account answer was not a JSON object")
        return payload

    def create_captions(self, hashed_id: str, language: str, srt_text: str) -> None:
        self._api(
            "POST",
            f"medias/{hashed_id}/captions.json",
            data={"language": language},
            files={"caption_file": (f"{language}.srt", srt_text.encode(), "application/x-subrip")},
        )

    def replace_captions(self, hashed_id: str, language: str, srt_text: str) -> None:
        self._api(
            "PUT",
            f"medias/{hashed_id}/captions/{language}.json",
            files={"caption_file": (f"{language}.srt", srt_text.encode(), "application/x-subrip")},
        )

    def set_customizations(self, hashed_id: str, customizations: dict[str, Any]) -> None:
        self._api("POST", f"medias/{hashed_id}/customizations.json", json=customizations)

    # --- plumbing --------------------------------------------------------------------------

    def _api(
        self,
        method: str,
        path: str,
        *,
        tries: int | None = None,
        budget: RateLimiter | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A Data API call, retried in-process on transient errors (each try rate-limited,
        and also by `budget` when it is a poll)."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientError),
            wait=API_RETRY_WAIT,
            stop=tenacity.stop_after_attempt(tries or self._api_retries)
            | tenacity.stop.stop_when_event_set(self._stop),
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(self._send, method, self.api_url + path, budget=budget, **kwargs)

    def _sleep(self, seconds: float) -> None:
        """tenacity's pause between tries: announced to the stage's heartbeat, cut by a stop."""
        liveness.beat(seconds + STALL_MARGIN_SECONDS)
        self._stop.wait(seconds)

    def _send(
        self, method: str, url: str, budget: RateLimiter | None = None, **kwargs: Any
    ) -> httpx.Response:
        if budget is not None:
            budget.acquire(self._stop)  # its share first, then the account's limiter
        self._limiter.acquire(self._stop)
        timeout = kwargs.get("timeout")
        longest = max(
            self.settings.timeout_seconds,
            (timeout.read or 0.0) if isinstance(timeout, httpx.Timeout) else 0.0,
        )
        liveness.beat(longest + STALL_MARGIN_SECONDS)
        api = "upload" if url == self.upload_url else "data"
        try:
            response = self._http.request(method, url, **kwargs)
        except Cancelled:
            raise
        except httpx.TimeoutException as exc:
            self.meters.count_request(api, None)
            raise TransientError(f"timed out talking to Wistia ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            self.meters.count_request(api, None)
            raise TransientError(f"network error talking to Wistia: {_describe(exc)}") from None
        except h11.ProtocolError as exc:  # httpx lets this one through (a body cut short)
            self.meters.count_request(api, None)
            raise TransientError(f"the request could not be sent whole: {_describe(exc)}") from None
        self.meters.count_request(api, response.status_code)
        error = self._classify(response)
        if error is not None:
            raise error
        return response

    def _classify(self, response: httpx.Response) -> WistiaError | None:
        status = response.status_code
        if status < 400:
            return None
        message = _error_message(response)
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            # The limit is per account: every worker and the poller wait, not just this one.
            self._limiter.pause_for(DEFAULT_PAUSE_SECONDS if retry_after is None else retry_after)
            return TransientError(
                f"Wistia rate limit (HTTP {status})" + (f": {message}" if message else ""),
                status_code=status,
                retry_after=retry_after,
            )
        if status >= 500:
            return TransientError(
                f"Wistia server error (HTTP {status})" + (f": {message}" if message else ""),
                status_code=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status in (401, 403):
            return AuthError(
                f"Wistia refused the API token (HTTP {status})",
                "check the token in Wistia's account settings (it needs upload and read "
                "permissions), update the config, then reload with SIGHUP",
                status_code=status,
            )
        if status == 400 and VIDEO_LIMIT_MARKER in message.lower():
            return VideoLimitError(
                f"Wistia: {message}",
                "upgrade the plan or delete media in Wistia; uploads resume by themselves",
                status_code=status,
            )
        if status == 404:
            return NotFoundError(
                f"Wistia: not found (HTTP 404){': ' + message if message else ''}",
                status_code=status,
            )
        return PermanentError(
            f"Wistia refused the request (HTTP {status}){': ' + message if message else ''}",
            status_code=status,
        )

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise TransientError(
                f"Wistia answered HTTP {response.status_code} with a body that is not JSON"
            ) from None

    def _media(self, response: httpx.Response) -> Media:
        payload = self._json(response)
        try:
            return Media.model_validate(payload)
        except ValidationError:
            raise TransientError(
                "Wistia's answer did not describe a media (no id or hashed_id)"
            ) from None


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _error_message(response: httpx.Response) -> str:
    """Wistia's own words: the JSON `error` (or `errors`), else a short text body."""
    try:
        payload = response.json()
    except ValueError:
        text = response.text.strip()
        return "" if text.startswith("<") else text[:300]
    if isinstance(payload, dict):
        for key in ("error", "errors", "message"):
            if payload.get(key):
                value = payload[key]
                return value if isinstance(value, str) else str(value)[:300]
    return ""
