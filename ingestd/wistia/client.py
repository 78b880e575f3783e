"""The one HTTP client for Wistia: every request to either host goes through here.

Decided here, once:
- auth: `Authorization: Bearer <token>`, added only for the configured upload and API origins;
- rate: one limiter shared by every thread (limiter.py), so that in any 60-second window at
  most `wistia.requests_per_minute` requests leave; a 429 or 503 pauses it for the whole
  account until its `Retry-After` has passed;
- classification: every failure becomes a TransientError, HoldError or PermanentError
  (classify.py), by meaning;
- retries: idempotent Data API calls are retried in-process with tenacity, waiting by the
  one backoff law (core.backoff); uploads are not, since the upload POST is not idempotent:
  their attempts are the ledger's, decided by the outcome policy.

The HTTP transport can be given (`transport=`, an httpx.MockTransport in unit tests).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any
from urllib.parse import quote, urlsplit

import h11
import httpx
import tenacity
from pydantic import ValidationError

from ingestd import __version__
from ingestd.config.settings import Settings, WistiaSettings
from ingestd.core import liveness
from ingestd.core.backoff import Backoff
from ingestd.core.errors import Cancelled, NotFoundError, TransientError
from ingestd.wistia.classify import classify
from ingestd.wistia.limiter import STALL_MARGIN_SECONDS, RateLimiter, Throttle, poll_share
from ingestd.wistia.meters import Meters
from ingestd.wistia.models import PER_PAGE, Account, BackgroundJob, Media, Project
from ingestd.wistia.multipart import MultipartUpload

# When a 429/503 carries no Retry-After, the whole account still pauses this long.
DEFAULT_PAUSE_SECONDS = 5.0
# Wistia's clock and ours may differ a little: look this much further back when finding a
# media an interrupted upload made (by its name and creation time).
RECONCILE_MARGIN_SECONDS = 300.0
# In-process retries of Data API calls: 1 s, 2 s, 4 s ... (Retry-After instead when given).
API_RETRY_WAIT = Backoff(first=1.0, cap=30.0, jitter=1.0)


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
        self.swap_url = settings.swap_url
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
        origins = {_origin(self.upload_url), _origin(self.api_url), _origin(self.swap_url)}
        return BearerAuth(token, origins)

    def set_token(self, token: str) -> None:
        """A new token applies to the next request."""
        self._http.auth = self._auth(token)

    def reload(self, fresh: Settings, token: str) -> None:
        """A config reload: the token, timeouts, the rate limit and the polls' share of it,
        and the upload bandwidth. Its two URLs change only at a restart."""
        self.settings = fresh.wistia
        self.set_token(token)
        self._limiter.set_rate(fresh.wistia.requests_per_minute)
        self.poll_budget.set_rate(poll_share(fresh.wistia.requests_per_minute))
        self.throttle.set_rate(fresh.ingest.bandwidth)

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

    def medias_listed(
        self, page: int, project: str | None = None, name: str | None = None
    ) -> tuple[list[Media], int]:
        """A page of PER_PAGE medias, oldest first (a page stays put while medias are added),
        of one project or of the whole account, and of one name if given; and how many items
        the page held (for adopting what Wistia already has)."""
        params = {"sort_by": "created", "sort_direction": "1", "per_page": str(PER_PAGE)}
        if project is not None:
            params["project_id"] = project
        if name is not None:
            params["name"] = name
        return self._medias({**params, "page": str(page)})

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

    def project_exists(self, hashed_id: str) -> bool:
        """Whether the account has this project: `GET /v1/projects/<id>.json`, 404 = no.
        What the upload answers for a project that is gone is not documented; this is."""
        try:
            self._api("GET", f"projects/{quote(hashed_id, safe='')}.json")
        except NotFoundError:
            return False
        return True

    def create_project(self, name: str) -> Project:
        payload = self._json(self._api("POST", "projects.json", data={"name": name}))
        try:
            return Project.model_validate(payload)
        except ValidationError:
            raise TransientError("Wistia's answer to a new project had no hashedId") from None

    def account_url(self) -> str:
        """The account's own URL (a media's page is `<url>/medias/<hashed_id>`): from any
        answer of `GET /v1/account.json` this process had, else asked once."""
        with self._account_lock:
            if self._account_url is None:
                self.account()
            if self._account_url is None:
                raise TransientError("Wistia's account answer has no url")
            return self._account_url

    def media_url(self, hashed_id: str) -> str:
        return f"{self.account_url()}/medias/{hashed_id}"

    def account(self, tries: int | None = None) -> dict[str, Any]:
        payload = self._json(self._api("GET", "account.json", tries=tries))
        if not isinstance(payload, dict):
            raise TransientError("Wistia's account answer was not a JSON object")
        url = payload.get("url")
        if self._account_url is None and isinstance(url, str):
            parts = urlsplit(url)  # no query or fragment: paths are added to it
            if parts.scheme in ("https", "http") and parts.netloc:
                self._account_url = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
        return payload

    def account_media(self, tries: int | None = None) -> Account:
        """The account's media count and limit (`GET /v1/account.json`)."""
        return Account.model_validate(self.account(tries))

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

    def merge_customizations(self, hashed_id: str, customizations: dict[str, Any]) -> None:
        """Merge into the media's customizations: `PUT` is Wistia's partial update (the keys
        given are set, a null deletes one, every other key is kept); `POST` would replace
        them all, losing what was set in Wistia's app. Only where the PUT finds none to
        update (404) is the first set created with POST."""
        path = f"medias/{hashed_id}/customizations.json"
        try:
            self._api("PUT", path, json=customizations)
        except NotFoundError:
            self._api("POST", path, json=customizations)

    def set_tags(self, hashed_id: str, tags: list[str]) -> None:
        """The media's tags become `tags` (`tags[]` replaces them: current-api-facts.md)."""
        self._api("PUT", f"medias/{hashed_id}.json", data={"tags[]": tags})

    # --- Swap (Wistia's newer API) ---------------------------------------------------------

    def swap(self, original: str, replacement: str) -> tuple[BackgroundJob, str]:
        """Ask Wistia to put `replacement`'s file behind `original` (which keeps its hashed
        id, URLs and stats): `PUT medias/<original>/swap`. One try: the caller records what
        it asked before and after. Returns the background job, and the API that took the
        request ("modern" or "v1"), which is where the job is followed.

        Unsure whether v1 serves Swap or only the newer API (current-api-facts.md): swap_url
        first; where it answers 404 while the original is there, api_url."""
        body = {"replacement_media_id": replacement}
        path = f"medias/{quote(original, safe='')}/swap"
        try:
            answer = self._swap_api("PUT", path, json=body)
            api = "modern"
        except NotFoundError:
            self.media(original)  # raises NotFoundError itself when the original is gone
            answer = self._api("PUT", path + ".json", json=body, tries=1)  # v1's spelling
            api = "v1"
        return self._background_job(answer), api

    def background_job(self, job_id: str, api: str) -> BackgroundJob:
        """Where a Swap's background job is: `GET background_job_status/<id>`."""
        path = f"background_job_status/{quote(job_id, safe='')}"
        if api == "v1":
            return self._background_job(self._api("GET", path + ".json"))
        return self._background_job(self._swap_api("GET", path))

    def _swap_api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to the newer API, its release pinned (X-Wistia-API-Version). A swap itself
        is tried once (the caller records around it); a status is retried as any read."""
        headers = {"X-Wistia-API-Version": self.settings.api_version}
        if self.swap_url == self.api_url:
            path += ".json"
        tries = 1 if method == "PUT" else None
        return self._api(method, path, base=self.swap_url, headers=headers, tries=tries, **kwargs)

    def _background_job(self, response: httpx.Response) -> BackgroundJob:
        try:
            return BackgroundJob.from_answer(self._json(response))
        except ValidationError:
            raise TransientError("Wistia's answer named no background job") from None

    # --- plumbing --------------------------------------------------------------------------

    def _api(
        self,
        method: str,
        path: str,
        *,
        tries: int | None = None,
        budget: RateLimiter | None = None,
        base: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A Data API call (or one to `base`), retried in-process on transient errors (each
        try rate-limited, and also by `budget` when it is a poll)."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientError),
            wait=API_RETRY_WAIT,
            stop=tenacity.stop_after_attempt(tries or self._api_retries)
            | tenacity.stop.stop_when_event_set(self._stop),
            sleep=self._sleep,
            reraise=True,
        )
        url = (base or self.api_url) + path
        return retrying(self._send, method, url, budget=budget, **kwargs)

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
        error = classify(response)
        if isinstance(error, TransientError) and error.status_code in (429, 503):
            # The limit is per account: every worker and the poller wait, not just this one.
            pause = DEFAULT_PAUSE_SECONDS if error.retry_after is None else error.retry_after
            self._limiter.pause_for(pause)
        if error is not None:
            raise error
        return response

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
