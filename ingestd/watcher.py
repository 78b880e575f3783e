"""Detect and settle: find media files in the watch folder and queue each complete version.

Kernel events are only hints (see NOTES.md): they say "look at this path". What a path holds
is decided by looking at it: its size and mtime against the ledger's newest job for it.
A new version becomes a `settling` job; once its size and mtime have not changed for
`ingest.settle_seconds` it is hashed, and its content decides whether it is new (queued) or a
version the ledger already knows (a restart, a rescan, a touch: nothing to do).

The watch is started before the start-up scan, so nothing that arrives in between is missed;
the tree is rescanned every `ingest.rescan_seconds` for what the kernel dropped; an observer
thread that died is noticed by `check_observer` and replaced.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat as stat_module
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ingestd import logs
from ingestd.config import Settings
from ingestd.errors import Cancelled, JobInputError
from ingestd.jobs import Job, JobKind, JobState, version_of
from ingestd.ledger import Ledger

log = logs.get("ingestd.watcher")

HASH_CHUNK = 1024 * 1024
URL_EXTENSION = "url"
# How often a job held for an unreadable file is looked at again.
RECHECK_HELD_SECONDS = 5.0


def sha256_of(path: Path, stop: threading.Event) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            if stop.is_set():
                raise Cancelled()
            digest.update(chunk)
    return digest.hexdigest()


class MediaFilter:
    """Which paths are media: extension listed (or `.url`), no ignored part, not archived."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.watch_dir
        self.extensions = set(settings.ingest.extensions)
        self.ignore = list(settings.ingest.ignore)
        archive = settings.ingest.archive_dir
        self.archive = Path(archive) if archive else None

    def kind(self, path: Path) -> JobKind | None:
        """The job kind for a path, or None when it is not ours to touch."""
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return None
        if self.archive and path.is_relative_to(self.archive):
            return None
        if any(self.ignored(part) for part in relative.parts):
            return None
        extension = path.suffix.lower().lstrip(".")
        if extension == URL_EXTENSION:
            return JobKind.URL
        return JobKind.FILE if extension in self.extensions else None

    def ignored(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.ignore)

    def walk(self) -> Iterator[Path]:
        """Every candidate path under the root; ignored folders are not entered."""
        for folder, dirs, files in os.walk(self.root, onerror=_log_walk_error):
            dirs[:] = [d for d in dirs if not self.ignored(d)]
            base = Path(folder)
            if self.archive and base.is_relative_to(self.archive):
                dirs[:] = []
                continue
            for name in files:
                path = base / name
                if self.kind(path) is not None:
                    yield path


def _log_walk_error(error: OSError) -> None:
    log.warning("cannot scan folder", folder=error.filename, error=error.strerror)


class _Hints(FileSystemEventHandler):
    """Turns watchdog events into paths to look at. Never raises: that kills the observer."""

    def __init__(self, push: Callable[[str, bool], None]) -> None:
        self._push = push

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            paths = [event.src_path]
            if isinstance(event, FileMovedEvent | DirMovedEvent) and event.dest_path:
                paths.append(event.dest_path)
            for raw in paths:
                path = os.fsdecode(raw)
                self._push(path, event.is_directory)
        except Exception:
            log.exception("watch event handler failed", event=repr(event))


