"""Due times across a restart (core.clock): a step of the system clock while the daemon was
stopped, or during the last daemon's life, shows as due times far ahead; at start-up they are
brought within reach."""

from __future__ import annotations

from ingestd.core.clock import FUTURE_MARGIN_SECONDS, PLAUSIBLE_WAIT_SECONDS
from ingestd.ledger.db import Db, retried_write


class Dues:
    def __init__(self, db: Db) -> None:
        self.db = db

    @retried_write
    def bring_within(self, now: float, longest_wait: float = 0.0) -> int:
        """At start-up: due times stored by an earlier process, implausibly far ahead of
        `now` (the system clock stepped back since, or the last process's steady clock had
        moved away from it: clock.py), are due now; waits that began in the future begin
        now. `longest_wait`: the longest wait the config allows (its backoff caps), which
        a due time may lawfully be ahead by. Returns how many were brought back."""
        latest = now + max(PLAUSIBLE_WAIT_SECONDS, 2 * longest_wait)
        soonest_start = now + FUTURE_MARGIN_SECONDS
        due = [
            ("jobs", "next_attempt_at"),
            ("jobs", "next_poll_at"),
            ("jobs", "resync_due_at"),
            ("hold", "next_probe_at"),
            ("hold", "next_check_at"),
            ("notifications", "next_attempt_at"),
        ]
        begun = [
            ("jobs", "settle_since"),
            ("jobs", "processing_since"),
            ("jobs", "incomplete_since"),
            ("notifications", "queued_at"),
        ]
        changed = 0
        with self.db.write():
            for table, column in due:
                changed += self.db.conn.execute(
                    f"UPDATE {table} SET {column} = ? WHERE {column} > ?", (now, latest)
                ).rowcount
            for table, column in begun:
                changed += self.db.conn.execute(
                    f"UPDATE {table} SET {column} = ? WHERE {column} > ?", (now, soonest_start)
                ).rowcount
        return changed
