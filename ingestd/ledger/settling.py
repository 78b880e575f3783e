"""Settling: the watcher's operations on the ledger.

A new candidate version of a file becomes a `settling` job; once complete and hashed, its
content decides: bytes already known at that path (a restart, a rescan, a touch) are the same
version, and the candidate goes away; new bytes are a queued job (or, for an empty file, a
failed one). Many files at once cost a transaction per thousand, not one each.
"""

from __future__ import annotations

from contextlib import suppress
from typing import NamedTuple

from ingestd.core.jobs import Job, JobState, StaleTransition
from ingestd.ledger.adoption import WAITING_REASON, Adoption
from ingestd.ledger.db import JOB_COLUMNS, Db, path_columns, path_of, retried_write, to_job
from ingestd.ledger.jobs import Jobs


class SettledFile(NamedTuple):
    """A settling file found complete and hashed, for `settle_many`."""

    job: Job
    sha256: str
    file: tuple[int, int, int] | None = None  # device, inode, ctime of what was hashed
    failure: str | None = None  # it fails at once (an empty file)
    partial: Job | None = None  # a done job whose bytes are exactly a prefix of these


class Settling:
    def __init__(self, db: Db, jobs: Jobs, adoption: Adoption) -> None:
        self.db = db
        self.jobs = jobs
        self.adoption = adoption

    def add(self, path: str, kind: str, size: int, mtime_ns: int, now: float | None = None) -> Job:
        """A new candidate version of a file: it settles before it becomes a job to upload."""
        (job,) = self.add_many([(path, kind, size, mtime_ns)], now)
        return job

    @retried_write
    def add_many(
        self, candidates: list[tuple[str, str, int, int]], now: float | None = None
    ) -> list[Job]:
        """New candidates (path, kind, size, mtime_ns), in one transaction: a burst of ten
        thousand files costs one commit, not ten thousand."""
        now = self.db.clock.now() if now is None else now
        wall = self.db.clock.wall()
        added = []
        with self.db.write():
            for path, kind, size, mtime_ns in candidates:
                text, exact = path_columns(path)
                row = self.db.row(
                    f"""INSERT INTO jobs (path, path_bytes, kind, state, size, mtime_ns,
                                         settle_since, created_at, updated_at)
                       VALUES (?, ?, ?, 'settling', ?, ?, ?, ?, ?) RETURNING {JOB_COLUMNS}""",
                    (text, exact, kind, size, mtime_ns, now, wall, wall),
                )
                assert row is not None
                self.db.event(row["id"], None, JobState.SETTLING.value, "found")
                added.append(to_job(row))
            if added:
                self.db.entered.add(JobState.SETTLING)
        return added

    def settle(
        self,
        job: Job,
        sha256: str,
        failure: str | None = None,
        file: tuple[int, int, int] | None = None,
        *,
        adopt: bool = False,
    ) -> Job | None:
        """The settling file is complete and hashed: queue it, unless its content is known.

        Same path and same bytes as an earlier job (a restart, a touch) is the same version:
        the earlier job takes the new size and mtime, and the candidate row goes away. Returns
        the queued (or, given a `failure`, failed) job, or None when the content was known.
        `file` is the (device, inode, ctime) hashed: the upload checks it reads that file.
        """
        (settled,) = self.settle_many([SettledFile(job, sha256, file, failure)], adopt=adopt)
        if isinstance(settled, StaleTransition):
            raise settled
        return settled

    @retried_write
    def settle_many(
        self, hashed: list[SettledFile], *, adopt: bool = False
    ) -> list[Job | StaleTransition | None]:
        """`settle` for many files in one transaction. A job moved meanwhile is left alone
        (its StaleTransition in the list) and the others go on. `adopt` (`ingest.adopt`): a
        file older than the ledger waits for a look in Wistia (adoption.py) before its upload."""
        settled: list[Job | StaleTransition | None] = []
        with self.db.write():
            for one in hashed:
                try:
                    settled.append(self._settle_in_transaction(one, adopt))
                except StaleTransition as stale:
                    settled.append(stale)
        return settled

    def _settle_in_transaction(self, settled: SettledFile, adopt: bool) -> Job | None:
        job, sha256, file, failure, partial = settled
        dev, ino, ctime_ns = file if file is not None else (None, None, None)
        identity = {"dev": dev, "ino": ino, "ctime_ns": ctime_ns}
        earlier = self.db.one(
            """SELECT id FROM jobs WHERE path = ? AND path_bytes IS ? AND sha256 = ?
               AND id != ? ORDER BY id DESC LIMIT 1""",
            (*path_columns(job.path), sha256, job.id),
        )
        if earlier is not None:
            self.db.conn.execute(
                """UPDATE jobs SET size = ?, mtime_ns = ?, dev = ?, ino = ?, ctime_ns = ?
                   WHERE id = ?""",
                (job.size, job.mtime_ns, dev, ino, ctime_ns, earlier["id"]),
            )
            self.db.conn.execute("DELETE FROM jobs WHERE id = ? AND state = 'settling'", (job.id,))
            return None
        changes = {
            "sha256": sha256,
            "next_attempt_at": None,
            "incomplete_since": None,
            "replaces": partial.id if partial is not None else None,  # of these bytes only
            **identity,
        }
        if failure is not None:
            return self.jobs.move_in_transaction(
                job.id, JobState.SETTLING, JobState.FAILED, failure, {**changes, "error": failure}
            )
        note = "settled"
        if partial is not None:
            note = (
                f"settled; its first {partial.size} bytes are exactly job {partial.id}'s "
                f"(media {partial.hashed_id}): that upload was a partial copy"
            )
        queued = self.jobs.move_in_transaction(
            job.id, JobState.SETTLING, JobState.QUEUED, note, changes
        )
        if adopt and partial is None and self.adoption.wait_in_transaction(queued):
            self.db.event(queued.id, JobState.QUEUED.value, JobState.QUEUED.value, WAITING_REASON)
        if partial is not None:
            self.db.event(
                partial.id,
                partial.state.value,
                partial.state.value,
                f"job {queued.id}, a later version of this file, begins with exactly these "
                "bytes: this upload was a partial copy",
            )
        return queued

    @retried_write
    def drop_candidate(self, job: Job) -> None:
        """Forget a settling candidate whose file went away before it settled. A job with a
        history (it was queued, sent or retried before it settled again) is not forgotten: it
        fails, so that its history stays."""
        with self.db.write():
            gone = self.db.conn.execute(
                """DELETE FROM jobs WHERE id = ? AND state = 'settling' AND NOT EXISTS
                   (SELECT 1 FROM events WHERE job_id = ? AND from_state IS NOT NULL)""",
                (job.id, job.id),
            )
            if gone.rowcount == 0:
                why = "the file went away before it settled again"
                with suppress(StaleTransition):
                    self.jobs.move_in_transaction(
                        job.id, JobState.SETTLING, JobState.FAILED, why, {"error": why}
                    )

    def known_versions(self) -> dict[str, tuple[int | None, int | None]]:
        """(size, mtime_ns) of the newest job of every path: a scan compares files to these."""
        rows = self.db.conn.execute(
            """SELECT path, path_bytes, size, mtime_ns FROM jobs
               WHERE id IN (SELECT max(id) FROM jobs GROUP BY path, path_bytes)"""
        )
        return {path_of(path, exact): (size, mtime_ns) for path, exact, size, mtime_ns in rows}

    def done_versions(self, path: str) -> list[Job]:
        """The done jobs of `path` whose media is still theirs (not replaced), newest first:
        a new version may prove one of them partial."""
        rows = self.db.raw(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE path = ? AND path_bytes IS ?
               AND state = 'done' AND hashed_id IS NOT NULL AND replaced_by IS NULL
               ORDER BY id DESC LIMIT 10""",
            path_columns(path),
        )
        return [to_job(r) for r in rows]
