"""The ledger's connection: opening it (read-write, or read-only without changing a byte),
write transactions that take the lock up front and are retried whole, and how values and
rows cross between Python and SQLite.

One `Db` per thread (a `sqlite3` connection belongs to the thread that opened it). Every part
of the ledger (ledger/*.py) writes through `Db.write()` and its methods through
`retried_write`: a locked ledger (another process) or a full disk delays a write for up to
two minutes, a whole transaction at a time, and never half-applies it.
"""

from __future__ import annotations

import functools
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from ingestd import logs
from ingestd.core.clock import Clock
from ingestd.core.errors import LedgerError
from ingestd.core.jobs import Job, JobState
from ingestd.ledger.lock import LedgerLock
from ingestd.ledger.schema import SCHEMA_VERSION, migrate, schema_version
from ingestd.ledger.wakeups import Wakeups

if TYPE_CHECKING:
    import sqlite_utils
    import tenacity

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 15.0
# How long a write keeps trying while the ledger is locked by another process or its disk is
# full, before the error reaches the caller (whose stage is then restarted).
WRITE_PATIENCE_SECONDS = 120.0
# SQLite's words for conditions that pass: another writer, a full disk, a failing write.
_PASSING = ("locked", "busy", "disk is full", "disk i/o error")


# --- values -------------------------------------------------------------------------------------


def path_columns(path: str) -> tuple[str, bytes | None]:
    """(path, path_bytes): the text as it is when it is UTF-8, else escapes plus the bytes."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        exact = os.fsencode(path)
        return exact.decode("utf-8", "backslashreplace"), exact
    return path, None


def path_of(text: str, exact: bytes | None) -> str:
    """A path from its two columns: the exact bytes when they were kept."""
    return os.fsdecode(exact) if exact is not None else text


def storable(value: Any) -> Any:
    """Text the ledger can store: undecodable bytes from file names become escapes."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")
    return value


def prose(value: str | None) -> str | None:
    """Words for people as the ledger keeps them: storable, without token or URL secrets."""
    return None if value is None else logs.redact(storable(value))


# Columns of words for people (why a job waits, its last error): redacted when written.
_PROSE = frozenset({"reason", "error"})

# Every query of jobs selects these columns, in the order of Job's fields, with path_bytes
# last: a row becomes a Job without a dict in between.
JOB_COLUMNS = ", ".join([*Job._fields, "path_bytes"])
_STATE = Job._fields.index("state")
_PATH = Job._fields.index("path")
_STATES = {state.value: state for state in JobState}


def to_job(row: Any) -> Job:
    values = list(row)
    exact = values.pop()  # path_bytes: the exact name, when it is not UTF-8
    values[_STATE] = _STATES[values[_STATE]]
    if exact is not None:
        values[_PATH] = os.fsdecode(exact)
    return Job._make(values)


# --- retried writes -----------------------------------------------------------------------------


