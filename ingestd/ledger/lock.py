"""Who may write the ledger, and whether a file is one.

`LedgerLock` is an exclusive lock beside the ledger: one daemon per ledger; the lock file also
says who holds it and since when, for `status`. `check_ledger_file` looks at a ledger file
before the daemon opens any connection to it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from ingestd.core.errors import LedgerBusy, LedgerError

SQLITE_MAGIC = b"SQLite format 3\x00"


def check_ledger_file(path: Path) -> None:
    """Before the daemon writes anything: the ledger's folder exists or can be made, and a
    ledger already there is a SQLite database. LedgerError naming the path otherwise.

    Only before this process opens any connection to the ledger: closing any descriptor of a
    file drops all of the process's POSIX locks on it, SQLite's included.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return  # a new ledger
    except OSError as exc:
        raise LedgerError(
            f"cannot use the ledger {path}: {exc.strerror}",
            "set ledger to a path in a folder the ingestd user may write to",
        ) from None
    if header and header != SQLITE_MAGIC:
        raise LedgerError(
            f"the ledger {path} is not a SQLite database",
            "move it away (ingestd starts a new ledger) or point ledger at the right file",
        )


class LedgerLock:
    """An exclusive lock beside the ledger: one daemon per ledger.

    The lock file also says who holds it and since when, for `status`.
    """

    def __init__(self, ledger_path: Path) -> None:
        self.path = Path(str(ledger_path) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder()
            who = f" (pid {holder['pid']})" if holder else ""
            raise LedgerBusy(
                f"another ingestd daemon is already running on this ledger{who}",
                f"stop it first, or give this one its own ledger; lock file {self.path}",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": time.time()}).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def holder(self) -> dict[str, Any] | None:
        """Who runs the daemon, or None when no daemon holds the lock."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 4096).decode(errors="replace")
                try:
                    return dict(json.loads(text))
                except ValueError:
                    return {"pid": None, "since": None}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
