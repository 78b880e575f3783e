"""The daemon: wires the stages together, supervises their threads, and stops cleanly.

    watcher (1 thread)  ->  uploader (ingest.workers threads)  ->  poller (1)  ->  finisher (1)
                                   held jobs (1): rechecks each held job, lets it go on
                                   re-sync (1): sidecars changed after done reach the media
                                   notifications (1): delivers the outbox (webhook, command)
    metrics (its own process, metrics.listen): the ledger's numbers, and the daemon's own
        counters asked over a pipe (metrics.py)
    status page (its own process, web.listen): reads the ledger like `ingestd status`

Each stage talks to the others only through the ledger. The main thread only supervises and
never waits on the network: signal handlers set flags and the main loop acts on them (restart
a stage whose thread died, with a growing pause; reload the config on SIGHUP; ping systemd's
watchdog while every stage's heartbeat is fresh). On SIGTERM/SIGINT everything is asked to
stop; in-flight uploads are abandoned and go back to `queued` with no attempt counted, and
the daemon is gone within 10 seconds.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
from typing import Any

from ingestd import logs
from ingestd.config.settings import Settings, read_web_password
from ingestd.core.clock import Clock
from ingestd.core.errors import Cancelled, WistiaError
from ingestd.core.jobs import JobState
from ingestd.core.liveness import Heartbeat, attached
from ingestd.core.outcomes import Backoff
from ingestd.daemon.systemd import notify, watchdog_interval
from ingestd.ledger import (
    Ledger,
    LedgerLock,
    check_ledger_file,
    configure_outbox,
    wake,
    wake_all,
)
from ingestd.pipeline.finish.finisher import Finisher
from ingestd.pipeline.held import HeldJobs
from ingestd.pipeline.poll import Poller
from ingestd.pipeline.resync import Resync
from ingestd.pipeline.upload import Uploader
from ingestd.pipeline.watch import writers
from ingestd.pipeline.watch.watcher import Watcher
from ingestd.redact import add_secret
from ingestd.telling.notify.deliver import Notifier, receivers
from ingestd.wistia.client import RateLimiter, WistiaClient, poll_share
from ingestd.wistia.meters import Meters

log = logs.get("ingestd.daemon")

TICK_SECONDS = 1.0  # signals interrupt the wait; nothing else here needs to be sooner
STOP_DEADLINE_SECONDS = 8.0  # leaves headroom under the 10 s promised to systemd
ORPHAN_CHECK_SECONDS = 10.0
# A stage thread that died is restarted after 1 s, 2 s, 4 s ... up to a minute; one that ran
# this long since its last start counts as healthy again.
RESTART = Backoff(first=1.0, cap=60.0)
STEADY_SECONDS = 60.0
WORKER_PREFIX = "upload-"


@dataclass
class _Stage:
    """One supervised thread: restarted if it dies, watched through its heartbeat."""

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


class Daemon:
    def __init__(
        self,
        settings: Settings,
        token: str,
        *,
        reload: Callable[[], tuple[Settings, str]] | None = None,
    ) -> None:
        self.settings = settings
        self.token = token
        self._reload = reload
        self.stop = threading.Event()
        self._reload_requested = threading.Event()
        self._attention = threading.Event()  # a signal arrived: the main loop looks at once
        self.limiter = RateLimiter(settings.wistia.requests_per_minute)
        self.meters = Meters(process=True)
        self.client = WistiaClient(
            settings.wistia, token, self.limiter, self.stop, meters=self.meters
        )
        self.client.throttle.set_rate(settings.ingest.bandwidth)
        path = settings.ledger
        # One clock for every thread: they agree on what is due, whatever the system clock
        # does (clock.py).
        self.clock = clock = Clock()
        self.uploader = Uploader(settings, path, self.client, self.stop, clock)
        self.poller = Poller(settings, path, self.client, self.stop, clock)
        self.finisher = Finisher(settings, path, self.client, self.stop, clock)
        self.watcher = Watcher(settings, path, self.stop, clock=clock)
        self.held = HeldJobs(
            settings,
            path,
            self.stop,
            preflights={
                JobState.SETTLING: self.watcher.preflight,
                JobState.QUEUED: self.uploader.preflight,
                JobState.FINISHING: self.finisher.preflight,
            },
            clock=clock,
        )
        self.watcher.on_change = self.held.nudge
        self.resync = Resync(settings, path, self.finisher, self.stop, clock)
        self.notifier = Notifier(settings, path, self.client, self.stop, clock)
        self.metrics: Any = None  # /metrics (metrics.listen), made in run()
        self.page: Any = None  # the status page's process (web.listen), made in run()
        self.stages = [
            _Stage("watcher", self.watcher.run),
            *[
                self._upload_stage(f"{WORKER_PREFIX}{n + 1}")
                for n in range(settings.ingest.workers)
            ],
            _Stage("poller", self.poller.run),
            _Stage("finisher", self.finisher.run),
            _Stage("held", self.held.run),
            _Stage("resync", self.resync.run),
            _Stage("notifications", self.notifier.run),
        ]

    def _upload_stage(self, name: str) -> _Stage:
        retire = threading.Event()
        return _Stage(name, partial(self.uploader.run_worker, retire), retire)

    # --- life -----------------------------------------------------------------------------

    def run(self) -> int:
        check_ledger_file(self.settings.ledger)  # before the lock file is made beside it
        lock = LedgerLock(self.settings.ledger)
        lock.acquire()
        add_secret(self.token)
        self._configure_notifications(self.settings)
        self.ledger = Ledger(self.settings.ledger, clock=self.clock)
        try:
            self._install_signals()
            self._start_metrics()
            self._start_page()
            interrupted = self.ledger.requeue_interrupted(
                "found uploading at start-up; Wistia is checked before sending again"
            )
            if brought := self.ledger.bring_times_within(self.clock.now()):
                log.warning(
                    "due times far in the future are due now (the system clock stepped back?)",
                    count=brought,
                )
            log.info(
                "ingestd starting",
                watch_dir=str(self.settings.watch_dir),
                ledger=str(self.settings.ledger),
                interrupted_uploads=len(interrupted),
                workers=self.settings.ingest.workers,
            )
            for stage in self.stages:
                stage.start()
            self._main_loop()
        finally:
            self._shut_down()
            self.ledger.close()
            lock.release()
        return 0

    def _configure_notifications(self, settings: Settings) -> None:
        secret = settings.notify.webhook_secret.get_secret_value()
        if len(secret) >= 16:  # a short one would blank common words out of every line
            add_secret(secret)
        configure_outbox(list(settings.notify.events), receivers(settings.notify))

    def _start_metrics(self) -> None:
        """/metrics, from its own process (prometheus_client only when wanted)."""
        if not self.settings.metrics.listen:
            return
        from ingestd.telling.metrics import MetricsService

        self.metrics = MetricsService(self.settings, self.meters, self.stop)
        self.metrics.start()

    def _start_page(self) -> None:
        """The status page, in its own process; it links done jobs to Wistia with the
        account's url, which the daemon learns once (in the background) for it."""
        if not self.settings.web.listen:
            return
        from ingestd.telling.web import page_process  # Flask and waitress only when wanted

        password = read_web_password(self.settings)
        self.page = page_process(self.settings, self.token, password)
        self.page.start()
        threading.Thread(target=self._learn_account_url, name="account-url", daemon=True).start()

    def _learn_account_url(self) -> None:
        wait = 5.0
        while not self.stop.is_set():
            try:
                url = self.client.account_url()
            except (WistiaError, Cancelled) as exc:
                log.warning("cannot learn the account's url yet", error=str(exc))
                self.stop.wait(wait)
                wait = min(600.0, wait * 2)
                continue
            ledger = Ledger(self.settings.ledger, clock=self.clock)
            try:
                ledger.set_fact("account_url", url)
            finally:
                ledger.close()
            return

    def _main_loop(self) -> None:
        ready = False
        ping_every = watchdog_interval()
        next_ping = 0.0
        next_status = 0.0
        next_orphan_check = time.monotonic() + ORPHAN_CHECK_SECONDS
        while not self.stop.is_set():
            until_ping = next_ping - time.monotonic() if ping_every else TICK_SECONDS
            self._attention.wait(max(0.0, min(TICK_SECONDS, until_ping)))
            self._attention.clear()
            if self.stop.is_set():
                break
            now = time.monotonic()
            healthy = self._supervise(now)
            for served in (self.page, self.metrics):
                if served is not None:
                    served.check(now)
            if not ready and self.watcher.scanned.is_set():
                ready = True
                notify("READY=1", f"STATUS={self._status_line()}")
                log.info("ready: watching and start-up scan done")
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._do_reload()
            if now >= next_orphan_check:
                next_orphan_check = now + ORPHAN_CHECK_SECONDS
                for job in self.uploader.requeue_orphans(self.ledger):
                    log.warning("requeued a job its worker left behind", job_id=job.id)
            if ping_every and now >= next_ping:
                if healthy:  # an unhealthy daemon lets the ping pass: systemd restarts it
                    notify("WATCHDOG=1")
                next_ping = now + ping_every
            if ready and now >= next_status:
                notify(f"STATUS={self._status_line()}")
                next_status = now + 5.0

    def _supervise(self, now: float) -> bool:
        """Restart stages whose thread died; True when every stage runs and makes progress."""
        healthy = True
        for stage in list(self.stages):
            if self.stop.is_set():
                break
            if stage.alive():
                healthy &= self._making_progress(stage, now)
            elif stage.retire.is_set():
                self.stages.remove(stage)  # a retired worker finished its last job
            else:
                healthy = False
                self._restart_later(stage, now)
        return healthy

    def _making_progress(self, stage: _Stage, now: float) -> bool:
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

    def _restart_later(self, stage: _Stage, now: float) -> None:
        if stage.restart_at == 0.0:
            steady = now - stage.started_at >= STEADY_SECONDS
            stage.crashes = 1 if steady else stage.crashes + 1
            stage.restart_at = now + RESTART.seconds(stage.crashes)
        elif now >= stage.restart_at:
            log.warning("restarting stage", stage=stage.name, crashes=stage.crashes)
            stage.restart_at = 0.0
            stage.start(now)

    def _shut_down(self) -> None:
        notify("STOPPING=1")
        self.stop.set()
        wake_all()  # every stage waiting for work wakes, sees the stop, and ends
        deadline = time.monotonic() + STOP_DEADLINE_SECONDS
        for stage in self.stages:
            if stage.thread is not None:
                stage.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        stuck = [s.name for s in self.stages if s.alive()]
        if stuck:
            log.warning("stages still busy at the stop deadline", stages=stuck)
        # Anything still marked uploading was cut off: back to the queue, no attempt counted.
        self.ledger.requeue_interrupted("daemon stopped mid-upload; will start again")
        self.client.close()
        if self.metrics is not None:
            self.metrics.stop()
        if self.page is not None:
            self.page.stop()
        log.info("ingestd stopped")

    # --- signals --------------------------------------------------------------------------

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)
        writers.allow_leases()  # the settle step asks read leases whether a file is written

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise SystemExit(1)  # a second Ctrl+C: stop now
        self.stop.set()
        self._attention.set()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._reload_requested.set()
        self._attention.set()

    def _do_reload(self) -> None:
        """SIGHUP: re-read the config; a bad one is rejected and the running one kept.

        Live: the token, the rate limit, workers, extensions and ignore patterns, timings,
        project and caption defaults, `[notify]`. `watch_dir`, `ledger`, the two URLs,
        `metrics.listen` and `[web]` need a restart.
        """
        if self._reload is None:
            return
        notify("RELOADING=1")
        try:
            fresh, token = self._reload()
        except Exception as exc:  # whatever is wrong with the new files, the old config runs on
            log.error("config reload rejected; keeping the running config", error=str(exc))
            notify("READY=1")
            return
        current = self.settings
        fixed = {
            "watch_dir": (current.watch_dir, fresh.watch_dir),
            "ledger": (current.ledger, fresh.ledger),
            "wistia.upload_url": (current.wistia.upload_url, fresh.wistia.upload_url),
            "wistia.api_url": (current.wistia.api_url, fresh.wistia.api_url),
        }
        needs_restart = [key for key, (old, new) in fixed.items() if old != new]
        if needs_restart:
            log.warning("these keys change only when the daemon restarts", keys=needs_restart)
        fresh.wistia.upload_url = current.wistia.upload_url
        fresh.wistia.api_url = current.wistia.api_url
        current.wistia = fresh.wistia
        self.client.settings = fresh.wistia  # timeouts
        current.ingest = fresh.ingest
        current.captions = fresh.captions
        current.notify = fresh.notify
        self._configure_notifications(fresh)
        add_secret(token)
        self.token = token
        self.client.set_token(token)
        self.limiter.set_rate(fresh.wistia.requests_per_minute)
        self.client.poll_budget.set_rate(poll_share(fresh.wistia.requests_per_minute))
        self.client.throttle.set_rate(fresh.ingest.bandwidth)
        self.watcher.reload()
        self._set_workers(fresh.ingest.workers)
        if self.ledger.clear_hold("auth"):
            log.info("the auth hold is lifted; the next request tells whether the token works")
        log.info(
            "config reloaded",
            workers=fresh.ingest.workers,
            requests_per_minute=fresh.wistia.requests_per_minute,
            upload_bandwidth=fresh.ingest.upload_bandwidth or "no limit",
            upload_hours=fresh.ingest.upload_hours or "always",
        )
        notify("READY=1")

    def _set_workers(self, wanted: int) -> None:
        """Exactly `wanted` workers: extra ones retire after their current job; missing ones
        are first taken back from those still retiring, then started."""
        workers = sorted(
            (s for s in self.stages if s.name.startswith(WORKER_PREFIX)),
            key=lambda s: int(s.name.removeprefix(WORKER_PREFIX)),
        )
        active = [s for s in workers if not s.retire.is_set()]
        for stage in active[wanted:]:
            stage.retire.set()
        wake(JobState.QUEUED)  # idle workers let go see it at once
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
                stage = self._upload_stage(name)
                self.stages.append(stage)
                stage.start()
                missing -= 1
            number += 1

    def _status_line(self) -> str:
        counts = self.ledger.counts()
        parts = [f"{n} {state}" for state, n in sorted(counts.items())]
        hold = self.ledger.hold()
        text = ", ".join(parts) or "no jobs"
        return text + (f"; on hold: {hold.reason}" if hold else "")
