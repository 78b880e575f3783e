"""The account-wide hold: at most one row, the stop every upload waits on (video limit, auth).

A hold of the same kind keeps its start and its probe schedule; exactly one caller wins each
probe (`take_probe`) and each look at the account (`take_check`), however many workers ask;
clearing it wakes every waiting stage, and makes due at once the jobs that waited on it.

Two schedules, so that a hold costs no upload while Wistia can say there is no room:
`next_check_at` is the next cheap look at the account (video limit only: `GET account.json`,
every few seconds), `next_probe_at` the next real probe (an upload under a video-limit hold,
on a growing interval, and only while the last look did not show the account full; a token
check under an auth hold). `room` is what the last look said: `none`, `room` or `unknown`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ingestd.core.jobs import HOLD_REASON_PREFIX, HoldRequest, JobState
from ingestd.ledger.db import Db, prose, retried_write

Room = Literal["none", "room", "unknown"]


@dataclass(frozen=True)
class Hold:
    """The account-wide stop: nothing is uploaded until a probe succeeds."""

    kind: str  # video_limit | auth
    reason: str
    since: float
    next_probe_at: float
    probe_interval: float
    next_check_at: float | None = None
    room: Room | None = None  # what the last look at the account said (None: no look yet)

    @property
    def full(self) -> bool:
        """The last look at the account showed it holding as many medias as it may."""
        return self.room == "none"


class HoldPart:
    def __init__(self, db: Db) -> None:
        self.db = db

    def current(self) -> Hold | None:
        row = self.db.one(
            """SELECT kind, reason, since, next_probe_at, probe_interval, next_check_at, room
               FROM hold"""
        )
        return Hold(**row) if row else None

    @retried_write
    def start(self, request: HoldRequest) -> Hold:
        """Start the hold; a hold of the same kind keeps its start and its probe schedule.
        `since` is wall time (shown); the probe's and the check's times are steady."""
        now = self.db.clock.now()
        with self.db.write():
            current = self.db.one("SELECT kind FROM hold")
            if current and current["kind"] == request.kind:
                self.db.conn.execute("UPDATE hold SET reason = ?", (prose(request.reason),))
            else:
                self.db.conn.execute(
                    """INSERT OR REPLACE INTO hold (id, kind, reason, since, next_probe_at,
                                                    probe_interval, next_check_at, room)
                       VALUES (1, ?, ?, ?, ?, ?, ?, NULL)""",
                    (
                        request.kind,
                        prose(request.reason),
                        self.db.clock.wall(),
                        now + request.first_probe_in,
                        request.first_probe_in,
                        None if request.first_check_in is None else now + request.first_check_in,
                    ),
                )
        hold = self.current()
        assert hold is not None
        return hold

    @retried_write
    def take_probe(self, kind: str, next_interval: float) -> bool:
        """True for the one caller that may probe now; pushes the next probe further out.
        Under a video limit, only after a look at the account that did not show it full."""
        now = self.db.clock.now()
        with self.db.write():
            cursor = self.db.conn.execute(
                """UPDATE hold SET next_probe_at = ?, probe_interval = ?
                   WHERE kind = ? AND next_probe_at <= ?
                     AND (next_check_at IS NULL OR room IN ('room', 'unknown'))""",
                (now + next_interval, next_interval, kind, now),
            )
            return cursor.rowcount == 1

    @retried_write
    def take_check(self, kind: str, every: float) -> bool:
        """True for the one caller that may look at the account now; the next look is
        `every` seconds later."""
        now = self.db.clock.now()
        with self.db.write():
            cursor = self.db.conn.execute(
                """UPDATE hold SET next_check_at = ?
                   WHERE kind = ? AND (next_check_at IS NULL OR next_check_at <= ?)""",
                (now + every, kind, now),
            )
            return cursor.rowcount == 1

    @retried_write
    def saw_room(self, kind: str, room: Room, first_probe_in: float) -> Hold | None:
        """What a look at the account said. Full: the next upload probe is due the moment
        room shows (and its interval starts again from the first)."""
        now = self.db.clock.now()
        with self.db.write():
            if room == "none":
                self.db.conn.execute(
                    """UPDATE hold SET room = 'none', next_probe_at = ?, probe_interval = ?
                       WHERE kind = ?""",
                    (now, first_probe_in, kind),
                )
            else:
                self.db.conn.execute("UPDATE hold SET room = ? WHERE kind = ?", (room, kind))
        return self.current()

    @retried_write
    def probe_now(self) -> bool:
        """SIGHUP: look at the account and probe at once (the look first: it may show no
        room, which then spares the upload)."""
        now = self.db.clock.now()
        with self.db.write():
            cursor = self.db.conn.execute(
                """UPDATE hold SET next_probe_at = ?, room = NULL,
                   next_check_at = CASE WHEN next_check_at IS NULL THEN NULL ELSE ? END""",
                (now, now),
            )
            if cursor.rowcount:
                self.db.entered.add(JobState.QUEUED)
        return cursor.rowcount > 0

    @retried_write
    def clear(self, kind: str | None = None) -> bool:
        """End the hold; every waiting stage is woken, as the jobs it held back may go on,
        and the finishing steps that waited on it (a thumbnail is an upload too) are due."""
        with self.db.write():
            if kind is None:
                cursor = self.db.conn.execute("DELETE FROM hold")
            else:
                cursor = self.db.conn.execute("DELETE FROM hold WHERE kind = ?", (kind,))
            cleared = cursor.rowcount > 0
            if cleared:
                now = self.db.clock.now()
                waited = (HOLD_REASON_PREFIX + "%",)
                self.db.conn.execute(
                    """UPDATE jobs SET next_attempt_at = NULL
                       WHERE state = 'finishing' AND reason LIKE ?""",
                    waited,
                )
                self.db.conn.execute(
                    """UPDATE jobs SET resync_due_at = ?
                       WHERE state = 'done' AND resync_due_at > ? AND reason LIKE ?""",
                    (now, now, *waited),
                )
                self.db.entered.update(JobState)
        return cleared
