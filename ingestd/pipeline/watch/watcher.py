"""Detect and settle: find media files in the watch folder and queue each complete version.

Kernel events are only hints (see NOTES.md): they say "look at this path". What a path holds
is decided by looking at it: its size and mtime against the ledger's newest job for it.
A new version becomes a `settling` job. It is complete (SPEC, pipeline step 2) once its size
and mtime have not changed for `ingest.settle_seconds`, no process has it open for writing
(writers.py: one /proc pass for all the quiet files, then a read lease on the descriptor it is
read from), and its container is whole (containers.py). Then it is hashed, and its content
decides whether it is new (queued) or a version the ledger already knows (a restart, a rescan,
a touch: nothing to do). A new version whose first bytes are exactly a done version's proves
that upload partial: the finisher deletes that media once the new one is done.

The watcher owns `settling` and only that: a change to a file whose job is queued or held is
seen by that job's owner (the uploader checks the file before sending, a held job's recheck
looks at it), and a change to a file whose job is further on is a new version, a new job.

The watch is started before the start-up scan, so nothing that arrives in between is missed;
the tree is rescanned every `ingest.rescan_seconds` for what the kernel dropped; an observer
thread that died is noticed by `check_observer` and replaced.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import BinaryIO, NamedTuple

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
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserver

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core import liveness
from ingestd.core.clock import FUTURE_MARGIN_SECONDS, Clock
from ingestd.core.errors import Cancelled, IncompleteContainer, JobInputError, StillWritten
from ingestd.core.jobs import Job, JobKind, JobState, file_identity, version_of
from ingestd.core.outcomes import Stage
from ingestd.folder.files import display, lstat, open_regular, problem
from ingestd.folder.sidecars import DEFAULTS_NAME, is_receipt, own_sidecar_names
from ingestd.ledger import Ledger, SettledFile, StaleTransition, arrivals
from ingestd.pipeline import resync
from ingestd.pipeline.loop import Guard, idle_wait
from ingestd.pipeline.watch import containers
from ingestd.pipeline.watch.writers import WriterCheck

log = logs.get("ingestd.watcher")

HASH_CHUNK = 1024 * 1024
URL_EXTENSION = "url"
# Files hashed at once (a burst of small files, or big ones on a fast disk).
HASH_THREADS = 4
# New candidates, and settled files, written per transaction; settling jobs looked at per page.
FOUND_PER_TRANSACTION = 1000
SETTLE_PAGE = 1000


class Examined(NamedTuple):
    """A complete file, read: its sha256, its identity (device, inode, ctime), and the sha256
    of its first N bytes for each length N asked (a done version's size: was it partial?)."""

    sha256: str
    file: tuple[int, int, int]
    prefixes: dict[int, str]


# What reading a settled file gave: None when it changed while it was read.
Hashed = Examined | None

# Names of files that may be sidecars of a done media (re-sync after done).

# File systems where inotify does not see what other machines write: `auto` polls there.
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "afs", "lustre", "gpfs"}
)


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
        if any(self.ignored(part) for part in relative.parts) or is_receipt(path.name):
            return None
        extension = path.suffix.lower().lstrip(".")
        if extension == URL_EXTENSION:
            return JobKind.URL
        return JobKind.FILE if extension in self.extensions else None

    def ignored(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.ignore)

    def walk(self, top: Path | None = None) -> Iterator[Path]:
        """Every candidate path under `top` (the root); ignored folders not entered.

        os.fwalk opens each folder relative to its parent's descriptor and checks it is the
        folder it listed, so a folder swapped for a link while the scan runs is not entered.
        """
        for folder, dirs, files, _fd in os.fwalk(top or self.root, onerror=_log_walk_error):
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
    log.warning("cannot scan folder", folder=display(error.filename), error=error.strerror)


# --- which observer ------------------------------------------------------------------------------


