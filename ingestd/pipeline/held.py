"""Held jobs: each waits on its own problem, and this stage alone lets it go on.

A job is `held` (by the outcome policy) when a stage finds a problem only a person can fix: a
malformed sidecar, an unreadable file, a `.url` file with a bad URL, a link where a file
should be. This stage owns the `held` state. It looks at each held job again on a growing
interval, and at once when the watcher saw something change in the job's folder (or above it:
a `_defaults.json`). It re-detects the problem with the very code that found it: the preflight
of the stage where the job resumes (watcher, uploader or finisher), never a guess of its own.

- the same problem: nothing is written (the history gets no event per recheck);
- another problem: the reason shown in `status` changes, still without an event;
- no problem: the job goes back to where it resumes (`outcomes.release`), with an event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core import liveness
from ingestd.core.backoff import Backoff
from ingestd.core.jobs import Job, JobState, resume_state
from ingestd.core.outcomes import Stage, release
from ingestd.ledger import Ledger, Ledgers
from ingestd.pipeline.loop import PipelineStage

log = logs.get("ingestd.held")

# Rechecks of one held job: 2 s after it was held, then 4, 8, ... up to once a minute.
RECHECK = Backoff(first=2.0, cap=60.0)

# A stage's preflight: raises the problem that stops the job there, if there still is one.
Preflight = Callable[[Ledger, Job], object]


class HeldJobs(PipelineStage):
    kind = Stage.RECHECK

    def __init__(
        self,
        settings: Settings,
        ledgers: Ledgers,
        stop: threading.Event,
        preflights: Mapping[JobState, Preflight],
    ) -> None:
        super().__init__(settings, ledgers, stop)
        self.preflights = preflights
        # In memory on purpose: a recheck that finds nothing new writes nothing. After a
        # restart every held job is simply looked at again, 2 s in.
        self._schedule: dict[int, tuple[float, float]] = {}  # job id -> (due at, interval)
        self._nudged: set[Path] = set()
        self._lock = threading.Lock()
        self._next_look: float | None = None  # when the next recheck is due
        self._wake = ledgers.wakeups.arrivals(JobState.HELD)  # a job held, or a folder nudged

    def run(self) -> None:
        self.run_through_due(
            self.due,
            self.recheck,
            lambda ledger, now: self._next_look,
            wake=self._wake,
            pause_under_auth_hold=False,
        )

    def nudge(self, folder: Path) -> None:
        """Something changed in `folder` (watcher): its held jobs, and those below, look now."""
        with self._lock:
            self._nudged.add(folder)
        self._wake.set()

    def due(self, ledger: Ledger, now: float) -> list[Job]:
        with self._lock:
            nudged, self._nudged = self._nudged, set()
        held = ledger.jobs.in_state(JobState.HELD, limit=100_000)
        self._forget_released(now, {job.id for job in held})
        due, soonest = [], None
        for number, job in enumerate(held):
            if number % 1000 == 0:
                liveness.beat()
            if job.id not in self._schedule:  # newly held: first look a little later
                self._schedule[job.id] = (now + RECHECK.first, RECHECK.first)
            if nudged and _under_any(Path(job.path), nudged):
                self._schedule[job.id] = (now, 0.0)  # look now, and the interval starts over
            due_at = self._schedule[job.id][0]
            if due_at <= now:
                due.append(job)
            soonest = due_at if soonest is None else min(soonest, due_at)
        self._next_look = soonest
        return due

    def _forget_released(self, now: float, held: set[int]) -> None:
        """A released job keeps its interval for a while: if the stage holds it again at once
        (a problem only the stage itself meets), the next release comes later still."""
        keep_until = now - 2 * RECHECK.cap
        self._schedule = {
            job_id: (due_at, interval)
            for job_id, (due_at, interval) in self._schedule.items()
            if job_id in held or due_at >= keep_until
        }

    def recheck(self, ledger: Ledger, job: Job) -> None:
        now = self.clock.now()
        _, interval = self._schedule.get(job.id, (now, 0.0))
        interval = RECHECK.after(interval or None)
        self._schedule[job.id] = (now + interval, interval)  # whatever this recheck finds
        log.debug("looking again at a held job", next_in=interval)
        self.preflights[resume_state(job)](ledger, job)  # raises the problem if still there
        ledger.apply(job, release(job, now))


def _under_any(path: Path, folders: set[Path]) -> bool:
    """Whether `path` is in one of `folders` or below: one set lookup per level."""
    return any(parent in folders for parent in path.parents)
