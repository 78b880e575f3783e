"""Re-sync marks: done jobs whose sidecars changed, for the re-sync stage.

A mark (`resync_due_at`) is set by the watcher (an event, or file times at a scan) on jobs
done or still finishing (kept through the move to done), and cleared by the re-sync of the
version it read; a change marked meanwhile stays marked, so it is looked at again.
`sidecars_read_at` says when the sidecars a done media has were last read (wall time, like
the files' own times): a scan compares with it, not with when the job last changed.
"""

from __future__ import annotations

from ingestd.core.jobs import Job, JobState
from ingestd.ledger.db import (
    JOB_COLUMNS,
    Db,
    path_columns,
    path_of,
    prose,
    retried_write,
    to_job,
)


class ResyncMarks:
    def __init__(self, db: Db) -> None:
        self.db = db

    def below(self, folder: str) -> list[Job]:
        """The jobs whose file is anywhere below `folder` (a range of the path index) and
        whose sidecars were sent to their media or are being sent: done or finishing."""
        low, _ = path_columns(folder.rstrip("/") + "/")
        high = low[:-1] + "0"  # "/" + 1: every path that starts with `low`
        rows = self.db.raw(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE path >= ? AND path < ?
               AND state IN ('done', 'finishing') ORDER BY id""",
            (low, high),
        )
        return [to_job(r) for r in rows]

    def read_at(self) -> list[tuple[int, str, float]]:
        """(id, path, when its sidecars were last read) of every done job, for a scan to find
        sidecars changed since with no event seen (jobs from before that was recorded: when
        they last changed)."""
        rows = self.db.conn.execute(
            """SELECT id, path, path_bytes, coalesce(sidecars_read_at, updated_at) FROM jobs
               WHERE state = 'done'"""
        )
        return [(job_id, path_of(path, exact), read_at) for job_id, path, exact, read_at in rows]

    @retried_write
    def mark(self, job_ids: list[int], due_at: float, now: float) -> None:
        """These jobs' sidecars changed: the re-sync looks at them from `due_at` on, once
        they are done (a job still finishing keeps the mark through its move to done).

        An earlier mark still ahead is kept; one already due may be under way right now, so
        it is moved: the re-sync under way then leaves the job marked (`resynced`)."""
        with self.db.write():
            for start in range(0, len(job_ids), 500):
                chunk = job_ids[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                self.db.conn.execute(
                    f"""UPDATE jobs SET resync_due_at = ? WHERE id IN ({marks})
                       AND state IN ('done', 'finishing')
                       AND (resync_due_at IS NULL OR resync_due_at > ? OR resync_due_at <= ?)""",
                    (due_at, *chunk, due_at, now),
                )
            if job_ids:
                self.db.entered.add(JobState.DONE)  # wakes the re-sync stage

    @retried_write
    def finished(self, job: Job, read_at: float, reason: str | None = None) -> None:
        """The re-sync of `job` (as it was read), which read its sidecars at `read_at`, is
        over; `reason`: what Wistia still refuses of them, if anything. A change marked
        meanwhile stays marked, so it is looked at again."""
        with self.db.write():
            self.db.conn.execute(
                """UPDATE jobs SET resync_due_at = NULL, reason = ?, updated_at = ?,
                   sidecars_read_at = ?
                   WHERE id = ? AND state = 'done' AND resync_due_at IS ?""",
                (prose(reason), self.db.clock.wall(), read_at, job.id, job.resync_due_at),
            )

    def due(self, now: float | None = None, limit: int = 50) -> list[Job]:
        rows = self.db.raw(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE resync_due_at IS NOT NULL
               AND resync_due_at <= ? AND state = 'done' ORDER BY resync_due_at LIMIT ?""",
            (self.db.clock.now() if now is None else now, limit),
        )
        return [to_job(r) for r in rows]

    def soonest(self, after: float) -> float | None:
        row = self.db.one(
            "SELECT min(resync_due_at) AS soonest FROM jobs WHERE resync_due_at > ?", (after,)
        )
        return row["soonest"] if row else None
