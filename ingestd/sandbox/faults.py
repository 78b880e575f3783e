"""Faults and behaviours the sandbox can switch, at run time (from tests, the CLI or HTTP).

Each fault imitates something Wistia or the network really does: the rate limit (429, or
the older 503, with Retry-After in seconds or as an HTTP date), the account's video (media)
limit and storage limit, a plan without a feature (403), a token without a scope (401),
server errors, dropped connections, latency, answers slow enough to trip a client timeout, a
token that stops working, and media lists that lag behind.

The behaviour switches cover what Wistia's public material leaves unsure (README, "The
sandbox", says which reading is the default and why): the body of an error, the name of a
project's hashed id, what account.json says when there is no limit, what an upload to a
project that no longer exists gets, how a customizations update merges, and how Swap ends.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import Field, dataclass, field, fields
from email.utils import formatdate
from typing import Any

VIDEO_LIMIT_ERROR = (
    "This account has exceeded its video limit. Please upgrade to upload more videos."
)
# Wistia's exact wording is not published (facts: *unsure*); a client must read it by meaning.
STORAGE_LIMIT_ERROR = (
    "This account has exceeded its storage limit. Please upgrade to upload more media."
)

# What `forbidden` and `scope_denied` may name: a feature (every endpoint of it), one endpoint,
# or `tags` / `still` (a media update carrying tags or new_still_media_id).
FEATURES = frozenset(
    {
        "upload",
        "account",
        "medias",
        "captions",
        "customizations",
        "projects",
        "swap",
        "background_jobs",
        "tags",
        "still",
    }
)
ENDPOINTS = frozenset(
    {
        "upload",
        "account",
        "medias_list",
        "media_show",
        "media_update",
        "media_delete",
        "captions_list",
        "captions_create",
        "captions_show",
        "captions_update",
        "captions_delete",
        "customizations_show",
        "customizations_create",
        "customizations_update",
        "customizations_delete",
        "projects_list",
        "project_create",
        "project_show",
        "swap",
        "background_job_status",
    }
)

# The string switches and the values each may take (the first is the default).
CHOICES: dict[str, tuple[str, ...]] = {
    "error_body": ("error", "code_detail", "nested"),
    "rate_limit_body": ("text", "json"),
    "project_hashed_id_key": ("hashedId", "hashed_id"),
    "media_project_hashed_id_key": ("hashed_id", "hashedId"),
    "no_video_limit": ("null", "absent", "zero"),
    "upload_unknown_project": ("error", "not_found", "default_project"),
    "customizations_merge": ("deep", "shallow"),
}


@dataclass
class Faults:
    # --- faults ----------------------------------------------------------------------------
    # Rate limit: at most this many requests per window, answered with `rate_limit_status`.
    rate_limit_per_minute: int | None = None
    rate_limit_status: int = 429
    # The window the limit counts in: Wistia's minute, shorter in tests.
    rate_window_seconds: float = 60.0
    retry_after_as_date: bool = False
    # The 429's body: Wistia's OpenAPI gives it as text/plain "Rate limit exceeded"; "json"
    # answers {"error": "Rate limit exceeded"} instead.
    rate_limit_body: str = "text"
    # Video (media) limit: an upload that would make the account hold more than this many
    # medias gets Wistia's 400. Every media counts, images included.
    video_limit: int | None = None
    video_limit_message: str = VIDEO_LIMIT_ERROR
    # Whether archived medias count toward the video limit and account.json's mediaCount
    # (Wistia's help pages: archiving frees room in the media limit, not in storage).
    archived_count_toward_limit: bool = False
    # Storage limit in bytes: an upload that would take the account's stored bytes (archived
    # medias included) beyond it gets a 400 with `storage_limit_message`.
    storage_limit: int | None = None
    storage_limit_message: str = STORAGE_LIMIT_ERROR
    # Endpoints answered 403 (the plan lacks the feature) or 401 `unauthorized_scope` (the
    # token lacks the scope): names from FEATURES or ENDPOINTS.
    forbidden: tuple[str, ...] = ()
    scope_denied: tuple[str, ...] = ()
    # Random failures: a fraction of requests answered with one of `error_statuses`.
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    # A fraction of requests whose connection is dropped (uploads: halfway through the body).
    drop_rate: float = 0.0
    # Seconds added before every answer.
    latency: float = 0.0
    # Seconds an answer is held back after the request was read (trips client timeouts):
    # for uploads, and for every other request.
    slow_upload_seconds: float = 0.0
    slow_seconds: float = 0.0
    # Every request is answered 401.
    auth_fail: bool = False
    # Lists (GET /v1/medias.json) show a media only this long after it was created, as a
    # search index that lags behind would; show and update see it at once.
    list_lag_seconds: float = 0.0
    # Lists are answered with this status (0: they work), as a list too big to build in time
    # would be; show and update still work.
    list_fail_status: int = 0
    # Deterministic switches for tests: the next N uploads fail with `fail_status`, or are
    # dropped halfway through their body.
    fail_uploads: int = 0
    fail_status: int = 500
    drop_uploads: int = 0
    # Image uploads (thumbnails) end `failed`, as an image Wistia cannot process would.
    fail_images: bool = False
    seed: int | None = None

    # --- behaviours where Wistia's material is unsure -------------------------------------
    # JSON error bodies: {"error": msg}, {"code": ..., "detail": msg}, or
    # {"error": {"code": ..., "detail": msg}} (the Upload API's OpenAPI schema).
    error_body: str = "error"
    # The key of a project's hashed id in project objects, and in a media's `project`.
    project_hashed_id_key: str = "hashedId"
    media_project_hashed_id_key: str = "hashed_id"
    # account.json's videoLimit when the account has none: null, left out, or 0.
    no_video_limit: str = "null"
    # An upload naming a project that does not exist: a 400, a 404, or the media lands in
    # the day's Uploads_YYYY-MM-DD project as if no project_id had been sent.
    upload_unknown_project: str = "error"
    # PUT customizations: nested objects merged key by key ("deep") or replaced ("shallow").
    customizations_merge: str = "deep"
    # Swap: also served under /v1/ (the SDK's OpenAPI listed it while its server was /v1).
    swap_on_v1: bool = True
    # Seconds a swap's background job takes (None: the sandbox's processing_seconds).
    swap_seconds: float | None = None
    # Background jobs of swaps asked for while this is on end `failed`.
    swap_job_fails: bool = False
    # After a finished swap the replacement media is still listed (True) or gone (False);
    # still listed, it keeps its own file, or takes the original's old one (a true swap).
    swap_keeps_replacement: bool = True
    swap_exchanges_files: bool = False

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.error_statuses = tuple(self.error_statuses)
        self.forbidden = tuple(self.forbidden)
        self.scope_denied = tuple(self.scope_denied)
        self._random = random.Random(self.seed)
        # Values given to the constructor pass the same checks as run-time changes.
        switches = _switches(self)
        for name in switches:
            setattr(self, name, _checked(switches[name], getattr(self, name)))

    def update(self, **changes: Any) -> None:
        """Switch faults at run time: every change is checked first, then all are applied
        together (a bad one applies none)."""
        switches = _switches(self)
        unknown = set(changes) - switches.keys()
        if unknown:
            raise ValueError(f"unknown fault option(s): {', '.join(sorted(unknown))}")
        checked = {name: _checked(switches[name], value) for name, value in changes.items()}
        with self._lock:
            for name, value in checked.items():
                setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        """The switches as JSON-ready values (not `dataclasses.asdict`, which would deep-copy
        the lock)."""
        return {name: getattr(self, name) for name in _switches(self)}

    def take(self, counter: str) -> bool:
        """Consume one of the deterministic `fail_uploads` / `drop_uploads`."""
        with self._lock:
            left = getattr(self, counter)
            if left > 0:
                setattr(self, counter, left - 1)
                return True
            return False

    def roll(self, rate: float) -> bool:
        with self._lock:
            return rate > 0 and self._random.random() < rate

    def random_error_status(self) -> int:
        with self._lock:
            return self._random.choice(self.error_statuses)

    def retry_after_header(self, seconds: float) -> str:
        whole = max(1, int(seconds + 0.999))
        if self.retry_after_as_date:
            return formatdate(time.time() + whole, usegmt=True)
        return str(whole)

    def refuses(self, switch: str, names: set[str]) -> str | None:
        """The first of `names` that `forbidden` or `scope_denied` lists, if any."""
        listed: tuple[str, ...] = getattr(self, switch)
        return next((name for name in listed if name in names), None)


def _switches(faults: Faults) -> dict[str, Field[Any]]:
    return {f.name: f for f in fields(faults) if not f.name.startswith("_")}


# The value types each switch's annotation allows, as JSON gives them.
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "None": (type(None),),
}


def _checked(switch: Field[Any], value: Any) -> Any:
    """`value` if the switch's annotation (and, for names and choices, its list of allowed
    values) allows it; lists become tuples."""
    annotation = str(switch.type)
    if annotation.startswith("tuple"):
        return _checked_tuple(switch.name, annotation, value)
    allowed = tuple(t for name in annotation.split("|") for t in _JSON_TYPES[name.strip()])
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise ValueError(f"{switch.name}: must be {annotation}, not {value!r}")
    choices = CHOICES.get(switch.name)
    if choices is not None and value not in choices:
        raise ValueError(f"{switch.name}: must be one of {', '.join(choices)}, not {value!r}")
    return value


def _checked_tuple(name: str, annotation: str, value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{name}: must be a list")
    if annotation == "tuple[int, ...]":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{name}: must be a list of HTTP statuses")
        return tuple(value)
    known = FEATURES | ENDPOINTS
    unknown = [v for v in value if not isinstance(v, str) or v not in known]
    if unknown:
        raise ValueError(
            f"{name}: unknown endpoint name(s) {unknown!r}; known: {', '.join(sorted(known))}"
        )
    return tuple(value)


class RateWindow:
    """Counts the requests the sandbox served in the last window, as Wistia's limit does."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self, limit: int, window: float) -> float | None:
        """None when the request may pass (and counts); else seconds until one may."""
        with self._lock:
            now = time.monotonic()
            while self._times and self._times[0] <= now - window:
                self._times.popleft()
            if len(self._times) < limit:
                self._times.append(now)
                return None
            return self._times[0] + window - now
