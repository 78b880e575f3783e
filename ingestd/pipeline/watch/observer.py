"""The file watcher's observer: which one (`ingest.observer`: inotify, or polling where inotify
cannot see other machines' writes), and the events it gives, turned into hints.

Kernel events are only hints (see NOTES.md): they say "look at this path". The handler never
raises (an exception kills watchdog's observer thread silently); the watcher notices an
observer that died anyway and replaces it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserver

from ingestd import logs
from ingestd.core.names import display

log = logs.get("ingestd.watcher")

# File systems where inotify does not see what other machines write: `auto` polls there.
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "afs", "lustre", "gpfs"}
)


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


class Hints(FileSystemEventHandler):
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


def start_observer(kind: str, folder: Path, push: Callable[[str, bool], None]) -> BaseObserver:
    """A started observer ("inotify" or "polling") on `folder`, recursive, giving hints."""
    observer: BaseObserver = (
        PollingObserver(timeout=1.0) if kind == "polling" else InotifyObserver()
    )
    # No modify events: one per write is a storm, and settling files are looked at on every
    # tick anyway. (watchdog 7.1 asks inotify for IN_ATTRIB only with modify events, so a bare
    # `touch` shows up at the next rescan: it changes no bytes, so nothing waits.)
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
    observer.schedule(Hints(push), str(folder), recursive=True, event_filter=events)
    observer.daemon = True
    observer.start()
    return observer
