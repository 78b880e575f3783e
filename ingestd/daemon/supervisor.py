"""The supervisor: the stage threads, kept alive and watched.

Each stage runs on a supervised thread with its own heartbeat (core.liveness). From the
daemon's main loop, `supervise` restarts a thread that died (after 1 s, 2 s, 4 s ... up to a
minute if it keeps dying; one that ran for a minute counts as healthy again) and says whether
every stage makes progress: the daemon pings systemd's watchdog only then, so a stuck daemon
is restarted. `set_workers` keeps exactly the configured number of upload workers: extra ones
retire after their current job; missing ones are first taken back from those still retiring.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ingestd import logs
from ingestd.core.backoff import Backoff
from ingestd.core.errors import Cancelled
from ingestd.core.liveness import Heartbeat, attached

log = logs.get("ingestd.daemon")

# A stage thread that died is restarted after 1 s, 2 s, 4 s ... up to a minute; one that ran
# this long since its last start counts as healthy again.
RESTART = Backoff(first=1.0, cap=60.0)
STEADY_SECONDS = 60.0
WORKER_PREFIX = "upload-"
# A verdict older than this is no verdict: the main loop that looks every second is stuck.
FRESH_VERDICT_SECONDS = 10.0


@dataclass
class SupervisedStage:
    """One supervised thread: restarted if it dies, watched through its heartbeat. `target`
    runs it; an upload worker's also takes the event that retires it."""

    name: str
    target: Callable[[], None]
    retire: threading.Event = field(default_factory=threading.Event)  # workers only (reload)
    thread: threading.Thread | None = None
    restart_at: float = 0.0
    started_at: float = 0.0
    crashes: int = 0
    stalled: bool = False

    def __post_init__(self) -> None:
        self.heartbeat = Heartbeat(self.name)

    def start(self, now: float | None = None) -> None:
        self.started_at = time.monotonic() if now is None else now
        self.heartbeat.beat()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with attached(self.heartbeat):
            try:
                self.target()
            except Cancelled:
                pass
            except Exception:
                log.exception("stage stopped by an error; it is restarted", stage=self.name)

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class Supervisor:
    def __init__(
        self,
        stages: list[SupervisedStage],
        make_worker: Callable[[str], SupervisedStage],
        stop: threading.Event,
    ) -> None:
        self.stages = stages
        self.make_worker = make_worker  # an upload worker named upload-N
        self.stop = stop
        # The last look: when (monotonic), and the stages that were not well then. Read by
        # other threads (the heartbeat): replaced whole, never changed in place.
        self._verdict: tuple[float, Sequence[str]] | None = None

    def start(self) -> None:
        for stage in self.stages:
            stage.start()

    def supervise(self, now: float) -> bool:
        """Restart stages whose thread died; True when every stage runs and makes progress."""
        unwell = []
        for stage in list(self.stages):
            if self.stop.is_set():
                break
            if stage.alive():
                if not self._making_progress(stage, now):
                    unwell.append(stage.name)
            elif stage.retire.is_set():
                self.stages.remove(stage)  # a retired worker finished its last job
            else:
                unwell.append(stage.name)
                self._restart_later(stage, now)
        self._verdict = (now, tuple(unwell))
        return not unwell

    def unwell(self, now: float) -> str | None:
        """Why the stages are not well, by the last look (from any thread); None when every
        stage ran and made progress at a look less than FRESH_VERDICT_SECONDS ago."""
        verdict = self._verdict
        if verdict is None:
            return "the stages have not been looked at yet"
        looked, stages = verdict
        if now - looked > FRESH_VERDICT_SECONDS:
            return f"the stages were last looked at {now - looked:.0f} s ago"
        if stages:
            return "stages not running or making no progress: " + ", ".join(stages)
        return None

    def _making_progress(self, stage: SupervisedStage, now: float) -> bool:
        overdue = stage.heartbeat.overdue(now)
        if overdue and not stage.stalled:
            log.error(
                "stage makes no progress; systemd's watchdog is no longer pinged",
                stage=stage.name,
                overdue_seconds=round(overdue),
            )
        elif not overdue and stage.stalled:
            log.info("stage makes progress again", stage=stage.name)
        stage.stalled = overdue > 0
        return not stage.stalled

    def _restart_later(self, stage: SupervisedStage, now: float) -> None:
        if stage.restart_at == 0.0:
            steady = now - stage.started_at >= STEADY_SECONDS
            stage.crashes = 1 if steady else stage.crashes + 1
            stage.restart_at = now + RESTART.seconds(stage.crashes)
        elif now >= stage.restart_at:
            log.warning("restarting stage", stage=stage.name, crashes=stage.crashes)
            stage.restart_at = 0.0
            stage.start(now)

    def join(self, deadline: float) -> list[str]:
        """Wait for every stage to end, until the monotonic `deadline`; the names still busy."""
        for stage in self.stages:
            if stage.thread is not None:
                stage.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return [s.name for s in self.stages if s.alive()]

    # --- upload workers ---------------------------------------------------------------------

    def workers(self) -> list[SupervisedStage]:
        return sorted(
            (s for s in self.stages if s.name.startswith(WORKER_PREFIX)),
            key=lambda s: int(s.name.removeprefix(WORKER_PREFIX)),
        )

    def set_workers(self, wanted: int) -> None:
        """Exactly `wanted` workers: extra ones retire after their current job; missing ones
        are first taken back from those still retiring, then started."""
        workers = self.workers()
        active = [s for s in workers if not s.retire.is_set()]
        for stage in active[wanted:]:
            stage.retire.set()
        missing = wanted - len(active)
        for stage in workers:
            if missing > 0 and stage.retire.is_set() and stage.alive():
                stage.retire.clear()
                missing -= 1
        taken = {s.name for s in self.stages if s.alive() or not s.retire.is_set()}
        number = 1
        while missing > 0:
            name = f"{WORKER_PREFIX}{number}"
            if name not in taken:
                self.stages = [s for s in self.stages if s.name != name]  # a finished retiree
                stage = self.make_worker(name)
                self.stages.append(stage)
                stage.start()
                missing -= 1
            number += 1
