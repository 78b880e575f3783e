"""Uploads: the uploader's operations on the ledger.

A claim takes the oldest due queued job in one statement (queued -> uploading); jobs a crash,
a stop or a dead worker left `uploading` go back to the queue with no attempt counted (their
`upload_started_at` stays, so the next claim asks Wistia before sending again); progress is
written for `status`, at most once a second.
"""

from __future__ import annotations

from ingestd.core.jobs import Job, JobState
from ingestd.ledger.db import JOB_COLUMNS, Db, retried_write, to_job


class Uploads:
    def __init__(self, db: Db) -> None:
        self.db = db

    @retried_write
    def claim(self, now: float | None = None, *, probe: bool = False) -> Job | None:
        """Atomically take the oldest queued job that is due: queued -> uploading; never one
        waiting to be looked for in Wistia first (adoption.py), never while the account is on
        hold (checked in the same statement: a hold that began since
        the caller looked stops the claim too).

        `probe`: the hold's probe, which may claim under it, and takes the smallest file (the
        cheapest to have refused; URL imports, whose size is not known, last)."""
        now = self.db.clock.now() if now is None else now
        order = "size IS NULL, size, id" if probe else "id"
        unless_held = "" if probe else "AND NOT EXISTS (SELECT 1 FROM hold)"
        with self.db.write():
            row = self.db.row(
                f"""UPDATE jobs SET state = 'uploading', reason = NULL, bytes_sent = NULL,
                                  updated_at = :wall
                   WHERE id = (SELECT id FROM jobs
                               WHERE state = 'queued'
                                 AND (next_attempt_at IS NULL OR next_attempt_at <= :now)
                                 AND id NOT IN (SELECT job_id FROM adoption WHERE checked = 0)
                               ORDER BY {order} LIMIT 1)
                     {unless_held}
                   RETURNING {JOB_COLUMNS}""",
                {"now": now, "wall": self.db.clock.wall()},
            )
            if row is None:
                return None
            self.db.event(row["id"], JobState.QUEUED.value, JobState.UPLOADING.value, "claimed")
        return to_job(row)

    @retried_write
    def requeue_interrupted(
        self, note: str, keep: set[int] | frozenset[int] = frozenset()
    ) -> list[Job]:
        """Jobs left `uploading` by a crash or stop go back to the queue, attempts unchanged.

        `upload_started_at` stays, so the next claim reconciles with Wistia before sending.
        Jobs in `keep` (uploads in progress in this process) are left alone.
        """
        with self.db.write():
            rows = list(
                self.db.raw(
                    f"""UPDATE jobs SET state = 'queued', reason = ?, bytes_sent = NULL,
                                      updated_at = ?
                       WHERE state = 'uploading' RETURNING {JOB_COLUMNS}""",
                    (note, self.db.clock.wall()),
                )
                if not keep
                else self.db.raw(
                    f"""UPDATE jobs SET state = 'queued', reason = ?, bytes_sent = NULL,
                                       updated_at = ?
                        WHERE state = 'uploading'
                          AND id NOT IN ({", ".join("?" for _ in keep)})
                        RETURNING {JOB_COLUMNS}""",
                    (note, self.db.clock.wall(), *keep),
                )
            )
            for row in rows:
                self.db.event(row["id"], JobState.UPLOADING.value, JobState.QUEUED.value, note)
            if rows:
                self.db.entered.add(JobState.QUEUED)
        return [to_job(r) for r in rows]

    @retried_write
    def record_progress(self, job_id: int, bytes_sent: int) -> None:
        """Upload progress for `status`; not an event, and harmless if the job moved on."""
        with self.db.write():
            self.db.conn.execute(
                "UPDATE jobs SET bytes_sent = ? WHERE id = ? AND state = 'uploading'",
                (bytes_sent, job_id),
            )
