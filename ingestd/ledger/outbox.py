"""The outbox: notifications written in the transaction that moves their job, kept until
delivered (telling.notify delivers them).

What is notified, and to whom, is the daemon's `Outbox` (passed in, so a process that is
not the daemon, such as `ingestd retry`, writes none): for each move into a state in
`events`, one row per receiver, in the move's own transaction, so a crash can lose neither.
`describe` is how the job is shown (the daemon gives status --json's job view): the ledger
stores that text and knows nothing of presentation. A job held again for the very problem
it was last held for, at once, is not told again.

A receiver is named `webhook`, `command`, or `<kind>#<n>` for the n-th URL of that kind in
`notify.urls` (`slack#1`, `mailto#2`): never by its URL, which holds secrets. The part before
`#` is the kind `status` counts by. A receiver in `digested` gathers: its notification is due
`digest_seconds` after it was queued, and not before a retry already set for that receiver,
so what arrives while it waits for the window to close (or for its retry) goes with it
(telling.notify takes a receiver's every waiting notification as one message).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ingestd.core.jobs import Job, JobState
from ingestd.ledger.db import Db, prose, retried_write

# A job held again this soon for the same problem was released by a recheck (at most a minute
# apart) and met it again: not a new notification.
HELD_AGAIN_SECONDS = 300.0


def _no_description(job: Job, at: float) -> str:
    return "{}"


@dataclass(frozen=True)
class Outbox:
    """What the daemon notifies: moves into `events`, each to every one of `receivers`."""

    events: frozenset[str] = frozenset()
    receivers: tuple[str, ...] = ()
    describe: Callable[[Job, float], str] = field(default=_no_description, compare=False)
    # Receivers told in digests: one message per window of `digest_seconds`.
    digested: frozenset[str] = frozenset()
    digest_seconds: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.events and self.receivers)


class Notification(NamedTuple):
    id: int
    uid: str
    receiver: str
    job_id: int
    event: str
    at: float  # wall time: what receivers are told
    job: str
    body: str | None
    attempts: int
    queued_at: float  # steady time (core.clock): its age is measured on it


class OutboxPart:
    """The ledger's notifications table."""

    def __init__(self, db: Db, outbox: Outbox | Callable[[], Outbox]) -> None:
        self.db = db
        self._config = outbox if callable(outbox) else (lambda: outbox)

    def moved(self, job: Job, note: str | None) -> None:
        """Inside a move's transaction: the notifications it calls for."""
        config = self._config()
        told = config.active and job.state.value in config.events
        if told and not self._held_again(job, note):
            self._enqueue(job, config)

    def _held_again(self, job: Job, note: str | None) -> bool:
        """Held again for the very problem it was last held for (released by a recheck, then
        met again at once): told once, not at every recheck."""
        if job.state != JobState.HELD:
            return False
        row = self.db.row(
            """SELECT note, at FROM events WHERE job_id = ? AND to_state = 'held'
               ORDER BY id DESC LIMIT 1 OFFSET 1""",
            (job.id,),
        )
        recent = row is not None and self.db.clock.wall() - row[1] <= HELD_AGAIN_SECONDS
        return recent and row[0] == prose(note)

    def _enqueue(self, job: Job, config: Outbox) -> None:
        """One notification of `job` entering its state, per receiver, in the transaction
        that moved it: a crash cannot separate the two."""
        at, now = self.db.clock.wall(), self.db.clock.now()
        shown = config.describe(job, at)
        uid = str(uuid.uuid4())
        for receiver in config.receivers:
            due = now
            if receiver in config.digested:
                due = self._window_closes(receiver, now + config.digest_seconds)
            self.db.conn.execute(
                """INSERT INTO notifications (uid, receiver, job_id, event, at, job,
                                              next_attempt_at, queued_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (uid, receiver, job.id, job.state.value, at, shown, due, now),
            )

    def _window_closes(self, receiver: str, closes: float) -> float:
        """When a digested notification queued now is due: when its window closes, or at the
        retry the receiver already waits for, whichever is later (a receiver that refused is
        not asked sooner because more arrived; what arrived goes with the retry)."""
        row = self.db.row(
            """SELECT max(next_attempt_at) FROM notifications
               WHERE receiver = ? AND attempts > 0""",
            (receiver,),
        )
        retry = row[0] if row is not None else None
        return closes if retry is None else max(closes, retry)

    # --- delivery -------------------------------------------------------------------------

    def due(
        self, now: float | None = None, limit: int = 20, receiver: str | None = None
    ) -> list[Notification]:
        """Notifications due by `now`, oldest first; of one receiver when it is given."""
        rows = self.db.raw(
            """SELECT id, uid, receiver, job_id, event, at, job, body, attempts, queued_at
               FROM notifications WHERE next_attempt_at <= ? AND (? IS NULL OR receiver = ?)
               ORDER BY next_attempt_at, id LIMIT ?""",
            (self.db.clock.now() if now is None else now, receiver, receiver, limit),
        )
        return [Notification(*row) for row in rows]

    def waiting_for(self, receiver: str, limit: int) -> list[Notification]:
        """Every notification waiting for `receiver`, due or not, oldest first: a digest
        takes them all once the first is due."""
        rows = self.db.raw(
            """SELECT id, uid, receiver, job_id, event, at, job, body, attempts, queued_at
               FROM notifications WHERE receiver = ? ORDER BY queued_at, id LIMIT ?""",
            (receiver, limit),
        )
        return [Notification(*row) for row in rows]

    def receivers_due(self, now: float) -> list[str]:
        """The receivers that have a notification due by `now`."""
        rows = self.db.raw(
            "SELECT DISTINCT receiver FROM notifications WHERE next_attempt_at <= ?", (now,)
        )
        return [row[0] for row in rows]

    def soonest(self, besides: frozenset[str] = frozenset()) -> float | None:
        """When the next notification falls due, of a receiver not in `besides`."""
        marks = ", ".join("?" for _ in besides)
        row = self.db.row(
            f"SELECT min(next_attempt_at) FROM notifications WHERE receiver NOT IN ({marks})",
            tuple(besides),
        )
        return None if row is None else row[0]

    @retried_write
    def fix_body(self, notification: Notification, body: str) -> None:
        """The body every attempt of this notification sends, from now on."""
        with self.db.write():
            self.db.conn.execute(
                "UPDATE notifications SET body = ? WHERE uid = ? AND body IS NULL",
                (body, notification.uid),
            )

    def body(self, notification: Notification) -> str | None:
        row = self.db.row(
            "SELECT body FROM notifications WHERE uid = ? AND body IS NOT NULL LIMIT 1",
            (notification.uid,),
        )
        return None if row is None else row[0]

    @retried_write
    def forget(self, notification: Notification) -> None:
        with self.db.write():
            self.db.conn.execute("DELETE FROM notifications WHERE id = ?", (notification.id,))

    @retried_write
    def forget_all(self, notifications: Sequence[Notification]) -> None:
        """Notifications delivered together (a digest), forgotten together."""
        with self.db.write():
            self.db.conn.executemany(
                "DELETE FROM notifications WHERE id = ?", [(n.id,) for n in notifications]
            )

    def failed(self, notification: Notification, error: str, retry_at: float) -> None:
        self.failed_all([notification], error, retry_at)

    @retried_write
    def failed_all(
        self, notifications: Sequence[Notification], error: str, retry_at: float
    ) -> None:
        """An attempt that told these notifications (one, or a digest) was refused."""
        wall = self.db.clock.wall()
        with self.db.write():
            self.db.conn.executemany(
                """UPDATE notifications SET attempts = attempts + 1, last_error = ?,
                   last_attempt_at = ?, next_attempt_at = ? WHERE id = ?""",
                [(prose(error), wall, retry_at, n.id) for n in notifications],
            )

    def waiting(self) -> dict[str, Any]:
        """How many notifications wait, how many wait for each kind of receiver (a
        notification to a webhook and to two Slack URLs counts once in `waiting`, once for
        `webhook` and twice for `slack`), and the last delivery error among them."""
        count = self.db.row("SELECT count(DISTINCT uid) FROM notifications")
        last = self.db.row(
            """SELECT last_error FROM notifications WHERE last_error IS NOT NULL
               ORDER BY last_attempt_at DESC LIMIT 1"""
        )
        kinds: dict[str, int] = {}
        for receiver, n in self.db.raw(
            "SELECT receiver, count(*) FROM notifications GROUP BY receiver"
        ):
            kind = receiver.partition("#")[0]
            kinds[kind] = kinds.get(kind, 0) + n
        return {
            "waiting": count[0] if count is not None else 0,
            "last_error": last[0] if last is not None else None,
            "receivers": dict(sorted(kinds.items())),
        }
