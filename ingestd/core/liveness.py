"""Is every stage making progress? The heartbeats the supervisor reads before pinging systemd.

Each stage thread has a Heartbeat, attached to the thread while it runs. The stage beats it on
every pass of its loop, and so does anything that may wait long inside one job's step: the
rate limiter while it holds a request back, an upload for every chunk it reads, a request
before it goes out (allowing for its timeout), a hash for every chunk. A beat says "I am alive;
worry if you hear nothing for `allow` seconds". The supervisor pings systemd's watchdog only
while no heartbeat is overdue, so a stage stuck for good gets the daemon restarted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# A stage that says nothing for this long, outside a wait it announced, is stuck.
DEFAULT_ALLOW_SECONDS = 60.0


class Heartbeat:
    def __init__(self, name: str) -> None:
        self.name = name
        self._last = time.monotonic()
        self._allow = DEFAULT_ALLOW_SECONDS

    def beat(self, allow: float = DEFAULT_ALLOW_SECONDS) -> None:
        self._last = time.monotonic()
        self._allow = allow

    def overdue(self, now: float | None = None) -> float:
        """Seconds past the allowed silence (0 while all is well)."""
        now = time.monotonic() if now is None else now
        return max(0.0, now - self._last - self._allow)


# The heartbeat of the stage the calling thread works for (each thread has its own value).
_attached: ContextVar[Heartbeat | None] = ContextVar("heartbeat", default=None)


@contextmanager
def attached(heartbeat: Heartbeat) -> Iterator[Heartbeat]:
    """Make `heartbeat` the one `beat()` reaches from this thread."""
    token = _attached.set(heartbeat)
    heartbeat.beat()
    try:
        yield heartbeat
    finally:
        _attached.reset(token)


def current() -> Heartbeat | None:
    """The heartbeat attached to the calling thread (to lend to a helper thread)."""
    return _attached.get()


@contextmanager
def lent(heartbeat: Heartbeat | None) -> Iterator[None]:
    """Let a helper thread beat its stage's heartbeat while it works for it."""
    if heartbeat is None:
        yield
        return
    token = _attached.set(heartbeat)
    try:
        yield
    finally:
        _attached.reset(token)


def beat(allow: float = DEFAULT_ALLOW_SECONDS) -> None:
    """Beat the heartbeat of the calling thread's stage, if it has one."""
    heartbeat = _attached.get()
    if heartbeat is not None:
        heartbeat.beat(allow)
