"""Settle: when a settling file is complete, and reading it once to queue it.

A new version is complete (SPEC, pipeline step 2) once its size and mtime have not changed for
`ingest.settle_seconds`, no process has it open for writing (writers.py: one /proc pass for
all the quiet files, then a read lease on the descriptor it is read from), and its container
is whole (containers.py). Then it is hashed from that descriptor, and its content decides
whether it is new (queued) or a version the ledger already knows (a restart, a rescan, a
touch: nothing to do). A new version whose first bytes are exactly a done version's proves
that upload partial (finish/partial.py replaces it once the new one is done).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core import liveness
from ingestd.core.clock import FUTURE_MARGIN_SECONDS, Clock
from ingestd.core.errors import Cancelled, IncompleteContainer, JobInputError, StillWritten
from ingestd.core.jobs import Job, JobKind, JobState, file_identity, version_of
from ingestd.core.names import display
from ingestd.folder.files import lstat, open_regular, problem
from ingestd.ledger import Ledger, SettledFile, StaleTransition
from ingestd.pipeline.loop import Guard
from ingestd.pipeline.watch import containers
from ingestd.pipeline.watch.writers import WriterCheck

log = logs.get("ingestd.watcher")

HASH_CHUNK = 1024 * 1024
# Files hashed at once (a burst of small files, or big ones on a fast disk).
HASH_THREADS = 4
# Settled files written per transaction; settling jobs looked at per page.
SETTLED_PER_TRANSACTION = 1000
SETTLE_PAGE = 1000


class Examined(NamedTuple):
    """A complete file, read: its sha256, its identity (device, inode, ctime), and the sha256
    of its first N bytes for each length N asked (a done version's size: was it partial?)."""

    sha256: str
    file: tuple[int, int, int]
    prefixes: dict[int, str]


# What reading a settled file gave: None when it changed while it was read.
Hashed = Examined | None


class Settler:
    """The watcher's settling, on the watcher's thread (hashing on a small pool)."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        guard: Guard,
        clock: Clock,
        stop: threading.Event,
    ) -> None:
        self._settings = settings
        self.guard = guard
        self.clock = clock
        self.stop = stop
        self.ledger: Ledger | None = None  # the watcher's, set when its thread runs
        self._pool: ThreadPoolExecutor | None = None  # hashes several files at once
        self.writers = WriterCheck()  # who still has a quiet file open for writing

    @property
    def settings(self) -> Settings:
        return self._settings()

    def close(self) -> None:
        if self._pool is not None:
            # not waiting: a read stuck on a dead share must not hold the stop up
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def settle(self) -> bool:
        """Look at every settling job; those that stayed still long enough and that no process
        is writing are read (several at a time, in the pool): complete ones are queued
        together. True when some are left settling."""
        assert self.ledger is not None
        after, any_settling = 0, False
        while page := self.ledger.jobs.in_state(JobState.SETTLING, SETTLE_PAGE, after_id=after):
            any_settling, after = True, page[-1].id  # a page at a time: memory stays flat
            still: list[tuple[Job, os.stat_result]] = []
            for job in page:
                liveness.beat()
                self.guard.run(self.ledger, job, partial(self._check, still=still))
            if ready := self._not_written(still):
                self._queue(self._hash_all(ready))
        return any_settling

    def _check(self, ledger: Ledger, job: Job, still: list[tuple[Job, os.stat_result]]) -> None:
        """A settling job's file: gone, changed (it settles anew), or still long enough."""
        entry = lstat(Path(job.path))
        now = self.clock.now()
        if entry is None:
            log.info("file went away before it settled")
            ledger.settling.drop_candidate(job)
        elif version_of(entry) != job.version or _begins_in_the_future(job, now):
            settle_anew(ledger, job, entry, now)
        elif job.incomplete_since is not None:
            # Found cut short already: only new bytes (a new version) or time change that.
            if now - job.incomplete_since >= self.settings.ingest.incomplete_after_seconds:
                raise IncompleteContainer(job.reason or "incomplete container")
        elif job.next_attempt_at is not None and now < job.next_attempt_at:
            return  # a writer had it open: looked at again later
        elif now - (job.settle_since or 0) >= self.settings.ingest.settle_seconds:
            still.append((job, entry))

    def _not_written(self, still: list[tuple[Job, os.stat_result]]) -> list[Job]:
        """The quiet files that no process has open for writing, by one pass over /proc for
        all of them; the others keep settling with the writer named in their reason."""
        if not still:
            return []
        assert self.ledger is not None
        writers = self.writers.processes(
            {(e.st_dev, e.st_ino) for _, e in still}, self.settings.watch_dir
        )
        ready = []
        for job, entry in still:
            writer = writers.get((entry.st_dev, entry.st_ino))
            if writer is None:
                ready.append(job)
            else:
                with logs.job_context(job):
                    error = StillWritten(f"open for writing by {writer}")
                    self.guard.outcome(self.ledger, job, error)
        return ready

    def _hash_all(self, jobs: list[Job]) -> list[tuple[Job, Hashed | BaseException, list[Job]]]:
        """Each job's reading (or what stopped it), HASH_THREADS at a time, with the done
        versions of its path that it may prove partial."""
        assert self.ledger is not None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="hash")
        heartbeat = liveness.current()  # the hashing threads beat it for every chunk they read
        submitted = []
        for job in jobs:
            partials = self._earlier_done(job)
            sizes = [p.size for p in partials if p.size is not None]
            future = self._pool.submit(self._examine_for, heartbeat, job, sizes)
            submitted.append((job, future, partials))
        results: list[tuple[Job, Hashed | BaseException, list[Job]]] = []
        for job, future, partials in submitted:
            try:
                results.append((job, future.result(), partials))
            except Exception as error:
                results.append((job, error, partials))
        return results

    def _earlier_done(self, job: Job) -> list[Job]:
        """Done versions of the job's path, shorter than it: its first bytes may be theirs."""
        assert self.ledger is not None
        if job.kind != JobKind.FILE or not job.size:
            return []
        return [
            done
            for done in self.ledger.settling.done_versions(job.path)
            if done.size and done.size < job.size and done.sha256
        ]

    def _examine_for(
        self, heartbeat: liveness.Heartbeat | None, job: Job, prefixes: list[int]
    ) -> Hashed:
        """`_examine` on a pool thread, beating the watcher's heartbeat: a read stuck on a
        dead share goes quiet, and the supervisor sees the watcher stuck."""
        with liveness.lent(heartbeat):
            return self._examine(job, prefixes)

    def _queue(self, hashed: list[tuple[Job, Hashed | BaseException, list[Job]]]) -> None:
        """The complete files become queued jobs, a transaction per thousand; the others end
        in their own outcome (still written, cut short, unreadable)."""
        assert self.ledger is not None
        ready: list[SettledFile] = []
        for job, outcome, partials in hashed:
            if isinstance(outcome, FileNotFoundError):
                self.ledger.settling.drop_candidate(job)
            elif isinstance(outcome, Exception):
                with logs.job_context(job):
                    self.guard.outcome(self.ledger, job, outcome)
            elif outcome is not None:  # None: changed while it was read; the next pass sees
                failure = "empty file (0 bytes)" if job.size == 0 else None
                proven = _proven_partial(outcome, partials)
                ready.append(SettledFile(job, outcome.sha256, outcome.file, failure, proven))
        for start in range(0, len(ready), SETTLED_PER_TRANSACTION):
            chunk = ready[start : start + SETTLED_PER_TRANSACTION]
            settled = self.ledger.settling.settle_many(chunk, adopt=self.settings.ingest.adopt)
            for one, result in zip(chunk, settled, strict=True):
                with logs.job_context(one.job):
                    self._log_settled(one, result)

    def _log_settled(self, one: SettledFile, result: Job | StaleTransition | None) -> None:
        if one.failure is not None:
            log.warning("empty file: nothing to upload")
        elif result is None:
            log.info("content unchanged since it was last seen; nothing to do")
        elif not isinstance(result, StaleTransition):
            log.info("queued", sha256=one.sha256, size=one.job.size)
            if one.partial is not None:
                log.warning(
                    "an earlier upload of this file was partial: its bytes begin this version",
                    partial_job=one.partial.id,
                    partial_hashed_id=one.partial.hashed_id,
                )

    def _examine(self, job: Job, prefixes: list[int]) -> Hashed:
        """Read the job's version from one safely opened descriptor: no process may have it
        open for writing (a read lease), its container must be whole, and then its sha256 (and
        that of each prefix length asked) and its identity. None when the file is not (or no
        longer) that version.
        """
        path = Path(job.path)
        fd = open_regular(path, self.settings.watch_dir)
        with os.fdopen(fd, "rb") as handle:
            before = os.fstat(fd)
            if version_of(before) != job.version:
                return None
            try:
                if self.writers.lease_says_written(fd, display(path.name)):
                    raise StillWritten("open for writing by another process")
                if _container_checked(job) and (
                    cut := containers.problem(fd, before.st_size, liveness.beat)
                ):
                    raise IncompleteContainer(cut)
                digest, prefix_digests = self._sha256(handle, prefixes)
            except OSError as exc:  # EIO, a stale handle on a share: the file's problem
                raise problem(exc, display(path.name)) from None
            after = os.fstat(fd)
            if version_of(after) != job.version or file_identity(after) != file_identity(before):
                return None  # written to while it was read
        return Examined(digest, file_identity(after), prefix_digests)

    def _sha256(self, handle: BinaryIO, prefixes: list[int]) -> tuple[str, dict[int, str]]:
        """The sha256 of everything `handle` reads, and of its first N bytes for each N in
        `prefixes` (taken on the way: the file is read once)."""
        digest = hashlib.sha256()
        cuts = sorted(set(prefixes))
        taken: dict[int, str] = {}
        read = 0
        while chunk := handle.read(HASH_CHUNK):
            if self.stop.is_set():
                raise Cancelled()
            liveness.beat()
            while cuts and read + len(chunk) >= cuts[0]:
                head = cuts.pop(0) - read
                digest.update(chunk[:head])
                taken[read + head] = digest.hexdigest()
                chunk, read = chunk[head:], read + head
            digest.update(chunk)
            read += len(chunk)
        return digest.hexdigest(), taken

    def preflight(self, ledger: Ledger, job: Job) -> None:
        """What stops a job that was never hashed: the file cannot be opened as a regular file.

        The held jobs' recheck runs this, the same check the settle step runs.
        """
        try:
            os.close(open_regular(Path(job.path), self.settings.watch_dir))
        except FileNotFoundError:
            raise JobInputError("the file vanished before it could be read", fatal=True) from None


def settle_anew(ledger: Ledger, job: Job, entry: os.stat_result, now: float) -> None:
    """A settling file changed: its quiet time starts again, and what was found about the
    earlier bytes (a writer, a cut container) no longer holds."""
    ledger.update(
        job,
        size=entry.st_size,
        mtime_ns=entry.st_mtime_ns,
        settle_since=now,
        reason=None,
        next_attempt_at=None,
        incomplete_since=None,
        skip_container_check=0,  # a retry vouched for the bytes it saw, not these
    )


def _begins_in_the_future(job: Job, now: float) -> bool:
    """A quiet time that begins well after `now`: written by another process (`ingestd
    retry`) on a wall clock that has moved away from the daemon's steady one (clock.py)."""
    return job.settle_since is not None and job.settle_since > now + FUTURE_MARGIN_SECONDS


def _container_checked(job: Job) -> bool:
    """Media files get the container check, unless a person retried this version."""
    return job.kind == JobKind.FILE and not job.skip_container_check


def _proven_partial(examined: Examined, partials: list[Job]) -> Job | None:
    """The newest done version whose bytes are exactly the first bytes of this one."""
    for done in partials:
        if done.size is not None and examined.prefixes.get(done.size) == done.sha256:
            return done
    return None
