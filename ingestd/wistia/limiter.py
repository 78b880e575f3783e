"""How fast ingestd talks to Wistia: the requests per minute every thread shares (with the
account-wide pause a 429 or 503 asks for), and the bytes per second all uploads share.

A sliding log rather than a token bucket: a bucket allows up to twice its size in a window,
and Wistia counts per minute. The upload throttle gives each chunk its slot in time (the
generic cell rate algorithm). Both wait in slices that announce themselves to the stage's
heartbeat and end at once when the daemon stops.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from ingestd.core import liveness
from ingestd.core.errors import Cancelled

# A little more than a minute, so that requests spaced by the limiter cannot arrive at
# Wistia closer together than its window because of network jitter.
RATE_WINDOW_SECONDS = 60.5
# The share of the request budget polling may use, whatever else waits.
POLL_SHARE = 0.25
# How much longer than its own timeout a wait may take before its stage counts as stuck.
STALL_MARGIN_SECONDS = 30.0


def poll_share(per_minute: int) -> int:
    return max(1, int(per_minute * POLL_SHARE))


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
