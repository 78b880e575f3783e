"""Adoption: files older than the ledger, looked for in Wistia before they are uploaded.

When a file is queued (settling.py), it waits for a look if adoption is on, it is a file (not
a `.url`), it was last modified before the ledger was created (the fact `ledger_created_at`,
written once by migration 15), and no done version of its path is known. The claim takes no
job that waits for a look (uploads.py); the adoption stage (pipeline/adopt.py) checks each one
and ends its wait, in the same transaction as what it found:

    found       queued -> processing (-> finishing, if Wistia says it is ready), with the media
    several     queued -> failed, naming them (`ingestd retry` uploads it anyway)
    none        a note; the job stays queued and is uploaded as usual
    no answer   queued -> failed: Wistia could not answer, `max_attempts` looks in a row

A job held meanwhile (a sidecar it cannot read) keeps its row: back in the queue once fixed,
it is looked for then.

The rows of a round stay until its last file is checked, so that `status` can say "looking for
1,000 files in Wistia before uploading them: 400 checked"; then the round's rows go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ingestd.core.jobs import Job, JobState
from ingestd.ledger.db import JOB_COLUMNS, Db, path_columns, retried_write, to_job
from ingestd.ledger.facts import Facts
from ingestd.ledger.jobs import Jobs

LEDGER_CREATED_AT = "ledger_created_at"
# A waiting job's reason, for `status`.
WAITING_REASON = "older than the ledger: looked for in Wistia before it is uploaded"


class Progress(NamedTuple):
    """A round of looking: how many files it looks for, and how many are checked."""

    files: int
    checked: int


@dataclass(frozen=True)
class Adopted:
    """The media a job was found as, as Wistia listed it."""

    hashed_id: str
    media_id: int
    name: str
    project_id: str | None
    ready: bool
    note: str  # the history's words: how it was found
    # The metadata step's digest when what the sidecars would send is what the media has
    # already (nothing to update): recorded as sent with the adoption.
    metadata_digest: str | None = None


class Adoption:
    def __init__(self, db: Db, jobs: Jobs, facts: Facts) -> None:
        self.db = db
        self.jobs = jobs
        self.facts = facts
        self._created_at: float | None = None

    def created_at(self) -> float | None:
        """When the ledger was created (wall time): written once, by its migration, so read
        once per connection (settling asks for every file it queues)."""
        if self._created_at is None:
            recorded = self.facts.get(LEDGER_CREATED_AT)
            try:
                self._created_at = None if recorded is None else float(recorded)
            except ValueError:
                return None
        return self._created_at

    def wait_in_transaction(self, job: Job) -> bool:
        """A file just queued (inside settling's transaction): whether it waits for a look,
        and if so, its row. The caller decides whether adoption is on."""
        created = self.created_at()
        if job.kind != "file" or job.mtime_ns is None or created is None:
            return False
        if job.mtime_ns >= created * 1_000_000_000:
            return False  # dropped after the ledger was made: nothing to look for
        done = self.db.row(
            "SELECT 1 FROM jobs WHERE path = ? AND path_bytes IS ? AND state = 'done' LIMIT 1",
            path_columns(job.path),
        )
        if done is not None:
            return False
        self.db.conn.execute(
            "INSERT OR REPLACE INTO adoption (job_id, checked, at) VALUES (?, 0, ?)",
            (job.id, self.db.clock.wall()),
        )
        self.db.conn.execute("UPDATE jobs SET reason = ? WHERE id = ?", (WAITING_REASON, job.id))
        return True

    def waiting(self, limit: int = 1000) -> list[Job]:
        """Queued jobs waiting for a look, oldest first."""
        rows = self.db.raw(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'queued' AND id IN
                   (SELECT job_id FROM adoption WHERE checked = 0)
               ORDER BY id LIMIT ?""",
            (limit,),
        )
        return [to_job(r) for r in rows]

    def progress(self) -> Progress | None:
        """The round of looking under way, if any (for `status`)."""
        row = self.db.row(
            """SELECT coalesce(sum(a.checked = 1), 0),
                      coalesce(sum(a.checked = 0 AND j.state = 'queued'), 0)
               FROM adoption a JOIN jobs j ON j.id = a.job_id"""
        )
        if row is None or not row[1]:
            return None  # nothing waits (a job held or failed meanwhile waits no more)
        checked, waiting = int(row[0]), int(row[1])
        return Progress(checked + waiting, checked)

    @retried_write
    def found(self, job: Job, media: Adopted) -> Job:
        """The job's file is already in Wistia as `media`: it goes on from there, as if it had
        just been uploaded, without sending a byte."""
        now = self.db.clock.now()
        with self.db.write():
            moved = self.jobs.move_in_transaction(
                job.id,
                JobState.QUEUED,
                JobState.PROCESSING,
                media.note,
                {
                    "media_id": media.media_id,
                    "hashed_id": media.hashed_id,
                    "media_name": media.name,
                    "project_id": media.project_id,
                    "processing_since": now,
                    "next_poll_at": now,
                    "poll_interval": None,
                    "error": None,
                    "next_attempt_at": None,
                },
            )
            if media.ready:
                moved = self.jobs.move_in_transaction(
                    job.id,
                    JobState.PROCESSING,
                    JobState.FINISHING,
                    "ready in Wistia",
                    {"next_poll_at": None},
                )
            if media.metadata_digest is not None:
                self.db.conn.execute(
                    """INSERT OR REPLACE INTO sent (job_id, step, digest, sent_at)
                       VALUES (?, 'metadata', ?, ?)""",
                    (job.id, media.metadata_digest, self.db.clock.wall()),
                )
            self._checked(job.id)
        return moved

    @retried_write
    def failed(self, job: Job, error: str) -> Job:
        """The look ends the job `failed`: more than one media could be its file (`error`
        names them), or Wistia could not answer, try after try (the last error). A retry
        uploads it without looking."""
        with self.db.write():
            failed = self.jobs.move_in_transaction(
                job.id, JobState.QUEUED, JobState.FAILED, error, {"error": error, "reason": error}
            )
            self._checked(job.id)
        return failed

    @retried_write
    def none(self, job: Job, note: str) -> None:
        """Not in Wistia (or not looked for: `note` says why): it is uploaded as usual."""
        with self.db.write():
            if self.db.row("SELECT 1 FROM jobs WHERE id = ? AND state = 'queued'", (job.id,)):
                self.db.event(job.id, JobState.QUEUED.value, JobState.QUEUED.value, note)
                self._clear_reason(job.id)
            self._checked(job.id)
            self.db.entered.add(JobState.QUEUED)  # the uploader may take it now

    @retried_write
    def still_waiting(self, jobs: list[Job], reason: str) -> None:
        """Why these jobs still wait for their look, for `status` (no event: a look that
        could not be made is tried again; the log says each time)."""
        with self.db.write():
            self.db.conn.executemany(
                """UPDATE jobs SET reason = ? WHERE id = ? AND state = 'queued'
                   AND id IN (SELECT job_id FROM adoption WHERE checked = 0)""",
                [(reason, job.id) for job in jobs],
            )

    @retried_write
    def stop_looking(self, note: str) -> int:
        """Every waiting job is uploaded as usual (adoption turned off): how many there were."""
        jobs = self.waiting(limit=1_000_000)
        with self.db.write():
            for job in jobs:
                self.db.event(job.id, JobState.QUEUED.value, JobState.QUEUED.value, note)
                self._clear_reason(job.id)
            self.db.conn.execute("DELETE FROM adoption")
            if jobs:
                self.db.entered.add(JobState.QUEUED)
        return len(jobs)

    def _clear_reason(self, job_id: int) -> None:
        self.db.conn.execute(
            """UPDATE jobs SET reason = NULL WHERE id = ? AND state = 'queued'
               AND substr(reason, 1, ?) = ?""",
            (job_id, len(WAITING_REASON), WAITING_REASON),
        )

    def _checked(self, job_id: int) -> None:
        """The job's look is over; so is the round, when it was the last one queued waiting.
        The round's checked rows go then; a job held (or failed) before its look keeps its
        row: back in the queue (fixed, retried), it is looked for then."""
        self.db.conn.execute("UPDATE adoption SET checked = 1 WHERE job_id = ?", (job_id,))
        left = self.db.row(
            """SELECT 1 FROM adoption a JOIN jobs j ON j.id = a.job_id
               WHERE a.checked = 0 AND j.state = 'queued' LIMIT 1"""
        )
        if left is None:
            self.db.conn.execute("DELETE FROM adoption WHERE checked = 1")
