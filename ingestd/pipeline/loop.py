"""How a stage works: one guard around every job's step, and one loop around the stage.

`Guard.run` is the containment every per-job step runs in. Whatever the step raises, expected
or not, goes to core.outcomes.decide and the move it returns is applied to that job; the stage
goes on with the next job. The one exception is the ledger itself failing (sqlite3.Error, after
its own two minutes of patience): that is nobody's job, so the stage thread ends and the
daemon's supervisor restarts it after a pause.

`run_stage` is the loop of every stage (watcher, upload workers, poller, finisher, held jobs,
re-sync, notifications): beat the heartbeat, clear the wake-up, look (a pass of the stage's
own work, which says when it must look again), and wait until then, until a job enters its
state (ledger.wakeups) or for at most LONGEST_IDLE_SECONDS: never busy. `work_through_due` is
the pass of the stages that take due jobs one by one (finisher, held jobs, re-sync).
`PipelineStage` is what every stage is made of; `WistiaStage` one that talks to Wistia.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import ClassVar

from ingestd import logs
from ingestd.config.settings import IngestSettings, Settings
from ingestd.core import liveness
from ingestd.core.backoff import Backoff
from ingestd.core.clock import Clock
from ingestd.core.errors import FileChanged, JobInputError, TransientError, WatchFolderMissing
from ingestd.core.jobs import Job, JobState, StaleTransition
from ingestd.core.names import display
from ingestd.core.outcomes import Policy, Stage, decide
from ingestd.ledger import Ledger, Ledgers
from ingestd.wistia.client import WistiaClient

# An idle stage looks again at least this often, and never sooner than the shortest wait.
LONGEST_IDLE_SECONDS = 5.0
SHORTEST_WAIT_SECONDS = 0.05
Step = Callable[[Ledger, Job], None]
# One pass of a stage at a moment: when it must look again (see run_stage).
Pass = Callable[[float], float | None]
# Outcomes that may only mean the watch folder itself is gone (an unmounted share).
_FILE_TROUBLE = (JobInputError, FileChanged, TransientError, OSError)


def policy_for(ingest: IngestSettings) -> Policy:
    """The outcome policy's numbers, from `[ingest]`."""
    return Policy(
        max_attempts=ingest.max_attempts,
        retry=Backoff(
            ingest.retry_min_seconds, ingest.retry_max_seconds, jitter=ingest.retry_min_seconds
        ),
        poll=Backoff(ingest.poll_min_seconds, ingest.poll_max_seconds, factor=1.5),
        first_probe_in=ingest.probe_min_seconds,
        settle=ingest.settle_seconds,
        incomplete_after=ingest.incomplete_after_seconds,
    )


class Guard:
    """Runs one job's step; whatever happens ends in that job's state and reason."""

    def __init__(self, stage: Stage, settings: Callable[[], Settings], clock: Clock) -> None:
        self.stage = stage
        self.settings = settings  # the stage's settings as they are now (a reload replaces them)
        self.clock = clock
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
        policy = policy_for(self.settings().ingest)
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
        watch_dir = self.settings().watch_dir
        if watch_dir.is_dir():
            return error
        return WatchFolderMissing(f"the watch folder {display(watch_dir)} is missing")


def idle_wait(soonest: float | None, now: float) -> float:
    """How long an idle stage sleeps: until its next job is due, at most LONGEST_IDLE_SECONDS
    (a job another process changed, say `ingestd retry`, is seen at the next look)."""
    if soonest is None:
        return LONGEST_IDLE_SECONDS
    return min(LONGEST_IDLE_SECONDS, max(SHORTEST_WAIT_SECONDS, soonest - now))


