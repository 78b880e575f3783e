"""The heartbeat (`notify.heartbeat_url`): a GET every `notify.heartbeat_seconds` while the
daemon is well, for a dead man's switch (healthchecks.io, Uptime Kuma's push monitors): when
the pings stop, the receiver alerts someone.

Well means: every stage runs and makes progress (the supervisor's last look, which the daemon
hands in as `unwell`), and no account-wide hold has lasted over an hour (uploads stopped that
long by a video limit or a refused token need a person, though the daemon itself is fine).
While it is not well no ping goes out, and the pause and the resumption are logged once each;
once it is well again the next ping goes out at once, then every `heartbeat_seconds`.

The ping carries nothing: no body, no token, no job. Its URL may hold a key (a healthchecks.io
ping URL is its own secret): the URL is never logged, and `secrets` lists its pieces for the
daemon to register with logs.add_secret. Each ping ends within `notify.timeout_seconds`
(within.request_within). It is a stage of its own, never the main loop's work: a GET can hang.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from ingestd import __version__, logs
from ingestd.config.settings import Settings
from ingestd.core import liveness
from ingestd.ledger import Ledger, Ledgers
from ingestd.pipeline.loop import run_stage
from ingestd.telling.notify import within

log = logs.get("ingestd.heartbeat")

# An account-wide hold longer than this stops the pings: uploads have waited long enough.
HOLD_TOO_LONG_SECONDS = 3600.0
# While the daemon is not well, how often it looks again (a ping goes out once it is well).
RECHECK_SECONDS = 1.0
# A piece of the URL's path this long is taken for a key (a ping key, a UUID); shorter ones
# are words ("ping", "api") that must not be blanked out of every log line.
SHORTEST_PATH_SECRET = 16
SHORTEST_SECRET = 6


def secrets(url: str) -> list[str]:
    """The pieces of a heartbeat URL no output may show: its password and the credentials
    sent from it, its query values, and the pieces of its path long enough to be keys."""
    if not url:
        return []
    parts = urlsplit(url)
    found = {unquote(piece) for piece in parts.path.split("/")}
    found = {piece for piece in found if len(piece) >= SHORTEST_PATH_SECRET}
    try:
        password = parts.password
    except ValueError:
        password = None
    shorter = [unquote(password)] if password else []
    shorter += [value for _, value in parse_qsl(parts.query)]
    found.update(piece for piece in shorter if len(piece) >= SHORTEST_SECRET)
    found.update(within.secrets(url))
    return sorted(found)


class Pinger:
    """The heartbeat's stage: pings while the daemon is well."""

    def __init__(
        self,
        settings: Settings,
        ledgers: Ledgers,
        stop: threading.Event,
        unwell: Callable[[], str | None],
    ) -> None:
        self.settings = settings
        self.ledgers = ledgers
        self.stop = stop
        self.clock = ledgers.clock
        self.unwell = unwell  # why the stages are not well (None: they are)
        self.wake = threading.Event()
        self._next_ping: float | None = None  # steady time; None: at once, once well
        self._paused: str | None = None  # why the pings stopped, as last logged
        self._pinged = False

    def reload(self, fresh: Settings) -> None:
        """A reload pings at once (if well): a new URL hears at once that all is well."""
        self.settings = fresh
        self._next_ping = None
        self.wake.set()

    def run(self) -> None:
        with self.ledgers.opened() as ledger:
            run_stage(self.stop, self.wake, self.clock, lambda now: self.beat(ledger, now))

    def beat(self, ledger: Ledger, now: float) -> float | None:
        """A ping if one is due and the daemon is well; when to look again."""
        notify = self.settings.notify
        url = notify.heartbeat_url.get_secret_value()
        if not url:
            self._next_ping = None
            return None
        if self._next_ping is not None and now < self._next_ping:
            return self._next_ping
        why = self.why_unwell(ledger)
        if why is not None:
            if why != self._paused:  # said once for each reason
                if self._pinged:
                    log.warning("heartbeat paused: the daemon is not well", why=why)
                else:  # starting: the stages are looked at within a second
                    log.debug("heartbeat waits for the daemon to be well", why=why)
                self._paused = why
            return now + RECHECK_SECONDS
        if self._paused is not None:
            if self._pinged:
                log.info("heartbeat resumed: the daemon is well again")
            self._paused = None
        self._ping(url, notify.timeout_seconds)
        self._next_ping = now + notify.heartbeat_seconds
        return self._next_ping

    def why_unwell(self, ledger: Ledger) -> str | None:
        """Why no ping may go out now; None when the daemon is well."""
        why = self.unwell()
        if why is not None:
            return why
        hold = ledger.hold.current()
        if hold is not None and self.clock.wall() - hold.since > HOLD_TOO_LONG_SECONDS:
            return f"uploads on hold ({hold.kind}) for over an hour: {hold.reason}"
        return None

    def _ping(self, url: str, seconds: float) -> None:
        liveness.beat(allow=seconds + 30)  # a GET that may take its whole deadline
        headers = {"User-Agent": f"ingestd/{__version__}"}
        refused = within.request_within("GET", url, None, headers, seconds, who="heartbeat")
        self._pinged = True
        if refused is not None:
            log.warning("heartbeat not taken; the next one goes out as usual", error=refused)
        else:
            log.debug("heartbeat sent")
