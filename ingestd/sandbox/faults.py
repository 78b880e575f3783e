"""Faults the sandbox can inject, switchable at run time (from tests, the CLI or HTTP).

Each switch imitates something Wistia or the network really does: the rate limit (429, or
the older 503, with Retry-After in seconds or as an HTTP date), the account's video limit,
server errors, dropped connections, latency, answers slow enough to trip a client timeout,
a token that stops working, and media lists that lag behind.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import Field, dataclass, field, fields
from email.utils import formatdate
from typing import Any


@dataclass
class Faults:
    # Rate limit: at most this many requests per 60 s, answered with `rate_limit_status`.
    rate_limit_per_minute: int | None = None
    rate_limit_status: int = 429
    # The window the limit counts in: Wistia's minute, shorter in tests.
    rate_window_seconds: float = 60.0
    retry_after_as_date: bool = False
    # Video limit: uploads beyond this many medias in the account get Wistia's 400.
    video_limit: int | None = None
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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.error_statuses = tuple(self.error_statuses)
        self._random = random.Random(self.seed)

    def update(self, **changes: Any) -> None:
        """Switch faults at run time: every change is checked first, then all are applied
        together (a bad one applies none)."""
        switches = {f.name: f for f in fields(self) if not f.name.startswith("_")}
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
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

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


# The value types each switch's annotation allows, as JSON gives them.
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "None": (type(None),),
}


def _checked(switch: Field[Any], value: Any) -> Any:
    """`value` if the switch's annotation allows it (a list for the tuple of statuses)."""
    annotation = str(switch.type)
    if annotation.startswith("tuple"):
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ValueError(f"{switch.name}: must be a list of HTTP statuses")
        return tuple(value)
    allowed = tuple(t for name in annotation.split("|") for t in _JSON_TYPES[name.strip()])
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise ValueError(f"{switch.name}: must be {annotation}, not {value!r}")
    return value


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