def run_stage(
    stop: threading.Event,
    wake: threading.Event,
    clock: Clock,
    one_pass: Pass,
    *,
    retire: threading.Event | None = None,
) -> None:
    """The loop every stage runs until the daemon stops (or, for an upload worker, until it is
    retired): beat, clear, look, wait.

    `one_pass(now)` does what is due at `now` and says when the stage must look again: `now`
    (or before) to go on at once, a later moment to sleep until then, None when only a
    wake-up brings work. `wake` is set when a job enters the stage's state, or to look now."""
    while not stop.is_set() and (retire is None or not retire.is_set()):
        liveness.beat()
        wake.clear()  # before looking: a job arriving after the look wakes the wait
        now = clock.now()
        again = one_pass(now)
        if again is None or again > now:
            wake.wait(idle_wait(again, now))


def work_through_due(
    ledger: Ledger,
    now: float,
    guard: Guard,
    stop: threading.Event,
    due: Callable[[Ledger, float], list[Job]],
    step: Step,
    soonest: Callable[[Ledger, float], float | None],
    *,
    pause_under_auth_hold: bool = True,
) -> float | None:
    """A pass that takes the due jobs and runs each in the guard; when to look again. Under an
    auth hold, a stage that talks to Wistia takes no jobs."""
    hold = ledger.hold.current() if pause_under_auth_hold else None
    if hold is not None and hold.kind == "auth":
        return None
    jobs = due(ledger, now)
    for job in jobs:
        if stop.is_set():
            break
        liveness.beat()
        guard.run(ledger, job, step)
    return now if jobs else soonest(ledger, now)


class PipelineStage:
    """What every stage is made of: its settings (a reload replaces them), the Ledgers its
    thread opens its ledger from (with the clock and wake-ups all the daemon's threads share),
    the daemon's stop, and the guard every job's step runs in (`kind`: the stage whose
    outcomes the policy decides)."""

    kind: ClassVar[Stage]

    def __init__(self, settings: Settings, ledgers: Ledgers, stop: threading.Event) -> None:
        self.settings = settings
        self.ledgers = ledgers
        self.stop = stop
        self.clock = ledgers.clock
        self.guard = Guard(self.kind, lambda: self.settings, self.clock)

    def reload(self, fresh: Settings) -> None:
        """A config reload: what this stage reads from now on (daemon.reload)."""
        self.settings = fresh

    def run_passes(
        self,
        one_pass: Callable[[Ledger, float], float | None],
        *woken_by: JobState,
        wake: threading.Event | None = None,
        retire: threading.Event | None = None,
    ) -> None:
        """Run the stage's loop (`run_stage`) on a ledger of this thread's own, woken when a
        job enters one of `woken_by` (or when `wake` is set)."""
        with (
            self.ledgers.opened() as ledger,
            self.ledgers.wakeups.arrivals_while(*woken_by) as arrivals,
        ):
            run_stage(
                self.stop,
                wake or arrivals,
                self.clock,
                lambda now: one_pass(ledger, now),
                retire=retire,
            )

    def run_through_due(
        self,
        due: Callable[[Ledger, float], list[Job]],
        step: Step,
        soonest: Callable[[Ledger, float], float | None],
        *,
        woken_by: tuple[JobState, ...] = (),
        wake: threading.Event | None = None,
        pause_under_auth_hold: bool = True,
    ) -> None:
        """Run the stage as one that takes its due jobs one by one, woken when a job enters
        one of `woken_by` (or when `wake` is set)."""
        self.run_passes(
            lambda ledger, now: work_through_due(
                ledger,
                now,
                self.guard,
                self.stop,
                due,
                step,
                soonest,
                pause_under_auth_hold=pause_under_auth_hold,
            ),
            *woken_by,
            wake=wake,
        )


class WistiaStage(PipelineStage):
    """A stage that talks to Wistia: a PipelineStage with the daemon's one client."""

    def __init__(
        self,
        settings: Settings,
        ledgers: Ledgers,
        client: WistiaClient,
        stop: threading.Event,
    ) -> None:
        super().__init__(settings, ledgers, stop)
        self.client = client