def _unescape_mount_point(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
    for code in ("040", "011", "012", "134"):
        text = text.replace("\\" + code, chr(int(code, 8)))
    return text


def filesystem_of(folder: Path, mountinfo: str) -> tuple[str, str] | None:
    """(file system type, mount point) of the mount holding `folder`, from mountinfo's text."""
    best: tuple[str, str] | None = None
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or not tail:
            continue
        mount_point = _unescape_mount_point(fields[4])
        if folder.is_relative_to(mount_point) and (
            best is None or len(mount_point) >= len(best[1])
        ):
            best = (tail[0], mount_point)
    return best


def is_network_filesystem(fstype: str) -> bool:
    return fstype in NETWORK_FILESYSTEMS or fstype == "fuse" or fstype.startswith("fuse.")


def choose_observer(mode: str, folder: Path, mountinfo: str | None = None) -> tuple[str, str]:
    """("inotify" or "polling", why): `ingest.observer` and, for auto, the folder's mount."""
    if mode == "native":
        return "inotify", 'ingest.observer = "native"'
    if mode == "polling":
        return "polling", 'ingest.observer = "polling"'
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text(errors="replace")
        except OSError:
            return "inotify", "auto: /proc/self/mountinfo cannot be read, so inotify"
    found = filesystem_of(folder, mountinfo)
    if found is None:
        return "inotify", "auto: the folder's file system is unknown, so inotify"
    fstype, mount_point = found
    where = f"{display(folder)} is on {fstype} (mounted at {display(mount_point)})"
    if is_network_filesystem(fstype):
        return "polling", f"auto: {where}, where inotify misses other machines' writes"
    return "inotify", f"auto: {where}"


# --- events ----------------------------------------------------------------------------------


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
                if raw:
                    self._push(os.fsdecode(raw), event.is_directory)
        except Exception:
            log.exception("watch event handler failed")


class Watcher:
    """Owns the observer and the settling jobs. Runs in its own thread (`run`)."""

    def __init__(
        self,
        settings: Settings,
        ledger_path: Path,
        stop: threading.Event,
        *,
        on_change: Callable[[Path], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.ledger_path = ledger_path
        self.stop = stop
        self.guard = Guard(Stage.SETTLE, settings, clock)
        self.clock = self.guard.clock
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
        self._wake = arrivals(JobState.SETTLING)  # an event, a new candidate, or the stop
        self._found: dict[str, tuple[str, str, int, int]] = {}  # new candidates, to record
        self._pool: ThreadPoolExecutor | None = None  # hashes several files at once
        self.writers = WriterCheck()  # who still has a quiet file open for writing
        self.ledger: Ledger | None = None

    # --- the thread ---------------------------------------------------------------------

    def run(self) -> None:
        self.ledger = Ledger(self.ledger_path, clock=self.clock)
        try:
            self.check_observer()  # starts the observer, then scans (or waits for the folder)
            self.scanned.set()
            while not self.stop.is_set():
                liveness.beat()
                self._wake.clear()  # before looking: an event after the look wakes the wait
                self.check_observer()
                busy = self.tick()
                self._wake.wait(
                    self._tick() if busy else idle_wait(self._next_rescan, self.clock.now())
                )
        except Cancelled:
            pass
        finally:
            self.stop_observer()
            if self._pool is not None:
                # not waiting: a read stuck on a dead share must not hold the stop up
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            self.ledger.close()

    def tick(self) -> bool:
        """One pass: the paths events pointed at, the settling jobs, the rescan when due.
        True while files are settling (they are looked at again every tick)."""
        self._drain_hints()
        busy = self._settle()
        if self.clock.now() >= self._next_rescan:
            self.scan()
        return busy or bool(self._after_upload)

    def _tick(self) -> float:
        """How often settling files are looked at: often enough to notice the quiet time."""
        return min(0.25, max(0.05, self.settings.ingest.settle_seconds / 4))

    def reload(self) -> None:
        """New extensions or ignore patterns (config reload): look at the tree again."""
        self.filter = MediaFilter(self.settings)
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
        folder = self.settings.watch_dir
        observer: BaseObserver = (
            PollingObserver(timeout=1.0) if kind == "polling" else (InotifyObserver())
        )
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
        if kind == "polling":
            events.append(FileModifiedEvent)  # polling reports no close events
        observer.schedule(_Hints(self._push), str(folder), recursive=True, event_filter=events)
        observer.daemon = True
        observer.start()
        self.observer = observer

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
            below = self.ledger.synced_below(str(folder))
            if DEFAULTS_NAME in names:
                marked += [job.id for job in below]
                continue
            for job in below:
                media = Path(job.path)
                if media.parent == folder and own_sidecar_names(media.name, sorted(names)):
                    marked.append(job.id)
        if marked:
            now = self.clock.now()
            self.ledger.mark_resync(marked, now + self.settings.ingest.settle_seconds, now)

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
        known = self.ledger.known_versions()
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
            self.ledger.mark_resync(marked, now, now)

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
            for job in self.ledger.add_settling_many(
                rows[start : start + FOUND_PER_TRANSACTION], self.clock.now()
            ):
                with logs.job_context(job):
                    log.debug("found file", size=job.size)

    def _consider(self, path: Path) -> None:
        assert self.ledger is not None
        kind = self.filter.kind(path)
        if kind is None:
            return
        latest = self.ledger.latest_for_path(str(path))
        entry = lstat(path)
        if entry is None:
            if latest is not None and latest.state == JobState.SETTLING:
                self.ledger.drop_candidate(latest)  # gone before it settled: never a version
            return
        if stat.S_ISDIR(entry.st_mode):
            return  # a folder named like a media file is a folder
        size, mtime_ns = version_of(entry)
        if latest is not None and latest.version == (size, mtime_ns):
            return  # the version the ledger knows
        if latest is not None and latest.state == JobState.SETTLING:
            _settle_anew(self.ledger, latest, entry, self.clock.now())
        elif latest is not None and latest.state == JobState.UPLOADING:
            # The upload reads the file it hashed, whatever is at the path now; what is there
            # now is looked at again once the upload is over.
            self._after_upload.add(str(path))
        elif latest is not None and _sees_changes_itself(latest):
            return
        else:
            self._found[str(path)] = (str(path), kind.value, size, mtime_ns)

    # --- settling -----------------------------------------------------------------------

    def _settle(self) -> bool:
        """Look at every settling job; those that stayed still long enough and that no process
        is writing are read (several at a time, in the pool): complete ones are queued
        together. True when some are left settling."""
        assert self.ledger is not None
        if self._folder_missing:
            return False  # nothing can settle in a folder that is not there
        after, any_settling = 0, False
        while page := self.ledger.jobs_in(JobState.SETTLING, SETTLE_PAGE, after_id=after):
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
            ledger.drop_candidate(job)
        elif version_of(entry) != job.version or _begins_in_the_future(job, now):
            _settle_anew(ledger, job, entry, now)
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
            for done in self.ledger.done_versions(job.path)
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
                self.ledger.drop_candidate(job)
            elif isinstance(outcome, Exception):
                with logs.job_context(job):
                    self.guard.outcome(self.ledger, job, outcome)
            elif outcome is not None:  # None: changed while it was read; the next pass sees
                failure = "empty file (0 bytes)" if job.size == 0 else None
                proven = _proven_partial(outcome, partials)
                ready.append(SettledFile(job, outcome.sha256, outcome.file, failure, proven))
        for start in range(0, len(ready), FOUND_PER_TRANSACTION):
            chunk = ready[start : start + FOUND_PER_TRANSACTION]
            settled = self.ledger.settle_many(chunk)
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


def _settle_anew(ledger: Ledger, job: Job, entry: os.stat_result, now: float) -> None:
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
