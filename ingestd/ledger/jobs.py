"""Jobs: their moves, with the checked transition and the event row, and the queries by
state that the stages and `status` ask.

Every state change goes through `move()` (or an operation built on it, in settling.py and
uploads.py): it checks the move against core.jobs.TRANSITIONS, updates the row only if it is
still in the state the caller read (`WHERE id=? AND state=?`) and adds the event row, all in
one `BEGIN IMMEDIATE` transaction, with the notifications the move calls for (outbox.py): a
crash between any two lines leaves either the old state or the new one, never half.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingestd.core.jobs import (
    TERMINAL,
    InvalidTransition,
    Job,
    JobState,
    StaleTransition,
    can_move,
)
from ingestd.ledger.db import JOB_COLUMNS, Db, path_columns, retried_write, storable, to_job
from ingestd.ledger.outbox import OutboxPart

ACTIVE_STATES = tuple(s.value for s in JobState if s not in TERMINAL)
TERMINAL_STATES = tuple(s.value for s in TERMINAL)


@dataclass(frozen=True)
class Event:
    """A row of a job's history: a state change, or a note (from_state == to_state)."""

    id: int
    job_id: int
    at: float
    from_state: str | None
    to_state: str
    note: str | None


class Jobs:
    """The ledger's jobs and their history."""

    def __init__(self, db: Db, outbox: OutboxPart) -> None:
        self.db = db
        self.outbox = outbox

    # --- moving -------------------------------------------------------------------------------

    @retried_write
    def move(self, job: Job, to_state: JobState, note: str | None = None, **changes: Any) -> Job:
        """Move `job` from the state it was read in to `to_state`, with column changes.

        `reason` (why the job waits) is cleared unless given: it describes the old state.
        """
        if not can_move(job.state, to_state):
            raise InvalidTransition(f"job {job.id}: {job.state} -> {to_state} is not allowed")
        with self.db.write():
            return self.move_in_transaction(job.id, job.state, to_state, note, changes)

    def move_in_transaction(
        self,
        job_id: int,
        from_state: JobState,
        to_state: JobState,
        note: str | None,
        changes: dict[str, Any],
    ) -> Job:
        values = {
            "reason": None,
            **changes,
            "state": to_state.value,
            "updated_at": self.db.clock.wall(),
        }
        assignments, params = self.db.assignments(values)
        row = self.db.row(
            f"UPDATE jobs SET {assignments} WHERE id = :_id AND state = :_from "
            f"RETURNING {JOB_COLUMNS}",
            {**params, "_id": job_id, "_from": from_state.value},
        )
        if row is None:
            raise StaleTransition(f"job {job_id} is no longer {from_state}")
        self.db.event(job_id, from_state.value, to_state.value, note)
        self.db.entered.add(to_state)
        moved = to_job(row)
        self.outbox.moved(moved, note)  # the notifications this move calls for, if any
        return moved

    @retried_write
    def update(self, job: Job, **changes: Any) -> Job:
        """Change columns of a job that stays in its state (no event)."""
        values = {**changes, "updated_at": self.db.clock.wall()}
        assignments, params = self.db.assignments(values)
        with self.db.write():
            row = self.db.row(
                f"UPDATE jobs SET {assignments} WHERE id = :_id AND state = :_state "
                f"RETURNING {JOB_COLUMNS}",
                {**params, "_id": job.id, "_state": job.state.value},
            )
        if row is None:
            raise StaleTransition(f"job {job.id} is no longer {job.state}")
        return to_job(row)

    @retried_write
    def note(self, job: Job, note: str) -> None:
        """An event in the job's history that changes no state (a re-sync applied a sidecar)."""
        with self.db.write():
            self.db.event(job.id, job.state.value, job.state.value, note)

    # --- one job ------------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        row = self.db.row(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return to_job(row) if row else None

    def find(self, ref: str) -> Job | None:
        """A job by id, hashed id, or path (the newest job of that path)."""
        if ref.isascii() and ref.isdigit() and len(ref) < 19 and (job := self.get(int(ref))):
            return job
        row = self.db.row(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE hashed_id = ? ORDER BY id DESC LIMIT 1",
            (storable(ref),),
        )
        if row is None:
            for candidate in (ref, str(Path(ref).expanduser().absolute())):
                if job := self.latest_for_path(candidate):
                    return job
        return to_job(row) if row else None

    def latest_for_path(self, path: str) -> Job | None:
        row = self.db.row(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE path = ? AND path_bytes IS ? "
            "ORDER BY id DESC LIMIT 1",
            path_columns(path),
        )
        return to_job(row) if row else None

    def earlier_version(self, job: Job) -> Job | None:
        """The latest earlier version of the job's path that has a media: done, or on its
        way (processing, finishing); the media a new version replaces in place."""
        row = self.db.row(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE path = ? AND path_bytes IS ? AND id < ?
               AND hashed_id IS NOT NULL AND state IN ('processing', 'finishing', 'done')
               ORDER BY id DESC LIMIT 1""",
            (*path_columns(job.path), job.id),
        )
        return to_job(row) if row else None

    def entered_at(self, job_id: int, state: JobState) -> float | None:
        """When the job last entered `state` (wall time, from its history): a job retried
        after an upload Wistia failed entered `processing` twice, and the later one stuck."""
        row = self.db.row(
            "SELECT max(at) FROM events WHERE job_id = ? AND to_state = ?", (job_id, state.value)
        )
        return None if row is None else row[0]

    def events(self, job_id: int) -> list[Event]:
        rows = self.db.rows("SELECT * FROM events WHERE job_id = ? ORDER BY id", (job_id,))
        return [Event(**row) for row in rows]

    def hashed_id_taken(self, hashed_id: str, except_job: int) -> bool:
        row = self.db.one(
            "SELECT 1 AS x FROM jobs WHERE hashed_id = ? AND id != ? LIMIT 1",
            (hashed_id, except_job),
        )
        return row is not None

    def retry(self, job: Job, note: str = "retry requested") -> Job:
        """A failed job goes again: from finishing if only its sidecars failed; from settling
        if it was never read whole (a person retrying a file the container check refused
        vouches for that version: it is taken as it is); else from the queue."""
        if job.sha256 is None:
            return self.move(
                job,
                JobState.SETTLING,
                f"{note}; the file settles again, its container taken as it is",
                attempts=0,
                error=None,
                next_attempt_at=None,
                incomplete_since=None,
                settle_since=self.db.clock.now(),
                # Only a file the container check refused is vouched for by the retry.
                skip_container_check=int(job.incomplete_since is not None),
            )
        last = self.db.one(
            """SELECT from_state FROM events WHERE job_id = ? AND to_state = 'failed'
               ORDER BY id DESC LIMIT 1""",
            (job.id,),
        )
        if last and last["from_state"] == JobState.FINISHING.value and job.hashed_id:
            return self.move(
                job, JobState.FINISHING, note, attempts=0, error=None, next_attempt_at=None
            )
        return self.move(
            job,
            JobState.QUEUED,
            note,
            attempts=0,
            error=None,
            next_attempt_at=None,
            media_id=None,
            hashed_id=None,
            processing_since=None,
            next_poll_at=None,
            poll_interval=None,
        )

    # --- by state -----------------------------------------------------------------------------

    def in_state(self, state: JobState, limit: int = 1000, after_id: int = 0) -> list[Job]:
        """Jobs in `state`, oldest first, from after `after_id` (to page through many)."""
        rows = self.db.raw(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = ? AND id > ? ORDER BY id LIMIT ?",
            (state.value, after_id, limit),
        )
        return [to_job(r) for r in rows]

    def any_queued(self) -> bool:
        """Whether any job waits in the queue (due or not)."""
        return self.db.row("SELECT 1 FROM jobs WHERE state = 'queued' LIMIT 1") is not None

    def soonest(self, state: JobState, after: float) -> float | None:
        """When the next job in `state` falls due after `after` (its next attempt, or for
        processing its next poll), or None when none waits for a time."""
        column = "next_poll_at" if state == JobState.PROCESSING else "next_attempt_at"
        sql = f"SELECT min({column}) AS soonest FROM jobs WHERE state = ? AND {column} > ?"
        row = self.db.one(sql, (state.value, after))
        return row["soonest"] if row else None

    def due_polls(self, now: float | None = None, limit: int = 100) -> list[Job]:
        rows = self.db.raw(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'processing'
               AND (next_poll_at IS NULL OR next_poll_at <= ?) ORDER BY next_poll_at LIMIT ?""",
            (self.db.clock.now() if now is None else now, limit),
        )
        return [to_job(r) for r in rows]

    def processing_with(self, hashed_ids: list[str]) -> list[Job]:
        """The jobs in processing whose media is one of `hashed_ids` (a batch poll's answer)."""
        found: list[Job] = []
        for start in range(0, len(hashed_ids), 500):  # SQLite's limit on parameters
            chunk = hashed_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self.db.raw(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE hashed_id IN ({marks}) "
                "AND state = 'processing'",
                chunk,
            )
            found += [to_job(r) for r in rows]
        return found

    def due_finishing(self, now: float | None = None, limit: int = 50) -> list[Job]:
        rows = self.db.raw(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'finishing'
               AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ?""",
            (self.db.clock.now() if now is None else now, limit),
        )
        return [to_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self.db.rows("SELECT state, count(*) AS n FROM jobs GROUP BY state")
        return {row["state"]: row["n"] for row in rows}

    def active_and_recent(self, recent: int | None = 100) -> list[Job]:
        """Every job not yet terminal, then the `recent` newest terminal ones (None: all)."""
        marks = ", ".join("?" for _ in ACTIVE_STATES)
        active = self.db.raw(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY id", ACTIVE_STATES
        )
        limit = -1 if recent is None else recent
        # One index range per final state, newest first, then the newest of those.
        newest = " UNION ALL ".join(
            f"SELECT * FROM (SELECT {JOB_COLUMNS} FROM jobs WHERE state = ? "
            "ORDER BY updated_at DESC LIMIT ?)"
            for _ in TERMINAL_STATES
        )
        terminal = self.db.raw(
            f"SELECT * FROM ({newest}) ORDER BY updated_at DESC, id DESC LIMIT ?",
            (*[v for state in TERMINAL_STATES for v in (state, limit)], limit),
        )
        return [to_job(r) for r in active] + [to_job(r) for r in terminal]