class Watcher:
    """Owns the observer and the settling jobs. Runs in its own thread (`run`)."""

    def __init__(self, settings: Settings, ledger_path: Path, stop: threading.Event) -> None:
        self.settings = settings
        self.ledger_path = ledger_path
        self.stop = stop
        self.filter = MediaFilter(settings)
        self.observer: BaseObserver | None = None
        self.scanned = threading.Event()  # the start-up scan is done (for READY=1)
        self._pending_files: set[str] = set()
        self._pending_dirs: set[str] = set()
        self._pending_lock = threading.Lock()
        self._next_rescan = 0.0
        self._next_held_check = 0.0
        self._watched_folder: tuple[int, int] | None = None  # (st_dev, st_ino) being watched
        self._folder_missing = False
        self._reported_links: set[str] = set()
        self.ledger: Ledger | None = None

    # --- the thread ---------------------------------------------------------------------

    def run(self) -> None:
        self.ledger = Ledger(self.ledger_path)
        try:
            self.check_observer()  # starts the observer, then scans (or waits for the folder)
            self.scanned.set()
            tick = min(0.25, max(0.05, self.settings.ingest.settle_seconds / 4))
            while not self.stop.wait(tick):
                self.tick()
        except Cancelled:
            pass
        finally:
            self.stop_observer()
            self.ledger.close()

    def tick(self) -> None:
        now = time.monotonic()
        self.check_observer()
        self._drain_hints()
        self._settle()
        if now >= self._next_held_check:
            self._next_held_check = now + RECHECK_HELD_SECONDS
            self._recheck_held()
        if now >= self._next_rescan:
            self.scan()

    def reload(self) -> None:
        """New extensions or ignore patterns (config reload): look at the tree again."""
        self.filter = MediaFilter(self.settings)
        self._next_rescan = 0.0  # the watcher thread rescans on its next tick

    # --- the observer -------------------------------------------------------------------

    def start_observer(self) -> None:
        mode = self.settings.ingest.observer
        observer: BaseObserver = PollingObserver(timeout=1.0) if mode == "polling" else Observer()
        # No modify events: one per write is a storm, and settling files are looked at on
        # every tick anyway. (watchdog 7.1 asks inotify for IN_ATTRIB only with modify events,
        # so a bare `touch` shows up at the next rescan: it changes no bytes, so nothing waits.)
        events = [
            FileCreatedEvent,
            FileClosedEvent,
            FileMovedEvent,
            FileDeletedEvent,
            DirCreatedEvent,
            DirMovedEvent,
        ]
        if mode == "polling":
            events.append(FileModifiedEvent)  # polling reports no close events
        observer.schedule(
            _Hints(self._push), str(self.settings.watch_dir), recursive=True, event_filter=events
        )
        observer.daemon = True
        observer.start()
        self.observer = observer
        stat = self.settings.watch_dir.stat()
        self._watched_folder = (stat.st_dev, stat.st_ino)
        log.info("watching", folder=str(self.settings.watch_dir), observer=type(observer).__name__)

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
            stat = self.settings.watch_dir.stat()
            folder = (stat.st_dev, stat.st_ino)
        except OSError:
            folder = None
        if folder is None:
            if not self._folder_missing:
                self._folder_missing = True
                log.error(
                    "the watch folder is missing; waiting for it to come back",
                    folder=str(self.settings.watch_dir),
                )
            return
        alive = self.observer is not None and self.observer.is_alive()
        if alive and folder == self._watched_folder and not self._folder_missing:
            return
        if self._folder_missing:
            log.info("the watch folder is back", folder=str(self.settings.watch_dir))
        elif not alive and self.observer is not None:
            log.error("the file watcher stopped unexpectedly; restarting it and rescanning")
        self._folder_missing = False
        self.stop_observer()
        self.start_observer()
        self.scan()

    def _push(self, path: str, is_directory: bool) -> None:
        with self._pending_lock:
            (self._pending_dirs if is_directory else self._pending_files).add(path)

    def _drain_hints(self) -> None:
        with self._pending_lock:
            files, self._pending_files = self._pending_files, set()
            dirs, self._pending_dirs = self._pending_dirs, set()
        for folder in dirs:
            # A new folder: watchdog walks it too, but close events inside it may be lost.
            self._scan_folder(Path(folder))
        for path in files:
            self.observe(Path(path))

    # --- looking at paths ---------------------------------------------------------------

    def scan(self) -> None:
        """Reconcile the whole tree with the ledger."""
        assert self.ledger is not None
        self._next_rescan = time.monotonic() + self.settings.ingest.rescan_seconds
        if not self.settings.watch_dir.is_dir():
            return  # check_observer reports it, once
        known = self.ledger.known_versions()
        found = 0
        for path in self.filter.walk():
            if self.stop.is_set():
                raise Cancelled()
            found += 1
            if path.is_symlink() or _version(path) != known.get(str(path)):
                self.observe(path)  # new or changed since the ledger last saw it
        log.info("scanned watch folder", media_files=found)

    def _scan_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            return
        for base, _dirs, files in os.walk(folder):
            for name in files:
                self.observe(Path(base) / name)

    def observe(self, path: Path) -> None:
        """Look at one path and record what it holds."""
        assert self.ledger is not None
        kind = self.filter.kind(path)
        if kind is None:
            return
        if path.is_symlink():
            target = self._link_target(path)
            if target is None or self.filter.kind(target) is not None:
                return  # not followed, or an alias of a media file that is its own job
            # Otherwise the link is the job: it brings in a file from a hidden folder.
        latest = self.ledger.latest_for_path(str(path))
        try:
            stat = path.stat()
        except OSError:
            if latest is not None and latest.state == JobState.SETTLING:
                self.ledger.drop_candidate(latest)  # gone before it settled: never a version
            return
        if not _is_regular(stat.st_mode):
            return  # a directory named like a media file, a device, ...
        size, mtime_ns = version_of(stat)
        if latest is not None and latest.version == (size, mtime_ns):
            return  # the version the ledger knows
        if latest is not None and latest.state == JobState.SETTLING:
            self.ledger.update(latest, size=size, mtime_ns=mtime_ns, settle_since=time.time())
        elif (
            latest is not None
            and latest.state in (JobState.QUEUED, JobState.HELD)
            and latest.upload_started_at is None
        ):
            # Changed before anything was sent: the same job settles again on the new bytes.
            self.ledger.move(
                latest,
                JobState.SETTLING,
                "file changed before upload",
                size=size,
                mtime_ns=mtime_ns,
                sha256=None,
                settle_since=time.time(),
            )
        elif latest is not None and latest.state in (
            JobState.UPLOADING,
            JobState.QUEUED,
            JobState.HELD,
        ):
            return  # an attempt began: the uploader reconciles, then sees the new bytes
        else:
            job = self.ledger.add_settling(str(path), kind.value, size, mtime_ns)
            with logs.job_context(job):
                log.info("found file", size=size)

    def _link_target(self, link: Path) -> Path | None:
        """Where a symlink leads, if that is inside the watch folder; else None (reported)."""
        try:
            target = link.resolve(strict=True)
        except (OSError, RuntimeError):
            target = None  # dangling, or a loop
        root = self.settings.watch_dir
        if target is not None and target.is_relative_to(root) and target != link:
            return target
        if str(link) not in self._reported_links:
            self._reported_links.add(str(link))
            log.warning(
                "symlink not followed: it leads outside the watch folder, nowhere, or in a loop",
                path=str(link),
                target=str(target) if target else None,
            )
        return None

    # --- settling -----------------------------------------------------------------------

    def _settle(self) -> None:
        assert self.ledger is not None
        for job in self.ledger.jobs_in(JobState.SETTLING):
            with logs.job_context(job):
                self._settle_one(job)

    def _settle_one(self, job: Job) -> None:
        assert self.ledger is not None
        path = Path(job.path)
        try:
            stat = path.stat()
        except FileNotFoundError:
            log.info("file went away before it settled")
            self.ledger.drop_candidate(job)
            return
        except OSError as exc:
            self._hold_unreadable(job, exc)
            return
        if version_of(stat) != job.version:
            self.ledger.update(
                job, size=stat.st_size, mtime_ns=stat.st_mtime_ns, settle_since=time.time()
            )
            return
        if time.time() - (job.settle_since or 0) < self.settings.ingest.settle_seconds:
            return
        try:
            digest = sha256_of(path, self.stop)
            after = path.stat()
        except FileNotFoundError:
            self.ledger.drop_candidate(job)
            return
        except OSError as exc:
            self._hold_unreadable(job, exc)
            return
        if version_of(after) != job.version:
            return  # changed while being hashed: the next tick sees it
        if job.size == 0:
            self.ledger.settle(job, digest, failure="empty file (0 bytes)")
            log.warning("empty file: nothing to upload")
            return
        queued = self.ledger.settle(job, digest)
        if queued is None:
            log.info("content unchanged since it was last seen; nothing to do")
        else:
            log.info("queued", sha256=digest, size=job.size)

    def _hold_unreadable(self, job: Job, error: OSError) -> None:
        assert self.ledger is not None
        problem = unreadable(error)
        log.warning("cannot read file", reason=problem.reason)
        self.ledger.move(job, JobState.HELD, problem.reason, reason=str(problem))

    def _recheck_held(self) -> None:
        """Held because unreadable: once it can be read, it settles again."""
        assert self.ledger is not None
        for job in self.ledger.jobs_in(JobState.HELD):
            if job.sha256 is not None:
                continue  # held for another reason; not the watcher's
            path = Path(job.path)
            if not path.exists():
                continue
            if os.access(path, os.R_OK):
                with logs.job_context(job):
                    log.info("file is readable again")
                    self.ledger.move(
                        job, JobState.SETTLING, "file readable again", settle_since=time.time()
                    )


def unreadable(error: OSError) -> JobInputError:
    return JobInputError(
        f"cannot read the file: {error.strerror or error}",
        "give the ingestd user read permission (for example: chmod o+r FILE); "
        "the job goes on by itself once it can read the file",
    )


def _version(path: Path) -> tuple[int, int] | None:
    try:
        return version_of(path.stat())
    except OSError:
        return None


def _is_regular(mode: int) -> bool:
    return stat_module.S_ISREG(mode)
