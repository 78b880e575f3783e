"""Detect: the stage that finds media files in the watch folder and owns `settling`.

Kernel events are only hints (observer.py): they say "look at this path". What a path holds
is decided by looking at it: its size and mtime against the ledger's newest job for it. A new
version becomes a `settling` job, and settle.py decides when it is complete and queues it.

The watcher owns `settling` and only that: a change to a file whose job is queued or held is
seen by that job's owner (the uploader checks the file before sending, a held job's recheck
looks at it), and a change to a file whose job is further on is a new version, a new job.
It also marks done media whose sidecars changed for a re-sync (pipeline.resync).

The watch is started before the start-up scan, so nothing that arrives in between is missed;
the tree is rescanned every `ingest.rescan_seconds` for what the kernel dropped; an observer
thread that died is noticed by `check_observer` and replaced.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.observers.api import BaseObserver

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core import liveness
from ingestd.core.errors import Cancelled
from ingestd.core.jobs import Job, JobState, version_of
from ingestd.core.names import display
from ingestd.core.outcomes import Stage
from ingestd.folder.files import lstat
from ingestd.folder.sidecars import DEFAULTS_NAME, own_sidecar_names
from ingestd.ledger import Ledger, Ledgers
from ingestd.pipeline import resync
from ingestd.pipeline.loop import PipelineStage, run_stage
from ingestd.pipeline.watch.filter import MediaFilter
from ingestd.pipeline.watch.observer import choose_observer, start_observer
from ingestd.pipeline.watch.settle import Settler, settle_anew

log = logs.get("ingestd.watcher")

# New candidates written per transaction.
FOUND_PER_TRANSACTION = 1000


class Watcher(PipelineStage):
    """Owns the observer and the settling jobs. Runs in its own thread (`run`)."""

    kind = Stage.SETTLE

    def __init__(
        self,
        settings: Settings,
        ledgers: Ledgers,
        stop: threading.Event,
        *,
        on_change: Callable[[Path], None] | None = None,
    ) -> None:
        super().__init__(settings, ledgers, stop)
        self.filter = MediaFilter(settings)
        self.on_change = on_change  # held jobs in a folder where something changed look again
        self.observer: BaseObserver | None = None
        self.scanned = threading.Event()  # the start-up scan is done (for READY=1)
        self._pending_files: set[str] = set()
        self._pending_dirs: set[str] = set()
        self._pending_lock = threading.Lock()
        self._next_rescan = 0.0
        self._watched_folder: tuple[int, int] | None = None  # (st_dev, st_ino) being watched
        self._folder_missing = False
        self._reported: set[str] = set()  # paths whose trouble was logged once
        self._after_upload: set[str] = set()  # changed while their job uploads: look again
        # An event, a new candidate, or the stop.
        self._wake = ledgers.wakeups.arrivals(JobState.SETTLING)
        self._found: dict[str, tuple[str, str, int, int]] = {}  # new candidates, to record
        self.settler = Settler(lambda: self.settings, self.guard, self.clock, stop)
        self.ledger: Ledger | None = None

    # --- the thread ---------------------------------------------------------------------

    def run(self) -> None:
        with self.ledgers.opened() as ledger:
            self.ledger = self.settler.ledger = ledger
            try:
                self.check_observer()  # starts the observer, then scans (or waits for it)
                self.scanned.set()
                run_stage(self.stop, self._wake, self.clock, self._pass)
            except Cancelled:
                pass
            finally:
                self.stop_observer()
                self.settler.close()

    def _pass(self, now: float) -> float:
        self.check_observer()
        busy = self.tick()
        return now + self._tick() if busy else self._next_rescan

    def tick(self) -> bool:
        """One pass: the paths events pointed at, the settling jobs, the rescan when due.
        True while files are settling (they are looked at again every tick)."""
        self._drain_hints()
        busy = not self._folder_missing and self.settler.settle()
        if self.clock.now() >= self._next_rescan:
            self.scan()
        return busy or bool(self._after_upload)

    def _tick(self) -> float:
        """How often settling files are looked at: often enough to notice the quiet time."""
        return min(0.25, max(0.05, self.settings.ingest.settle_seconds / 4))

    def reload(self, fresh: Settings) -> None:
        """New extensions or ignore patterns (config reload): look at the tree again."""
        self.settings = fresh
        self.filter = MediaFilter(fresh)
        self._next_rescan = 0.0  # the watcher thread rescans on its next tick
        self._wake.set()

    # --- the observer -------------------------------------------------------------------

    def start_observer(self) -> None:
        folder = self.settings.watch_dir
        kind, why = choose_observer(self.settings.ingest.observer, folder)
        try:
            self._start_observer(kind)
        except OSError as exc:
            if kind == "polling":
                raise
            # inotify's limits (max_user_watches, max_user_instances) are per user: polling
            # still sees everything, only later.
            log.error(
                "inotify cannot watch the folder; polling it instead",
                error=str(exc),
                hint="raise fs.inotify.max_user_watches / max_user_instances (sysctl)",
            )
            kind, why = "polling", f"inotify failed: {exc}"
            self._start_observer(kind)
        stat_ = folder.stat()
        self._watched_folder = (stat_.st_dev, stat_.st_ino)
        log.info("watching", folder=display(folder), observer=kind, why=why)

    def _start_observer(self, kind: str) -> None:
        self.observer = start_observer(kind, self.settings.watch_dir, self._push)

    def stop_observer(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=2)
            self.observer = None

    def check_observer(self) -> None:
        """Keep a live observer on the folder as it is now.

        A dead observer thread is replaced; a watch folder that went away (an unmounted share)
        is waited for, and when it is back (perhaps as another inode) it is watched afresh and
        rescanned for what arrived meanwhile.
        """
        try:
            stat_ = self.settings.watch_dir.stat()
            folder = (stat_.st_dev, stat_.st_ino)
        except OSError:
            folder = None
        if folder is None:
            if not self._folder_missing:
                self._folder_missing = True
                log.error(
                    "the watch folder is missing; waiting for it to come back",
                    folder=display(self.settings.watch_dir),
                )
            return
        alive = self.observer is not None and self.observer.is_alive()
        if alive and folder == self._watched_folder and not self._folder_missing:
            return
        if self._folder_missing:
            log.info("the watch folder is back", folder=display(self.settings.watch_dir))
        elif not alive and self.observer is not None:
            log.error("the file watcher stopped unexpectedly; restarting it and rescanning")
        self._folder_missing = False
        self.stop_observer()
        self.start_observer()
        self.scan()

    def _push(self, path: str, is_directory: bool) -> None:
        with self._pending_lock:
            (self._pending_dirs if is_directory else self._pending_files).add(path)
        self._wake.set()

    def _drain_hints(self) -> None:
        with self._pending_lock:
            files, self._pending_files = self._pending_files, set()
            dirs, self._pending_dirs = self._pending_dirs, set()
        waiting, self._after_upload = self._after_upload, set()
        for path in waiting:
            self._look(Path(path))
        for folder in dirs:
            # A new folder: watchdog walks it too, but close events inside it may be lost.
            self._changed(Path(folder))
            self._scan_folder(Path(folder))
        for path in files:
            self._changed(Path(path).parent)
            self._look(Path(path))
        self._record_found()
        self._sidecars_changed([Path(path) for path in files])

    def _sidecars_changed(self, paths: list[Path]) -> None:
        """Done media whose sidecars changed (or a `_defaults.json` above them) are marked for
        a re-sync (resync.py), a settle period from now; so are media still finishing (the
        finisher may have read the sidecars already), looked at once they are done."""
        assert self.ledger is not None
        if not resync.enabled(self.settings):
            return
        by_folder: dict[Path, set[str]] = {}
        for path in paths:
            if (
                path.name.lower().endswith(resync.SIDECAR_SUFFIXES)
                and self.filter.kind(path) is None
            ):
                by_folder.setdefault(path.parent, set()).add(path.name)
        marked: list[int] = []
        for folder, names in by_folder.items():
            below = self.ledger.resync.below(str(folder))
            if DEFAULTS_NAME in names:
                marked += [job.id for job in below]
                continue
            for job in below:
                media = Path(job.path)
                if media.parent == folder and own_sidecar_names(media.name, sorted(names)):
                    marked.append(job.id)
        if marked:
            now = self.clock.now()
            self.ledger.resync.mark(marked, now + self.settings.ingest.settle_seconds, now)

    def _changed(self, folder: Path) -> None:
        if self.on_change is not None:
            self.on_change(folder)

    # --- looking at paths ---------------------------------------------------------------

    def scan(self) -> None:
        """Reconcile the whole tree with the ledger."""
        assert self.ledger is not None
        self._next_rescan = self.clock.now() + self.settings.ingest.rescan_seconds
        if not self.settings.watch_dir.is_dir():
            return  # check_observer reports it, once
        known = self.ledger.settling.known_versions()
        found = 0
        for path in self.filter.walk():
            if self.stop.is_set():
                raise Cancelled()
            liveness.beat()
            found += 1
            if _version(path) != known.get(str(path)):
                self._look(path)  # new or changed since the ledger last saw it
        self._record_found()
        log.info("scanned watch folder", media_files=found)
        if resync.enabled(self.settings):
            marked = resync.changed_unseen(self.ledger, self.settings.watch_dir)
            now = self.clock.now()
            self.ledger.resync.mark(marked, now, now)

    def _scan_folder(self, folder: Path) -> None:
        if folder.is_relative_to(self.settings.watch_dir):
            for path in self.filter.walk(folder):
                self._look(path)

    def _look(self, path: Path) -> None:
        """`consider`, contained: trouble with one path is logged once, never stops the rest."""
        try:
            self._consider(path)
        except (sqlite3.Error, Cancelled):
            raise
        except Exception as error:
            key = str(path)
            if key not in self._reported:
                self._reported.add(key)
                log.warning("cannot look at this path", path=display(path), error=repr(error))

    def observe(self, path: Path) -> None:
        """Look at one path and record what it holds (a link is looked at, not followed)."""
        self._consider(path)
        self._record_found()

    def _record_found(self) -> None:
        """The new candidates found since the last call, written together (a burst of ten
        thousand files is a few transactions, not ten thousand)."""
        assert self.ledger is not None
        found, self._found = self._found, {}
        rows = list(found.values())
        for start in range(0, len(rows), FOUND_PER_TRANSACTION):
            for job in self.ledger.settling.add_many(
                rows[start : start + FOUND_PER_TRANSACTION], self.clock.now()
            ):
                with logs.job_context(job):
                    log.debug("found file", size=job.size)

    def _consider(self, path: Path) -> None:
        assert self.ledger is not None
        kind = self.filter.kind(path)
        if kind is None:
            return
        latest = self.ledger.jobs.latest_for_path(str(path))
        entry = lstat(path)
        if entry is None:
            if latest is not None and latest.state == JobState.SETTLING:
                # gone before it settled: never a version
                self.ledger.settling.drop_candidate(latest)
            return
        if stat.S_ISDIR(entry.st_mode):
            return  # a folder named like a media file is a folder
        size, mtime_ns = version_of(entry)
        if latest is not None and latest.version == (size, mtime_ns):
            return  # the version the ledger knows
        if latest is not None and latest.state == JobState.SETTLING:
            settle_anew(self.ledger, latest, entry, self.clock.now())
        elif latest is not None and latest.state == JobState.UPLOADING:
            # The upload reads the file it hashed, whatever is at the path now; what is there
            # now is looked at again once the upload is over.
            self._after_upload.add(str(path))
        elif latest is not None and _sees_changes_itself(latest):
            return
        else:
            self._found[str(path)] = (str(path), kind.value, size, mtime_ns)


def _sees_changes_itself(job: Job) -> bool:
    """Jobs whose owner checks the file itself before going on: the queue, a held job not yet
    in Wistia. A change to any other job's file is a new version."""
    return job.state == JobState.QUEUED or (job.state == JobState.HELD and job.hashed_id is None)


def _version(path: Path) -> tuple[int, int] | None:
    try:
        entry = os.lstat(path)
    except OSError:
        return None
    return version_of(entry)
