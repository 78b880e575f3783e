"""Probing the account-wide hold: when uploading may start again, at the least cost.

Under an **auth** hold, one cheap call (`GET /v1/account.json`) on a growing interval tells
whether the token works again; it lifts the hold.

Under a **video-limit** hold the same call is a look at how full the account is, every
ROOM_CHECK_SECONDS: while it shows `mediaCount >= videoLimit` nothing is uploaded at all.
When it shows room, or cannot tell (no limit given: a storage limit, say), one probe upload of
the smallest waiting file is allowed, on a growing interval (the first at once when room has
just appeared); its success lifts the hold (upload.py). SIGHUP makes both due at once.

What a look saw is also kept for `status` ("media 48 of 50"): at every look under the hold,
and after an upload when the last look is older than ACCOUNT_REFRESH_SECONDS (so a daemon
that uploads nothing asks nothing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core.backoff import Backoff
from ingestd.core.clock import Clock
from ingestd.core.errors import AuthError, Cancelled, WistiaError
from ingestd.core.outcomes import ROOM_CHECK_SECONDS
from ingestd.ledger import Hold, Ledger
from ingestd.ledger.hold import Room
from ingestd.wistia.client import WistiaClient

log = logs.get("ingestd.uploader")

# Outside a hold, how stale the account's media count in `status` may grow while uploading.
ACCOUNT_REFRESH_SECONDS = 300.0


class HoldProbes:
    def __init__(
        self, settings: Callable[[], Settings], client: WistiaClient, clock: Clock
    ) -> None:
        self._settings = settings  # the stage's, as reloaded
        self.client = client
        self.clock = clock
        self._refresh_lock = threading.Lock()  # the workers share one look
        self._refreshed_at: float | None = None  # steady time of this process's last refresh

    def may_upload(self, ledger: Ledger, hold: Hold) -> bool:
        """Under a video-limit hold: whether this caller may send the probe upload now
        (looking at the account first when that is due)."""
        if ledger.hold.take_check(hold.kind, ROOM_CHECK_SECONDS):
            room = self.look(ledger)
            seen = ledger.hold.saw_room(hold.kind, room, self._settings().ingest.probe_min_seconds)
            if seen is None:
                return False  # lifted meanwhile: the next pass sends as usual
            hold = seen
            if room != "none" and not ledger.jobs.any_queued():
                # Nothing to probe with (what waits is a thumbnail, an image upload): the
                # look is the probe, and what waited tries again.
                if ledger.hold.clear(hold.kind):
                    log.info("the account is not full: the hold is lifted", room=room)
                return False
        if hold.full or not ledger.hold.take_probe(hold.kind, self.next_probe_in(hold)):
            return False
        log.info("probing whether uploads are possible again", by="the smallest waiting file")
        return True

    def token(self, ledger: Ledger, hold: Hold) -> None:
        """Under an auth hold: one cheap call tells whether the token works again."""
        if not ledger.hold.take_probe(hold.kind, self.next_probe_in(hold)):
            return
        try:
            account = self.client.account_media(tries=1)
        except AuthError as exc:
            log.warning("the token is still refused", reason=exc.reason)
            return
        except (WistiaError, Cancelled) as exc:
            log.info("could not probe the token; trying later", reason=str(exc))
            return
        ledger.facts.set_account_media(account.media_count, account.limit)
        if ledger.hold.clear("auth"):
            log.info("the token is accepted again; resuming", account=account.name)

    def look(self, ledger: Ledger) -> Room:
        """How full the account is (`GET /v1/account.json`), kept for `status`; `unknown`
        where Wistia gives no limit or no answer."""
        try:
            account = self.client.account_media(tries=1)
        except (WistiaError, Cancelled) as exc:
            log.info("could not ask the account whether it has room", reason=str(exc))
            return "unknown"
        ledger.facts.set_account_media(account.media_count, account.limit)
        log.info(
            "the account's media", media=account.media_count, limit=account.limit, room=account.room
        )
        return account.room

    def refresh(self, ledger: Ledger) -> None:
        """After an upload: the count in `status` follows, at most once every few minutes
        for all the workers together."""
        now = self.clock.now()
        with self._refresh_lock:
            if (
                self._refreshed_at is not None
                and now - self._refreshed_at < ACCOUNT_REFRESH_SECONDS
            ):
                return
            self._refreshed_at = now
        self.look(ledger)

    def next_probe_in(self, hold: Hold) -> float:
        ingest = self._settings().ingest
        return Backoff(ingest.probe_min_seconds, ingest.probe_max_seconds).after(
            hold.probe_interval
        )

    @staticmethod
    def next_chance(hold: Hold) -> float:
        """When the hold's next look or probe is due."""
        times = [] if hold.full else [hold.next_probe_at]
        if hold.next_check_at is not None:
            times.append(hold.next_check_at)
        return min(times) if times else hold.next_probe_at
