"""The daemon: builds the components, runs them, and stops cleanly.

    watcher (1 thread)  ->  uploader (ingest.workers threads)  ->  poller (1)  ->  finisher (1)
                                   held jobs (1): rechecks each held job, lets it go on
                                   re-sync (1): sidecars changed after done reach the media
                                   notifications (1, a lane per receiver): delivers the outbox
                                   heartbeat (1): a GET to notify.heartbeat_url while well
    metrics (its own process, metrics.listen): the ledger's numbers, and the daemon's own
        counters asked over a pipe (telling.metrics)
    status page (its own process, web.listen): reads the ledger like `ingestd status`

Each stage talks to the others only through the ledger. They share one clock (core.clock),
one set of wake-ups and the outbox's configuration (ledger.Ledgers). The main thread only
supervises and never waits on the network: signal handlers set flags and the main loop acts
on them (the supervisor restarts a stage whose thread died; SIGHUP reloads the config, as
reload.py says; systemd's watchdog is pinged while every stage's heartbeat is fresh). On
SIGTERM/SIGINT everything is asked to stop; in-flight uploads go back to `queued` with no
attempt counted, and the daemon is gone within 10 seconds.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import Any

from ingestd import logs
from ingestd.config.settings import Settings, read_web_password
from ingestd.core.clock import Clock
from ingestd.core.errors import Cancelled, WistiaError
from ingestd.core.jobs import JobState
from ingestd.daemon import reload
from ingestd.daemon.supervisor import WORKER_PREFIX, SupervisedStage, Supervisor
from ingestd.daemon.systemd import notify, watchdog_interval
from ingestd.ledger import LedgerLock, Ledgers, check_ledger_file
from ingestd.pipeline.adopt import Adopter
from ingestd.pipeline.finish import Finisher
from ingestd.pipeline.held import HeldJobs
from ingestd.pipeline.poll import Poller
from ingestd.pipeline.resync import Resync
from ingestd.pipeline.upload import Uploader
from ingestd.pipeline.watch import writers
from ingestd.pipeline.watch.watcher import Watcher
from ingestd.telling.notify import deliver
from ingestd.telling.notify.deliver import Notifier, outbox_for
from ingestd.telling.notify.heartbeat import Pinger
from ingestd.wistia.client import WistiaClient
from ingestd.wistia.limiter import RateLimiter
from ingestd.wistia.meters import Meters

log = logs.get("ingestd.daemon")

TICK_SECONDS = 1.0  # signals interrupt the wait; nothing else here needs to be sooner
STOP_DEADLINE_SECONDS = 8.0  # leaves headroom under the 10 s promised to systemd
ORPHAN_CHECK_SECONDS = 10.0


class Daemon:
    def __init__(
        self,
        settings: Settings,
        token: str,
        *,
        reload_config: Callable[[], tuple[Settings, str]] | None = None,
    ) -> None:
        self.settings = settings
        self.token = token
        self._reload_config = reload_config
        # Before anything reads a URL of [notify] (Apprise may log one it cannot read); the
        # token is registered when the daemon runs.
        for secret in deliver.secrets(settings.notify):
            logs.add_secret(secret)
        self.stop = threading.Event()
        self._reload_requested = threading.Event()
        self._attention = threading.Event()  # a signal arrived: the main loop looks at once
        # One clock, one set of wake-ups and one outbox for every thread (ledger.Ledgers).
        self.ledgers = Ledgers(settings.ledger, clock=Clock(), outbox=outbox_for(settings.notify))
        self.clock = self.ledgers.clock
        self.meters = Meters(process=True)
        self.client = WistiaClient(
            settings.wistia,
            token,
            RateLimiter(settings.wistia.requests_per_minute),
            self.stop,
            meters=self.meters,
        )
        self.client.throttle.set_rate(settings.ingest.bandwidth)
        self.uploader = Uploader(settings, self.ledgers, self.client, self.stop)
        # Shares the uploader's folder projects: a folder's project is found once for both.
        self.adopter = Adopter(
            settings, self.ledgers, self.client, self.stop, self.uploader.projects
        )
        self.poller = Poller(settings, self.ledgers, self.client, self.stop)
        self.finisher = Finisher(settings, self.ledgers, self.client, self.stop)
        self.watcher = Watcher(settings, self.ledgers, self.stop)
        self.held = HeldJobs(
            settings,
            self.ledgers,
            self.stop,
            preflights={
                JobState.SETTLING: self.watcher.settler.preflight,
                JobState.QUEUED: self.uploader.preflight,
                JobState.FINISHING: self.finisher.preflight,
            },
        )
        self.watcher.on_change = self.held.nudge
        self.resync = Resync(settings, self.ledgers, self.client, self.stop)
        self.notifier = Notifier(settings, self.ledgers, self.client, self.stop)
        # The heartbeat pings while the supervisor's last look found every stage well.
        self.pinger = Pinger(
            settings,
            self.ledgers,
            self.stop,
            lambda: self.supervisor.unwell(time.monotonic()),
        )
        # What a reload hands the new config to (reload.py); the client takes the token too.
        self.reloadable: list[reload.Reloadable] = [
            self.uploader,
            self.adopter,
            self.poller,
            self.finisher,
            self.watcher,
            self.held,
            self.resync,
            self.notifier,
            self.pinger,
        ]
        self.metrics: Any = None  # /metrics (metrics.listen), made in run()
        self.page: Any = None  # the status page's process (web.listen), made in run()
        self.supervisor = Supervisor(
            [
                SupervisedStage("watcher", self.watcher.run),
                *[
                    self._upload_worker(f"{WORKER_PREFIX}{n + 1}")
                    for n in range(settings.ingest.workers)
                ],
                SupervisedStage("adopt", self.adopter.run),
                SupervisedStage("poller", self.poller.run),
                SupervisedStage("finisher", self.finisher.run),
                SupervisedStage("held", self.held.run),
                SupervisedStage("resync", self.resync.run),
                SupervisedStage("notifications", self.notifier.run),
                SupervisedStage("heartbeat", self.pinger.run),
            ],
            self._upload_worker,
            self.stop,
        )

    def _upload_worker(self, name: str) -> SupervisedStage:
        retire = threading.Event()
        return SupervisedStage(name, partial(self.uploader.run_worker, retire), retire)

    # --- life -----------------------------------------------------------------------------

    def run(self) -> int:
        check_ledger_file(self.settings.ledger)  # before the lock file is made beside it
        lock = LedgerLock(self.settings.ledger)
        lock.acquire()
        self._register_secrets(self.settings, self.token)
        self.ledger = self.ledgers.open()
        try:
            self._install_signals()
            self._start_metrics()
            self._start_page()
            interrupted = self.ledger.uploads.requeue_interrupted(
                "found uploading at start-up; Wistia is checked before sending again"
            )
            longest = self.settings.ingest.longest_wait_seconds
            if brought := self.ledger.dues.bring_within(self.clock.now(), longest):
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
            self.supervisor.start()
            self._main_loop()
        finally:
            self._shut_down()
            self.ledger.close()
            lock.release()
        return 0

    def _register_secrets(self, settings: Settings, token: str) -> None:
        """The token, and what `[notify]` holds: the webhook's secret, the secrets in each
        Apprise URL, the heartbeat URL's key (deliver.secrets)."""
        logs.add_secret(token)
        for secret in deliver.secrets(settings.notify):
            logs.add_secret(secret)

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
            with self.ledgers.opened() as ledger:
                ledger.facts.set("account_url", url)
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
            healthy = self.supervisor.supervise(now)
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

    def _shut_down(self) -> None:
        notify("STOPPING=1")
        self.stop.set()
        self.ledgers.wakeups.wake_all()  # every waiting stage wakes, sees the stop, and ends
        stuck = self.supervisor.join(time.monotonic() + STOP_DEADLINE_SECONDS)
        if stuck:
            log.warning("stages still busy at the stop deadline", stages=stuck)
        # Anything still marked uploading was cut off: back to the queue, no attempt counted.
        self.ledger.uploads.requeue_interrupted("daemon stopped mid-upload; will start again")
        self.client.close()
        for served in (self.metrics, self.page):
            if served is not None:
                served.stop()
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
        """SIGHUP: re-read the config and hand it to every component (reload.py says what
        changes live); a config that does not load is rejected and the running one kept."""
        if self._reload_config is None:
            return
        notify("RELOADING=1")
        try:
            fresh, token = self._reload_config()
            self._register_secrets(fresh, token)  # before Apprise reads (and may log) a URL
            deliver.for_people(fresh.notify)  # every Apprise URL one Apprise can send to
        except Exception as exc:  # whatever is wrong with the new files, the old config runs on
            log.error("config reload rejected; keeping the running config", error=str(exc))
            notify("READY=1")
            return
        planned = reload.plan(self.settings, fresh)
        if planned.needs_restart:
            log.warning(
                "these keys change only when the daemon restarts", keys=planned.needs_restart
            )
        self.settings = settings = planned.settings
        self.token = token
        self.client.reload(settings, token)
        self.ledgers.outbox = outbox_for(settings.notify)
        for component in self.reloadable:
            component.reload(settings)
        self.supervisor.set_workers(settings.ingest.workers)
        self.ledgers.wakeups.wake(JobState.QUEUED)  # idle workers let go see it at once
        if self.ledger.hold.clear("auth"):
            log.info("the auth hold is lifted; the next request tells whether the token works")
        elif self.ledger.hold.probe_now():
            log.info("the hold is probed at once")
        log.info(
            "config reloaded",
            workers=settings.ingest.workers,
            requests_per_minute=settings.wistia.requests_per_minute,
            upload_bandwidth=settings.ingest.upload_bandwidth or "no limit",
            upload_hours=settings.ingest.upload_hours or "always",
        )
        notify("READY=1")

    def _status_line(self) -> str:
        counts = self.ledger.jobs.counts()
        parts = [f"{n} {state}" for state, n in sorted(counts.items())]
        hold = self.ledger.hold.current()
        text = ", ".join(parts) or "no jobs"
        return text + (f"; on hold: {hold.reason}" if hold else "")
