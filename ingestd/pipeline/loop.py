"""How a stage works on its jobs: one guard around every job's step, and the loop around it.

`Guard.run` is the containment every per-job step runs in. Whatever the step raises, expected
or not, goes to outcomes.decide and the move it returns is applied to that job; the stage goes
on with the next job. The one exception is the ledger itself failing (sqlite3.Error, after its
own two minutes of patience): that is nobody's job, so the stage thread ends and the daemon's
supervisor restarts it after a pause.

`work_through_jobs` is the loop of the stages that work through due jobs (finisher, held
jobs): each pass asks for the due jobs and runs each in the guard, beating the stage's
heartbeat; an idle stage sleeps until a job enters its state (ledger.arrivals) or its next
job is due, never busy. Under an auth hold, stages that talk to Wistia take no jobs.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core import liveness
from ingestd.core.clock import Clock
from ingestd.core.errors import FileChanged, JobInputError, TransientError, WatchFolderMissing
from ingestd.core.jobs import Job, StaleTransition
from ingestd.core.outcomes import Policy, Stage, decide
from ingestd.folder.files import display
from ingestd.ledger import Ledger

# An idle stage looks again at least this often, and never sooner than the shortest wait.
LONGEST_IDLE_SECONDS = 5.0
SHORTEST_WAIT_SECONDS = 0.05
Step = Callable[[Ledger, Job], None]
# Outcomes that may only mean the watch folder itself is gone (an unmounted share).
_FILE_TROUBLE = (JobInputError, FileChanged, TransientError, OSError)


class Guard:
    """Runs one job's step; whatever happens ends in that job's state and reason."""

    def __init__(self, stage: Stage, settings: Settings, clock: Clock | None = None) -> None:
        self.stage = stage
        self.settings = settings
        self.clock = clock if clock is not None else Clock()  # the daemon's, shared
        self.log = logs.get(f"ingestd.{stage.value}")

    def run(self, ledger: Ledger, job: Job, step: Step) -> None:
        with logs.job_context(job):
            try:
                step(ledger, job)
            except sqlite3.Error:
                raise  # the ledger's trouble, not the job's: the supervisor restarts the stage
            except Exception as error:
                self.outcome(ledger, job, error)

    def outcome(self, ledger: Ledger, job: Job, error: Exception) -> None:
        """Decide what `error` means for `job` (as the ledger has it now) and apply it."""
        if not isinstance(error, StaleTransition):
            current = ledger.get(job.id)
            if current is None or current.state != job.state:
                error = StaleTransition(f"job {job.id} is no longer {job.state}")
            else:
                job = current
        error = self._in_context(error)
        policy = Policy.from_settings(self.settings.ingest)
        move = decide(job, self.stage, error, self.clock.now(), policy)
        if move.message:
            exc_info = error if move.traceback else None
            getattr(self.log, move.level)(move.message, exc_info=exc_info)
        if not move.writes:
            return
        try:
            ledger.apply(job, move)
        except StaleTransition:
            self.log.info("the job was moved meanwhile; leaving it to its new owner")

    def _in_context(self, error: Exception) -> Exception:
        """A file problem while the watch folder itself is gone is the folder's, not the job's."""
        if self.stage == Stage.POLL or not isinstance(error, _FILE_TROUBLE):
            return error
        if self.settings.watch_dir.is_dir():
            return error
        return WatchFolderMissing(f"the watch folder {display(self.settings.watch_dir)} is missing")


def idle_wait(soonest: float | None, now: float) -> float:
    """How long an idle stage sleeps: until its next job is due, at most LONGEST_IDLE_SECONDS
    (a job another process changed, say `ingestd retry`, is seen at the next look)."""
    if soonest is None:
        return LONGEST_IDLE_SECONDS
    return min(LONGEST_IDLE_SECONDS, max(SHORTEST_WAIT_SECONDS, soonest - now))


def work_through_jobs(
    ledger_path: Path,
    stop: threading.Event,
    due: Callable[[Ledger, float], list[Job]],
    guard: Guard,
    step: Step,
    *,
    wake: threading.Event,
    soonest: Callable[[Ledger, float], float | None],
    pause_under_auth_hold: bool = True,
) -> None:
    """Each pass takes the due jobs; an idle stage sleeps until `wake` is set (a job entered
    its state in this process), its next job is due (`soonest`), or the daemon stops."""
    ledger = Ledger(ledger_path, clock=guard.clock)
    try:
        while not stop.is_set():
            liveness.beat()
            wake.clear()  # before looking: a job arriving after the look wakes the wait
            hold = ledger.hold() if pause_under_auth_hold else None
            paused = hold is not None and hold.kind == "auth"
            now = guard.clock.now()  # one moment: a job is either due now or soonest after it
            jobs = [] if paused else due(ledger, now)
            for job in jobs:
                if stop.is_set():
                    break
                liveness.beat()
                guard.run(ledger, job, step)
            if not jobs:
                wake.wait(idle_wait(None if paused else soonest(ledger, now), now))
    finally:
        ledger.close()
