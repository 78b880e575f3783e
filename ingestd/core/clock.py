"""Time, two ways: a steady clock for every wait, and the wall clock for what meets the world.

The system clock can step: NTP correcting a drifted clock, a person setting it, a VM resumed
after a day. A due time stored and compared as wall time stalls for as long as a step back
lasts, and a step forward makes every wait look over at once (every media in processing
"timed out", every waiting notification "too old"). So:

- `now()` is the steady time every due time is stored in and compared with: the wall time
  when the process started, plus the monotonic time since. While the process lives, no
  step of the system clock moves it.
- `wall()` is the system clock, for what is compared with other clocks or shown to people:
  file times, Wistia's `created` and `updated`, the local upload hours, an event's time.

A due time outlives the process only in the ledger. The next process's steady time begins
at the wall time again, so a step that happened while the daemon was stopped (or while the
last one ran) shows as due times far in the future: the daemon takes any further ahead
than `PLAUSIBLE_WAIT_SECONDS` as due at once (Ledger.bring_times_within), and a waiting
that began in the future as beginning now.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

# No wait the daemon sets is longer than an hour (a Retry-After, a hold's probe, a retry at
# its cap); a stored due time further ahead than this came from a clock that stepped back.
PLAUSIBLE_WAIT_SECONDS = 2 * 3600.0
# A moment already begun (a settle, a processing) may lie a little ahead across processes
# (the CLI and the daemon read the wall clock a few milliseconds apart): this much is fine.
FUTURE_MARGIN_SECONDS = 60.0


class Clock:
    """The steady time (`now`) and the wall time (`wall`) of one process; shared by all of
    its threads, so that they agree on what is due."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._origin = wall() - monotonic()

    def now(self) -> float:
        """Steady seconds on the wall clock's scale: for every due time and every wait."""
        return self._origin + self._monotonic()

    def wall(self) -> float:
        """The system clock: to compare with file times and other machines, and to show."""
        return self._wall()

    def to_wall(self, steady: float) -> float:
        """A steady moment of this process on the wall clock as it reads now."""
        return steady + (self.wall() - self.now())

    def from_wall(self, wall: float) -> float:
        """A wall-clock moment on this process's steady scale."""
        return wall + (self.now() - self.wall())


def iso(epoch: float | None) -> str | None:
    """A wall-clock moment as ISO 8601 in UTC, to the second (`2026-11-23T09:22:59Z`)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
