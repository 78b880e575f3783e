"""The daemon: wires the stages together, supervises their threads, and stops cleanly.

    watcher (1 thread)  ->  uploader (ingest.workers threads)  ->  poller (1)  ->  finisher (1)

Each stage talks to the others only through the ledger. The main thread only supervises:
signal handlers set flags and the main loop acts on them (restart a dead stage, probe an auth
hold, reload the config on SIGHUP, ping systemd's watchdog). On SIGTERM/SIGINT everything is
asked to stop; in-flight uploads are abandoned and go back to `queued` with no attempt
counted, and the daemon is gone within 10 seconds.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from ingestd import logs
from ingestd.config import Settings
from ingestd.errors import AuthError, Cancelled, ConfigError, TransientError
from ingestd.finisher import Finisher
from ingestd.ledger import Ledger, LedgerLock
from ingestd.notify import notify, watchdog_interval
from ingestd.poller import Poller
from ingestd.uploader import Uploader
from ingestd.watcher import Watcher
from ingestd.wistia import RateLimiter, WistiaClient

log = logs.get("ingestd.daemon")

TICK_SECONDS = 0.25
STOP_DEADLINE_SECONDS = 8.0  # leaves headroom under the 10 s promised to systemd
RESTART_DELAY_SECONDS = 1.0
ORPHAN_CHECK_SECONDS = 10.0


@dataclass
class _Stage:
    """One supervised thread: restarted if it dies of an unexpected error."""

    name: str
    target: Callable[[], None]
    thread: threading.Thread | None = None
    restart_at: float = 0.0

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.target()
        except Cancelled:
            pass
        except Exception:
            log.exception("stage crashed; restarting it", stage=self.name)

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
        self.limiter = RateLimiter(settings.wistia.requests_per_minute)
        self.client = WistiaClient(settings.wistia, token, self.limiter, self.stop)
        path = settings.ledger
        self.watcher = Watcher(settings, path, self.stop)
        self.uploader = Uploader(settings, path, self.client, self.stop)
        self.poller = Poller(settings, path, self.client, self.stop)
        self.finisher = Finisher(settings, path, self.client, self.stop)
        self.stages = [
            _Stage("watcher", self.watcher.run),
            *[self._upload_stage(n) for n in range(settings.ingest.workers)],
            _Stage("poller", self.poller.run),
            _Stage("finisher", self.finisher.run),
        ]

    def _upload_stage(self, number: int) -> _Stage:
        return _Stage(f"upload-{number + 1}", lambda: self.uploader.run_worker(number))

    # --- life -----------------------------------------------------------------------------

    def run(self) -> int:
        lock = LedgerLock(self.settings.ledger)
        lock.acquire()
        logs.add_secret(self.token)
        self.ledger = Ledger(self.settings.ledger)
        try:
            self._install_signals()
            interrupted = self.ledger.requeue_interrupted(
                "found uploading at start-up; Wistia is checked before sending again"
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

    def _main_loop(self) -> None:
        ready = False
        ping_every = watchdog_interval()
        next_ping = 0.0
        next_status = 0.0
        next_orphan_check = time.monotonic() + ORPHAN_CHECK_SECONDS
        while not self.stop.wait(TICK_SECONDS):
            now = time.monotonic()
            healthy = self._supervise(now)
            if not ready and self.watcher.scanned.is_set():
                ready = True
                notify("READY=1", f"STATUS={self._status_line()}")
                log.info("ready: watching and start-up scan done")
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._do_reload()
            self._probe_auth_hold()
            if now >= next_orphan_check:
                next_orphan_check = now + ORPHAN_CHECK_SECONDS
                for job in self.uploader.requeue_orphans(self.ledger):
                    log.warning("requeued a job its worker left behind", job_id=job.id)
            if ping_every and healthy and now >= next_ping:
                notify("WATCHDOG=1")
                next_ping = now + ping_every
            if ready and now >= next_status:
                notify(f"STATUS={self._status_line()}")
                next_status = now + 5.0

    def _supervise(self, now: float) -> bool:
        """Restart any stage whose thread died; True when all are running."""
        healthy = True
        for stage in self.stages:
            if stage.alive() or self.stop.is_set():
                continue
            healthy = False
            if stage.restart_at == 0.0:
                stage.restart_at = now + RESTART_DELAY_SECONDS
            elif now >= stage.restart_at:
                log.warning("restarting stage", stage=stage.name)
                stage.restart_at = 0.0
                stage.start()
        return healthy

    def _shut_down(self) -> None:
        notify("STOPPING=1")
        self.stop.set()
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
        log.info("ingestd stopped")

    # --- signals --------------------------------------------------------------------------

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise SystemExit(1)  # a second Ctrl+C: stop now
        self.stop.set()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._reload_requested.set()

    def _do_reload(self) -> None:
        """SIGHUP: re-read the config; a bad one is rejected and the running one kept.

        Live: the token, the rate limit, workers, extensions and ignore patterns, timings,
        project and caption defaults. `watch_dir`, `ledger` and the two URLs need a restart.
        """
        if self._reload is None:
            return
        notify("RELOADING=1")
        try:
            fresh, token = self._reload()
        except ConfigError as exc:
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
        logs.add_secret(token)
        self.token = token
        self.client.set_token(token)
        self.limiter.set_rate(fresh.wistia.requests_per_minute)
        self.watcher.reload()
        self._set_workers(fresh.ingest.workers)
        if self.ledger.clear_hold("auth"):
            log.info("the auth hold is lifted; the next request tells whether the token works")
        log.info(
            "config reloaded",
            workers=fresh.ingest.workers,
            requests_per_minute=fresh.wistia.requests_per_minute,
        )
        notify("READY=1")

    def _set_workers(self, wanted: int) -> None:
        uploads = [s for s in self.stages if s.name.startswith("upload-")]
        self.uploader.wanted_workers = wanted
        for number in range(len(uploads), wanted):
            stage = self._upload_stage(number)
            self.stages.append(stage)
            stage.start()
        for stage in uploads[wanted:]:
            self.stages.remove(stage)  # it finishes its job, then sees it is not wanted

    # --- account-wide hold ----------------------------------------------------------------

    def _probe_auth_hold(self) -> None:
        hold = self.ledger.hold()
        if hold is None or hold.kind != "auth":
            return
        interval = min(hold.probe_interval * 2, self.settings.ingest.probe_max_seconds)
        if not self.ledger.take_probe("auth", interval):
            return
        try:
            account = self.client.account()
        except AuthError as exc:
            log.warning("token still refused", next_probe_in=round(interval), reason=exc.reason)
            return
        except (TransientError, Cancelled):
            return
        except Exception:
            log.exception("auth probe failed")
            return
        self.ledger.clear_hold("auth")
        log.info("token accepted again; resuming", account=account.get("name"))

    def _status_line(self) -> str:
        counts = self.ledger.counts()
        parts = [f"{n} {state}" for state, n in sorted(counts.items())]
        hold = self.ledger.hold()
        text = ", ".join(parts) or "no jobs"
        return text + (f"; on hold: {hold.reason}" if hold else "")
