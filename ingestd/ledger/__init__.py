"""The job ledger: SQLite in WAL mode, and the only code that writes SQL.

What it owns: the jobs' states and history, and every fact the daemon must not forget across
a crash (what was sent, the file's fate, the hold, the outbox, projects, re-sync marks). What
it does not: deciding anything. Stages ask it to move a job (core.outcomes decides where);
`Ledger.move` checks the move against core.jobs.TRANSITIONS and writes it with its event row
in one transaction.

`Ledger` is one thread's connection (a `sqlite3` connection belongs to the thread that opened
it), with its parts, each read by one stage or command:

    ledger.move / update / apply / get / note    every stage: a job's moves and columns
    ledger.jobs        queries by state, find, history, counts (status)   jobs.py
    ledger.settling    new versions, settled and hashed (watcher)         settling.py
    ledger.adoption    files older than the ledger, looked for in Wistia  adoption.py
    ledger.uploads     claim, requeue, progress (uploader)                uploads.py
    ledger.hold        the account-wide stop and its probes               hold.py
    ledger.steps       what finishing did: sent, fate, thumbnail, ...     steps.py
    ledger.outbox      notifications, written with their move             outbox.py
    ledger.resync      re-sync marks (watcher, re-sync)                   resync.py
    ledger.projects    folder -> Wistia project                           projects.py
    ledger.facts       what the daemon learned: account url, media count  facts.py
    ledger.dues        due times brought within reach at start-up         dues.py

Below them: db.py (the connection, write transactions, retried writes), schema.py (the
migrations), wakeups.py (a stage waiting for jobs to enter its state), lock.py (one daemon
per ledger). A path is stored as text when it is UTF-8; otherwise `path` holds it with
`\\xNN` escapes (for people) and `path_bytes` its exact bytes (for finding the file again).

The daemon passes every Ledger it opens the same clock (core.clock), wake-ups and outbox;
other processes (`status`, `retry`) get their own, and write no notifications.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ingestd.core.clock import Clock
from ingestd.core.jobs import InvalidTransition, Job, JobState, Move, StaleTransition
from ingestd.ledger.adoption import Adopted, Adoption, Progress
from ingestd.ledger.db import BUSY_TIMEOUT_SECONDS, Db
from ingestd.ledger.dues import Dues
from ingestd.ledger.facts import AccountMedia, Facts
from ingestd.ledger.hold import Hold, HoldPart
from ingestd.ledger.jobs import Event, Jobs
from ingestd.ledger.lock import LedgerLock, check_ledger_file
from ingestd.ledger.outbox import Notification, Outbox, OutboxPart
from ingestd.ledger.projects import Projects
from ingestd.ledger.resync import ResyncMarks
from ingestd.ledger.schema import MIGRATIONS, SCHEMA_VERSION
from ingestd.ledger.settling import SettledFile, Settling
from ingestd.ledger.steps import Fate, Image, Refusal, Steps, Swap, Thumbnail
from ingestd.ledger.uploads import Uploads
from ingestd.ledger.wakeups import Wakeups

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AccountMedia",
    "Adopted",
    "Adoption",
    "Event",
    "Fate",
    "Hold",
    "Image",
    "InvalidTransition",
    "Ledger",
    "LedgerLock",
    "Ledgers",
    "Notification",
    "Outbox",
    "Progress",
    "Refusal",
    "SettledFile",
    "StaleTransition",
    "Swap",
    "Thumbnail",
    "Wakeups",
    "check_ledger_file",
]


class Ledgers:
    """Where each thread of a process gets its own Ledger: one path, and the clock, wake-ups
    and outbox that all of them share (the outbox may be replaced: a config reload)."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock | None = None,
        wakeups: Wakeups | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.path = Path(path)
        self.clock = clock if clock is not None else Clock()
        self.wakeups = wakeups if wakeups is not None else Wakeups()
        self.outbox = outbox if outbox is not None else Outbox()

    def open(self) -> Ledger:
        return Ledger(self.path, clock=self.clock, wakeups=self.wakeups, outbox=self._outbox)

    @contextmanager
    def opened(self) -> Iterator[Ledger]:
        ledger = self.open()
        try:
            yield ledger
        finally:
            ledger.close()

    def _outbox(self) -> Outbox:
        return self.outbox


class Ledger:
    """One thread's connection to the ledger, and its parts."""

    def __init__(
        self,
        path: Path,
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
        *,
        read_only: bool = False,
        clock: Clock | None = None,
        wakeups: Wakeups | None = None,
        outbox: Outbox | Callable[[], Outbox] | None = None,
    ) -> None:
        self.db = Db(path, busy_timeout, read_only=read_only, clock=clock, wakeups=wakeups)
        self.path = self.db.path
        self.clock = self.db.clock
        self.outbox = OutboxPart(self.db, outbox if outbox is not None else Outbox())
        self.jobs = Jobs(self.db, self.outbox)
        self.facts = Facts(self.db)
        self.adoption = Adoption(self.db, self.jobs, self.facts)
        self.settling = Settling(self.db, self.jobs, self.adoption)
        self.uploads = Uploads(self.db)
        self.hold = HoldPart(self.db)
        self.steps = Steps(self.db)
        self.resync = ResyncMarks(self.db)
        self.projects = Projects(self.db)
        self.dues = Dues(self.db)

    def close(self) -> None:
        self.db.close()

    # --- what every stage does with a job ---------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        return self.jobs.get(job_id)

    def move(self, job: Job, to_state: JobState, note: str | None = None, **changes: Any) -> Job:
        """Move `job` from the state it was read in to `to_state`, with column changes; the
        event row and its notifications in the same transaction (jobs.Jobs.move)."""
        return self.jobs.move(job, to_state, note, **changes)

    def update(self, job: Job, **changes: Any) -> Job:
        """Change columns of a job that stays in its state (no event)."""
        return self.jobs.update(job, **changes)

    def note(self, job: Job, note: str) -> None:
        """An event in the job's history that changes no state."""
        self.jobs.note(job, note)

    def apply(self, job: Job, move: Move) -> Job:
        """Make what the outcome policy decided: the hold, then the move or the column changes."""
        if move.hold is not None:
            self.hold.start(move.hold)
        if move.to is not None:
            return self.move(job, move.to, move.note, **move.changes)
        if move.changes:
            return self.update(job, **move.changes)
        return job
