"""Open writers: does any process on this machine still have a settling file open for writing?

A stalled `cp`, `rsync` or Samba copy leaves the file quiet but open: the quiet time alone
would take half a file for a whole one. Two ways to see a writer (NOTES.md, "Open writers"):

- `/proc`: one pass over every process's descriptors (`/proc/<pid>/fd`) per settle round,
  for all the files that are quiet at once, matching (device, inode); a match whose
  `/proc/<pid>/fdinfo/<fd>` flags say write access is a writer, named in the job's reason.
  It shows the processes of the same user (all of them for root); other users' descriptors
  need ptrace rights, and `ProtectProc=invisible` hides their processes altogether.
- A read lease (`F_SETLEASE`, `F_RDLCK`) on the descriptor the file is hashed from fails with
  EAGAIN while anyone has it open for writing, whoever they are. It needs the file's owner as
  the caller or `CAP_LEASE` (the unit grants it), and a file system that supports leases (local
  ones; not NFS or SMB mounts, whose remote writers hold no local descriptor anyway).

Where neither can tell, the daemon says so once and relies on the quiet time and the container
check. A lease is held for two system calls; a writer opening the file in between waits that
long, and this process gets SIGIO, which the daemon ignores (`allow_leases`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from ingestd import logs
from ingestd.core.names import display

log = logs.get("ingestd.writers")

FileId = tuple[int, int]  # (st_dev, st_ino)
PROC = Path("/proc")
_FDINFO_LIMIT = 4096  # the flags line is near the top; some descriptors list much more
_WRITE_ACCESS = (os.O_WRONLY, os.O_RDWR)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass(frozen=True)
class Writer:
    """A process that has a file open for writing."""

    pid: int
    command: str  # its /proc comm, escaped for one line

    def __str__(self) -> str:
        return f"{self.command} (pid {self.pid})"


@dataclass
class ProcPass:
    """What one pass over /proc found."""

    writers: dict[FileId, Writer] = field(default_factory=dict)
    processes: int = 0  # processes whose descriptors were looked at
    unreadable: int = 0  # processes whose descriptors could not be read (other users')


def find_writers(
    files: Collection[FileId], proc: Path = PROC, under: Path | None = None
) -> ProcPass:
    """One pass over every visible process's descriptors: which of `files` are open for
    writing, and by whom. This process is left out (it only ever reads them).

    With `under` (the watch folder), only descriptors whose link names a path below it are
    looked at further: reading a link never touches the file it names, while a stat would
    wait on whatever file system holds it (a descriptor on a dead NFS server would hang the
    pass). A process that sees the folder under another path (another mount namespace) is
    then left to the read lease."""
    found = ProcPass()
    if not files:
        return found
    wanted = files if isinstance(files, set | frozenset) else set(files)
    own = str(os.getpid())
    prefixes = _prefixes(under) if under is not None else None
    try:
        proc_fd = os.open(proc, _DIR_FLAGS)
    except OSError:
        return found
    try:
        for pid in os.listdir(proc_fd):
            if pid.isdigit() and pid != own:
                _look_at_process(proc_fd, pid, wanted, found, prefixes)
    finally:
        os.close(proc_fd)
    return found


def _prefixes(folder: Path) -> tuple[str, ...]:
    """How links in /proc name files below `folder`: as configured, and resolved."""
    named = {str(folder), os.path.realpath(folder)}
    return tuple(name.rstrip("/") + "/" for name in named)


def _look_at_process(
    proc_fd: int,
    pid: str,
    wanted: Collection[FileId],
    found: ProcPass,
    prefixes: tuple[str, ...] | None,
) -> None:
    """The wanted files among one process's descriptors, then (for those only) whether it
    may write them. Paths are opened relative to /proc's descriptor: the pass is mostly
    system calls, and shorter lookups make it quicker."""
    try:
        fd_dir = os.open(f"{pid}/fd", _DIR_FLAGS, dir_fd=proc_fd)
    except PermissionError:
        found.unreadable += 1
        return
    except OSError:
        return  # it exited meanwhile
    found.processes += 1
    matches: list[tuple[FileId, str]] = []
    try:
        for fd in os.listdir(fd_dir):
            try:
                if prefixes is not None and not os.readlink(fd, dir_fd=fd_dir).startswith(prefixes):
                    continue
                target = os.stat(fd, dir_fd=fd_dir)  # follows the link to the open file
            except OSError:
                continue  # closed meanwhile, or an anonymous object
            key = (target.st_dev, target.st_ino)
            if key in wanted and key not in found.writers:
                matches.append((key, fd))
    except OSError:
        return
    finally:
        os.close(fd_dir)
    if matches:
        _writers_among(proc_fd, pid, matches, found)


def _writers_among(
    proc_fd: int, pid: str, matches: list[tuple[FileId, str]], found: ProcPass
) -> None:
    command = None
    for key, fd in matches:
        if _writes(proc_fd, f"{pid}/fdinfo/{fd}"):
            command = command or _command(proc_fd, pid)
            found.writers[key] = Writer(int(pid), command)


def _writes(proc_fd: int, fdinfo: str) -> bool:
    """Whether a descriptor has write access: its fdinfo's `flags` line (octal)."""
    text = _read(proc_fd, fdinfo, _FDINFO_LIMIT)
    for line in text.splitlines():
        if line.startswith(b"flags:"):
            try:
                flags = int(line.split(b":", 1)[1].strip(), 8)
            except ValueError:
                return False
            return flags & os.O_ACCMODE in _WRITE_ACCESS
    return False


