"""The account-wide hold: at most one row, the stop every upload waits on (video limit, auth).

A hold of the same kind keeps its start and its probe schedule; exactly one caller wins each
probe (`take_probe`), however many workers ask; clearing it wakes every waiting stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingestd.core.jobs import HoldRequest, JobState
from ingestd.ledger.db import Db, prose, retried_write


@dataclass(frozen=True)
class Hold:
    """The account-wide stop: nothing is uploaded until a probe succeeds."""

    kind: str  # video_limit | auth
    reason: str
    since: float
    next_probe_at: float
    probe_interval: float


class HoldPart:
    def __init__(self, db: Db) -> None:
        self.db = db

    def current(self) -> Hold | None:
        row = self.db.one("SELECT kind, reason, since, next_probe_at, probe_interval FROM hold")
        return Hold(**row) if row else None

    @retried_write
    def start(self, request: HoldRequest) -> Hold:
        """Start the hold; a hold of the same kind keeps its start and its probe schedule.
        `since` is wall time (shown); the probe's time is steady (waited for)."""
        now = self.db.clock.now()
        with self.db.write():
            current = self.db.one("SELECT kind FROM hold")
            if current and current["kind"] == request.kind:
                self.db.conn.execute("UPDATE hold SET reason = ?", (prose(request.reason),))
            else:
                self.db.conn.execute(
                    """INSERT OR REPLACE INTO hold (id, kind, reason, since, next_probe_at,
                                                    probe_interval)
                       VALUES (1, ?, ?, ?, ?, ?)""",
                    (
                        request.kind,
                        prose(request.reason),
                        self.db.clock.wall(),
                        now + request.first_probe_in,
                        request.first_probe_in,
                    ),
                )
        hold = self.current()
        assert hold is not None
        return hold

    @retried_write
    def take_probe(self, kind: str, next_interval: float) -> bool:
        """True for the one caller that may probe now; pushes the next probe further out."""
        now = self.db.clock.now()
        with self.db.write():
            cursor = self.db.conn.execute(
                """UPDATE hold SET next_probe_at = ?, probe_interval = ?
                   WHERE kind = ? AND next_probe_at <= ?""",
                (now + next_interval, next_interval, kind, now),
            )
            return cursor.rowcount == 1

    @retried_write
    def clear(self, kind: str | None = None) -> bool:
        """End the hold; every waiting stage is woken, as the jobs it held back may go on."""
        with self.db.write():
            if kind is None:
                cursor = self.db.conn.execute("DELETE FROM hold")
            else:
                cursor = self.db.conn.execute("DELETE FROM hold WHERE kind = ?", (kind,))
            cleared = cursor.rowcount > 0
            if cleared:
                self.db.entered.update(JobState)
        return cleared