def _passing(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and any(
        words in str(error).lower() for words in _PASSING
    )


def _log_wait(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logs.get("ingestd.ledger").warning(
        "ledger write failed; retrying", error=str(error), attempt=state.attempt_number
    )


def retried_write(method: Callable[..., T]) -> Callable[..., T]:
    """Every public write goes through this: a whole transaction is retried (each attempt
    rolled back first), so a locked or full ledger delays the daemon but never half-applies a
    change. tenacity is imported at the first write: commands that only read never pay for it."""

    @functools.wraps(method)
    def write(*args: Any, **kwargs: Any) -> T:
        return _write_retrying()(method, *args, **kwargs)

    return write


def _write_retrying() -> tenacity.Retrying:
    import tenacity

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(_passing),
        wait=tenacity.wait_exponential_jitter(multiplier=0.05, max=5.0, jitter=0.05),
        stop=tenacity.stop_after_delay(WRITE_PATIENCE_SECONDS),
        before_sleep=_log_wait,
        reraise=True,
    )


# --- the connection -----------------------------------------------------------------------------


class Db:
    """One thread's connection to the ledger, and what every part of it writes through."""

    def __init__(
        self,
        path: Path,
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
        *,
        read_only: bool = False,
        clock: Clock | None = None,
        wakeups: Wakeups | None = None,
    ) -> None:
        self.path = Path(path)
        self.clock = clock if clock is not None else Clock()
        self.wakeups = wakeups if wakeups is not None else Wakeups()
        self.entered: set[JobState] = set()  # states jobs entered in the write under way
        self._copy: tempfile.TemporaryDirectory[str] | None = None
        if read_only:
            self._open_read_only(busy_timeout)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connect(str(self.path), busy_timeout)
            self.conn.execute("PRAGMA user_version").fetchone()  # a file that is not a database
        except (OSError, sqlite3.DatabaseError) as exc:
            raise LedgerError(f"cannot use the ledger {self.path}: {exc}") from None
        self.conn.execute("PRAGMA foreign_keys = ON")
        # FULL: a commit survives power loss too; the ledger writes little, so it costs nothing.
        self.conn.execute("PRAGMA synchronous = FULL")
        self._prepare()

    @retried_write
    def _prepare(self) -> None:
        """WAL mode and the schema; switching to WAL may find the file busy for a moment."""
        if self.sqlite_utils.journal_mode != "wal":
            self.sqlite_utils.enable_wal()
        if self._version() != SCHEMA_VERSION:
            with self.write():  # the version is read again under the lock: one migrator wins
                migrate(self.conn)

    def _connect(self, target: str, busy_timeout: float, uri: bool = False) -> None:
        self.conn = sqlite3.connect(target, uri=uri, timeout=busy_timeout)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")

    @functools.cached_property
    def sqlite_utils(self) -> sqlite_utils.Database:
        """The same connection through sqlite-utils: the writer's WAL setup, and tests and
        benchmarks that look at tables. Queries go to `conn` directly: `status` must start in
        milliseconds, and never imports it."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn, execute_plugins=False)

    def _open_read_only(self, busy_timeout: float) -> None:
        """For commands that only read (`status`, `check`): nothing is created or changed.

        Even a read-only connection makes a WAL database's -wal and -shm files when they are
        missing, and rewrites -shm when a crash left the -wal behind. So: with a daemon
        running, share its files (mode=ro); with none and no -wal (a clean stop), the database
        file alone is complete (immutable); with none but a -wal (a crash), read a private
        copy of the two files, which costs a copy but changes nothing.
        """
        if not self.path.is_file():
            raise LedgerError(
                f"no ledger at {self.path} yet", "the daemon creates it when it first starts"
            )
        target = self.path.absolute()
        if not os.path.exists(f"{self.path}-wal"):
            mode = "immutable=1"
        elif LedgerLock(self.path).holder() is not None:
            mode = "mode=ro"
        else:
            self._copy = tempfile.TemporaryDirectory(prefix="ingestd-status-")
            target = Path(self._copy.name) / "ledger.db"
            shutil.copyfile(self.path, target)
            shutil.copyfile(f"{self.path}-wal", f"{target}-wal")
            mode = "mode=rw"
        uri = f"file:{quote(str(target))}?{mode}"
        try:
            self._connect(uri, busy_timeout, uri=True)
            version = self._version()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from None
        if version != SCHEMA_VERSION:
            self.close()
            raise LedgerError(
                f"the ledger {self.path} is from another version of ingestd (schema {version}, "
                f"this one reads {SCHEMA_VERSION})",
                "start the daemon of this version once: it upgrades the ledger",
            )

    def _version(self) -> int:
        version = schema_version(self.conn)
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self.path} has schema {version}, newer than this ingestd "
                f"({SCHEMA_VERSION}): upgrade ingestd"
            )
        return version

    def close(self) -> None:
        self.conn.close()
        if self._copy is not None:
            self._copy.cleanup()

    # --- writing ----------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[None]:
        """A write transaction that takes the write lock up front (see NOTES: WAL upgrades).
        Once it is committed, the stages waiting for the states jobs entered are woken."""
        self.entered = set()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.wakeups.wake(*self.entered)

    def event(self, job_id: int, from_state: str | None, to_state: str, note: str | None) -> None:
        """A row of a job's history (inside a write)."""
        self.conn.execute(
            "INSERT INTO events (job_id, at, from_state, to_state, note) VALUES (?, ?, ?, ?, ?)",
            (job_id, self.clock.wall(), from_state, to_state, prose(note)),
        )

    def assignments(self, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """`SET` assignments of job columns and their parameters, with text made storable."""
        clause = ", ".join(f"{column} = :{column}" for column in values)
        return clause, {
            column: prose(value) if column in _PROSE else storable(value)
            for column, value in values.items()
        }

    # --- reading ----------------------------------------------------------------------------

    def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(sql, params)]

    def raw(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """Rows as they come (for to_job: no dict in between)."""
        return self.conn.execute(sql, params).fetchall()

    def row(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        found: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return found

    def one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        found = self.conn.execute(sql, params).fetchone()
        return dict(found) if found is not None else None

    def jobs(self, sql: str, params: Any = ()) -> list[Job]:
        return [to_job(r) for r in self.raw(sql, params)]