def _command(proc_fd: int, pid: str) -> str:
    name = _read(proc_fd, f"{pid}/comm", 64).strip()
    return display(os.fsdecode(name)) if name else "a process"


def _read(proc_fd: int, relative: str, limit: int) -> bytes:
    try:
        fd = os.open(relative, os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd)
    except OSError:
        return b""
    try:
        return os.read(fd, limit)
    except OSError:
        return b""
    finally:
        os.close(fd)


# --- read leases ------------------------------------------------------------------------------


def allow_leases() -> None:
    """Ignore SIGIO, which the kernel sends a lease holder when a writer opens the file while
    the lease is held (its default action ends the process). Main thread only, at start-up."""
    signal.signal(signal.SIGIO, signal.SIG_IGN)


def leases_allowed() -> bool:
    return signal.getsignal(signal.SIGIO) == signal.SIG_IGN


class LeaseUnavailable(Exception):
    """A read lease cannot tell for this file; `why` says why, in words for the log."""

    def __init__(self, why: str, hint: str) -> None:
        super().__init__(why)
        self.why = why
        self.hint = hint


def open_for_writing(fd: int) -> bool:
    """Whether any process has the file open at `fd` (opened read-only) for writing, asked
    with a read lease taken and released at once. Raises LeaseUnavailable when it cannot tell."""
    if not leases_allowed():
        raise LeaseUnavailable(
            "read leases are not enabled in this process", "run the daemon (ingestd run)"
        )
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            return True
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise LeaseUnavailable(
                "a read lease on another user's file needs CAP_LEASE, and /proc does not "
                "show other users' open files",
                "give the service CAP_LEASE (AmbientCapabilities=CAP_LEASE, as the shipped "
                "unit does), or run it as the user who writes the files",
            ) from None
        raise LeaseUnavailable(
            f"the file system does not support read leases ({exc.strerror})",
            "on a network share, other machines' writers are invisible here anyway: "
            "a longer ingest.settle_seconds helps",
        ) from None
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return False


class WriterCheck:
    """Both ways together, with the one-time notice when a way cannot be used."""

    def __init__(self, proc: Path = PROC) -> None:
        self.proc = proc
        self._said: set[str] = set()
        self._lock = threading.Lock()  # leases are asked from the hashing threads

    def processes(self, files: Collection[FileId], under: Path) -> dict[FileId, Writer]:
        """The /proc pass for all of `files` (below the folder `under`) at once."""
        if files and not os.access(self.proc / "self" / "fd", os.R_OK):
            self._say_once(
                "proc",
                f"cannot read {self.proc}: open writers are seen only through read leases",
                "mount /proc (and keep ProcSubset=pid or all in the unit)",
            )
        return find_writers(files, self.proc, under).writers

    def lease_says_written(self, fd: int, name: str) -> bool:
        """The read lease's answer for one file; False (with the notice, once) when it
        cannot tell."""
        try:
            return open_for_writing(fd)
        except LeaseUnavailable as unavailable:
            self._say_once(
                unavailable.why,
                f"cannot tell whether other processes are still writing files such as "
                f"{name}: {unavailable.why}; relying on the quiet time and the container check",
                unavailable.hint,
            )
            return False

    def _say_once(self, key: str, message: str, hint: str) -> None:
        with self._lock:
            if key in self._said:
                return
            self._said.add(key)
        log.warning(message, hint=hint)
