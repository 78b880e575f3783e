"""The job ledger: SQLite in WAL mode, the only module that writes SQL.

Tables: `jobs` (one row per version of a media file), `events` (append-only, one row per state
change with its time and reason), `hold` (at most one row: the account-wide stop),
`sidecars` (what the finisher applied, with a digest of what it sent) and `projects` (a
folder's name -> the Wistia project its media go to).

A path is stored as text when it is valid UTF-8; otherwise `path` holds it with `\\xNN`
escapes (for people) and `path_bytes` its exact bytes (for finding the file again).

Every state change goes through `move()` (or one of the named operations built on it), which
checks the move against `jobs.TRANSITIONS`, updates the row only if it is still in the state the
caller saw (`WHERE id=? AND state=?`) and adds the event row, all in one `BEGIN IMMEDIATE`
transaction: a crash between any two lines leaves either the old state or the new one.

A `sqlite3` connection belongs to the thread that opened it: every thread opens its own Ledger.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import quote

from ingestd.core.clock import FUTURE_MARGIN_SECONDS, PLAUSIBLE_WAIT_SECONDS, Clock
from ingestd.core.errors import LedgerBusy, LedgerError
from ingestd.core.jobs import (
    TERMINAL,
    HoldRequest,
    InvalidTransition,
    Job,
    JobState,
    Move,
    StaleTransition,
    can_move,
)
from ingestd.redact import redact
from ingestd.telling.views import job_view

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
ACTIVE_STATES = tuple(s.value for s in JobState if s not in TERMINAL)
TERMINAL_STATES = tuple(s.value for s in TERMINAL)


@dataclass(frozen=True)
class Hold:
    """The account-wide stop: nothing is uploaded until a probe succeeds."""

    kind: str  # video_limit | auth
    reason: str
    since: float
    next_probe_at: float
    probe_interval: float


class SettledFile(NamedTuple):
    """A settling file found complete and hashed, for `settle_many`."""

    job: Job
    sha256: str
    file: tuple[int, int, int] | None = None  # device, inode, ctime of what was hashed
    failure: str | None = None  # it fails at once (an empty file)
    partial: Job | None = None  # a done job whose bytes are exactly a prefix of these


@dataclass(frozen=True)
class Event:
    id: int
    job_id: int
    at: float
    from_state: str | None
    to_state: str
    note: str | None


# --- schema -----------------------------------------------------------------------------------


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Statements one by one: sqlite3's executescript would commit the migration's transaction
    first, and a migration must be all or nothing, under the write lock."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def _migration_1(db: sqlite3.Connection) -> None:
    states = ", ".join(f"'{s.value}'" for s in JobState)
    _script(
        db,
        f"""
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT 'file' CHECK (kind IN ('file', 'url')),
            state TEXT NOT NULL CHECK (state IN ({states})),
            size INTEGER,
            mtime_ns INTEGER,
            sha256 TEXT,
            settle_since REAL,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            reason TEXT,
            next_attempt_at REAL,
            upload_started_at REAL,
            bytes_sent INTEGER,
            media_name TEXT,
            media_id INTEGER,
            hashed_id TEXT,
            processing_since REAL,
            next_poll_at REAL,
            poll_interval REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX jobs_by_path ON jobs (path, id);
        CREATE INDEX jobs_by_state ON jobs (state, next_attempt_at);
        CREATE INDEX jobs_by_hashed_id ON jobs (hashed_id) WHERE hashed_id IS NOT NULL;
        CREATE INDEX jobs_by_updated ON jobs (updated_at);
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            at REAL NOT NULL,
            from_state TEXT,
            to_state TEXT NOT NULL,
            note TEXT
        );
        CREATE INDEX events_by_job ON events (job_id, id);
        CREATE TABLE hold (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            kind TEXT NOT NULL,
            reason TEXT NOT NULL,
            since REAL NOT NULL,
            next_probe_at REAL NOT NULL,
            probe_interval REAL NOT NULL
        );
        CREATE TABLE sidecars (
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            digest TEXT NOT NULL,
            applied_at REAL NOT NULL,
            PRIMARY KEY (job_id, name)
        );
    """,
    )


def _migration_2(db: sqlite3.Connection) -> None:
    # `status` lists the newest finished jobs: read them newest-first per state, no sorting.
    _script(
        db,
        """
        DROP INDEX IF EXISTS jobs_by_updated;
        CREATE INDEX jobs_by_state_updated ON jobs (state, updated_at);
    """,
    )


def _migration_3(db: sqlite3.Connection) -> None:
    # File names are bytes: a name that is not UTF-8 is kept exactly (see _path_columns).
    _script(db, "ALTER TABLE jobs ADD COLUMN path_bytes BLOB")


def _migration_4(db: sqlite3.Connection) -> None:
    # The sha256 of the bytes an upload attempt began sending: reconciling by name is only
    # right for those same bytes (a touch keeps it; new content does not).
    _script(db, "ALTER TABLE jobs ADD COLUMN attempt_sha256 TEXT")


def _migration_5(db: sqlite3.Connection) -> None:
    # Device, inode and change time of the file that was hashed: the upload must read that
    # very file, unchanged (ctime cannot be set back by hand, as mtime can).
    _script(
        db,
        """ALTER TABLE jobs ADD COLUMN dev INTEGER;
           ALTER TABLE jobs ADD COLUMN ino INTEGER;
           ALTER TABLE jobs ADD COLUMN ctime_ns INTEGER;
           CREATE INDEX jobs_by_state_poll ON jobs (state, next_poll_at)""",
    )


def _migration_6(db: sqlite3.Connection) -> None:
    # Complete means complete: when a file's container was first found cut short, which done
    # job a later version proved partial (and was replaced by it), and a retried version whose
    # container a person vouched for.
    _script(
        db,
        """ALTER TABLE jobs ADD COLUMN incomplete_since REAL;
           ALTER TABLE jobs ADD COLUMN replaces INTEGER;
           ALTER TABLE jobs ADD COLUMN replaced_by INTEGER;
           ALTER TABLE jobs ADD COLUMN skip_container_check INTEGER NOT NULL DEFAULT 0""",
    )


def _migration_7(db: sqlite3.Connection) -> None:
    # Projects from folders (a folder's name -> the Wistia project it goes to), the project
    # each media went to (its thumbnail goes there too), and when a done job is due a re-sync.
    _script(
        db,
        """CREATE TABLE projects (
               name TEXT PRIMARY KEY,
               hashed_id TEXT NOT NULL,
               found_at REAL NOT NULL
           );
           ALTER TABLE jobs ADD COLUMN project_id TEXT;
           ALTER TABLE jobs ADD COLUMN resync_due_at REAL;
           CREATE INDEX jobs_resync_due ON jobs (resync_due_at) WHERE resync_due_at IS NOT NULL""",
    )


def _migration_8(db: sqlite3.Connection) -> None:
    # The outbox: a notification per receiver, written in the transaction that moved its job,
    # deleted once delivered. `job` is the job as `status --json` showed it then; `body` is
    # fixed at the first attempt, so every retry sends the very same bytes. `facts`: what the
    # daemon learned once that other processes show (the account's url, for the status page).
    _script(
        db,
        """CREATE TABLE notifications (
               id INTEGER PRIMARY KEY,
               uid TEXT NOT NULL,
               receiver TEXT NOT NULL,
               job_id INTEGER NOT NULL,
               event TEXT NOT NULL,
               at REAL NOT NULL,
               job TEXT NOT NULL,
               body TEXT,
               attempts INTEGER NOT NULL DEFAULT 0,
               next_attempt_at REAL NOT NULL,
               last_attempt_at REAL,
               last_error TEXT
           );
           CREATE INDEX notifications_due ON notifications (next_attempt_at);
           CREATE TABLE facts (
               name TEXT PRIMARY KEY,
               value TEXT NOT NULL
           )""",
    )


def _migration_10(db: sqlite3.Connection) -> None:
    # When a notification was queued, on the daemon's steady clock (clock.py): its age is
    # measured on it, so a step of the system clock neither drops nor keeps it. `at` stays
    # the wall time the receivers are told.
    _script(
        db,
        """ALTER TABLE notifications ADD COLUMN queued_at REAL;
           UPDATE notifications SET queued_at = at""",
    )


def _migration_9(db: sqlite3.Connection) -> None:
    # When the sidecars a done job's media has were last read from disk (wall time, like a
    # file's mtime): a sidecar changed after that moment has not reached the media.
    _script(db, "ALTER TABLE jobs ADD COLUMN sidecars_read_at REAL")


# Append only: the ledger's `PRAGMA user_version` is the number of migrations applied.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,
    _migration_7,
    _migration_8,
    _migration_9,
    _migration_10,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _path_columns(path: str) -> tuple[str, bytes | None]:
    """(path, path_bytes): the text as it is when it is UTF-8, else escapes plus the bytes."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        exact = os.fsencode(path)
        return exact.decode("utf-8", "backslashreplace"), exact
    return path, None


# Every query of jobs selects these columns, in the order of Job's fields, with path_bytes
# last: a row becomes a Job without a dict in between.
JOB_COLUMNS = ", ".join([*Job._fields, "path_bytes"])
_STATE = Job._fields.index("state")
_PATH = Job._fields.index("path")
_STATES = {state.value: state for state in JobState}


def _job(row: Any) -> Job:
    values = list(row)
    exact = values.pop()  # path_bytes: the exact name, when it is not UTF-8
    values[_STATE] = _STATES[values[_STATE]]
    if exact is not None:
        values[_PATH] = os.fsdecode(exact)
    return Job._make(values)


# Columns of words for people (why a job waits, its last error): redacted when written.
_PROSE = frozenset({"reason", "error"})


def _storable(value: Any) -> Any:
    """Text the ledger can store: undecodable bytes from file names become escapes."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")
    return value


def _prose(value: str | None) -> str | None:
    """Words for people as the ledger keeps them: storable, without token or URL secrets."""
    return None if value is None else redact(_storable(value))


def _passing(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and any(
        words in str(error).lower() for words in _PASSING
    )


def _log_wait(state: tenacity.RetryCallState) -> None:
    from ingestd import logs  # only a write that waits logs: reads stay light

    error = state.outcome.exception() if state.outcome else None
    logs.get("ingestd.ledger").warning(
        "ledger write failed; retrying", error=str(error), attempt=state.attempt_number
    )


def _retried_write(method: Callable[..., T]) -> Callable[..., T]:
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


# --- wake-ups ----------------------------------------------------------------------------------

# A stage waits for a job to enter its state instead of asking the ledger again and again.
# Only this process's writes signal; a change from another process (`ingestd retry`) is seen at
# the stage's next look, which comes within its longest idle wait anyway.
_waiters: dict[JobState, set[threading.Event]] = {state: set() for state in JobState}
_waiters_lock = threading.Lock()


def arrivals(*states: JobState) -> threading.Event:
    """An event set whenever a job enters one of `states` in this process (one per waiting
    thread)."""
    event = threading.Event()
    with _waiters_lock:
        for state in states:
            _waiters[state].add(event)
    return event


@contextmanager
def arrivals_while(*states: JobState) -> Iterator[threading.Event]:
    """`arrivals(*states)` for one run of a loop, forgotten when it ends (a retired worker or
    a restarted stage leaves no event behind)."""
    event = arrivals(*states)
    try:
        yield event
    finally:
        with _waiters_lock:
            for state in states:
                _waiters[state].discard(event)


def wake(*states: JobState) -> None:
    """Wake the threads waiting for jobs in any of `states`."""
    with _waiters_lock:
        events = [e for state in states for e in _waiters[state]]
    for event in events:
        event.set()


def wake_all() -> None:
    """Wake every waiting stage (the daemon is stopping)."""
    wake(*JobState)


# The outbox (notifications.py delivers it). The daemon says which states' entries are
# notified and to which receivers; other processes (`ingestd retry`) write no notifications.
@dataclass(frozen=True)
class Outbox:
    events: frozenset[str] = frozenset()
    receivers: tuple[str, ...] = ()


_outbox = Outbox()
# A job held again this soon for the same problem was released by a recheck (at most a minute
# apart) and met it again: not a new notification.
HELD_AGAIN_SECONDS = 300.0


def configure_outbox(events: list[str], receivers: list[str]) -> None:
    global _outbox
    _outbox = Outbox(frozenset(events) if receivers else frozenset(), tuple(receivers))


class Notification(NamedTuple):
    id: int
    uid: str
    receiver: str
    job_id: int
    event: str
    at: float  # wall time: what receivers are told
    job: str
    body: str | None
    attempts: int
    queued_at: float  # steady time (clock.py): its age is measured on it


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


class Ledger:
    """One thread's connection to the ledger."""

    def __init__(
        self,
        path: Path,
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
        *,
        read_only: bool = False,
        clock: Clock | None = None,
    ) -> None:
        """`clock`: the process's clock (clock.py), which due times are written and read on;
        the daemon shares one among all its threads."""
        self.path = Path(path)
        self.clock = clock if clock is not None else Clock()
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

    @_retried_write
    def _prepare(self) -> None:
        """WAL mode and the schema; switching to WAL may find the file busy for a moment."""
        if self.db.journal_mode != "wal":
            self.db.enable_wal()
        self._migrate()

    def _connect(self, target: str, busy_timeout: float, uri: bool = False) -> None:
        self.conn = sqlite3.connect(target, uri=uri, timeout=busy_timeout)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")

    @functools.cached_property
    def db(self) -> sqlite_utils.Database:
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
        target, self._copy = self.path.absolute(), None
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

    def close(self) -> None:
        self.conn.close()
        if getattr(self, "_copy", None) is not None:
            self._copy.cleanup()

    # --- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[None]:
        """A write transaction that takes the write lock up front (see NOTES: WAL upgrades).
        Once it is committed, the stages waiting for the states jobs entered are woken."""
        self._entered: set[JobState] = set()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        wake(*self._entered)

    def _version(self) -> int:
        version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self.path} has schema {version}, newer than this ingestd "
                f"({SCHEMA_VERSION}): upgrade ingestd"
            )
        return version

    def _migrate(self) -> None:
        if self._version() == SCHEMA_VERSION:
            return
        with self._write():  # the version is read again under the lock: one migrator wins
            for number in range(self._version(), SCHEMA_VERSION):
                MIGRATIONS[number](self.conn)
                self.conn.execute(f"PRAGMA user_version = {number + 1}")

    def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(sql, params)]

    def _raw(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """Rows as they come (for _job: no dict in between)."""
        return self.conn.execute(sql, params).fetchall()

    def _row(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def _one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        row = self.conn.execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    def _event(self, job_id: int, from_state: str | None, to_state: str, note: str | None) -> None:
        self.conn.execute(
            "INSERT INTO events (job_id, at, from_state, to_state, note) VALUES (?, ?, ?, ?, ?)",
            (job_id, self.clock.wall(), from_state, to_state, _prose(note)),
        )

    def _set(self, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """`SET` assignments and their parameters, with text made storable."""
        assignments = ", ".join(f"{column} = :{column}" for column in values)
        return assignments, {
            column: _prose(value) if column in _PROSE else _storable(value)
            for column, value in values.items()
        }

    # --- moving jobs --------------------------------------------------------------------------

    def apply(self, job: Job, move: Move) -> Job:
        """Make what the outcome policy decided: the hold, then the move or the column changes."""
        if move.hold is not None:
            self.start_hold(move.hold)
        if move.to is not None:
            return self.move(job, move.to, move.note, **move.changes)
        if move.changes:
            return self.update(job, **move.changes)
        return job

    @_retried_write
    def move(self, job: Job, to_state: JobState, note: str | None = None, **changes: Any) -> Job:
        """Move `job` from the state it was read in to `to_state`, with column changes.

        `reason` (why the job waits) is cleared unless given: it describes the old state.
        """
        if not can_move(job.state, to_state):
            raise InvalidTransition(f"job {job.id}: {job.state} -> {to_state} is not allowed")
        with self._write():
            return self._move_in_transaction(job.id, job.state, to_state, note, changes)

    def _move_in_transaction(
        self,
        job_id: int,
        from_state: JobState,
        to_state: JobState,
        note: str | None,
        changes: dict[str, Any],
    ) -> Job:
        values = {
            "reason": None,
            **changes,
            "state": to_state.value,
            "updated_at": self.clock.wall(),
        }
        assignments, params = self._set(values)
        row = self._row(
            f"UPDATE jobs SET {assignments} WHERE id = :_id AND state = :_from "
            f"RETURNING {JOB_COLUMNS}",
            {**params, "_id": job_id, "_from": from_state.value},
        )
        if row is None:
            raise StaleTransition(f"job {job_id} is no longer {from_state}")
        self._event(job_id, from_state.value, to_state.value, note)
        self._entered.add(to_state)
        moved = _job(row)
        if to_state.value in _outbox.events and not self._held_again(moved, note):
            self._enqueue_notifications(moved)
        return moved

    def _held_again(self, job: Job, note: str | None) -> bool:
        """Held again for the very problem it was last held for (released by a recheck, then
        met again at once): told once, not at every recheck."""
        if job.state != JobState.HELD:
            return False
        row = self._row(
            """SELECT note, at FROM events WHERE job_id = ? AND to_state = 'held'
               ORDER BY id DESC LIMIT 1 OFFSET 1""",
            (job.id,),
        )
        recent = row is not None and self.clock.wall() - row[1] <= HELD_AGAIN_SECONDS
        return recent and row[0] == _prose(note)

    def _enqueue_notifications(self, job: Job) -> None:
        """One notification of `job` entering its state, per receiver, in the transaction
        that moved it: a crash cannot separate the two."""
        at, now = self.clock.wall(), self.clock.now()
        shown = json.dumps(job_view(job, now=at), ensure_ascii=False)
        uid = str(uuid.uuid4())
        for receiver in _outbox.receivers:
            self.conn.execute(
                """INSERT INTO notifications (uid, receiver, job_id, event, at, job,
                                              next_attempt_at, queued_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (uid, receiver, job.id, job.state.value, at, shown, now, now),
            )

    @_retried_write
    def update(self, job: Job, **changes: Any) -> Job:
        """Change columns of a job that stays in its state (no event)."""
        values = {**changes, "updated_at": self.clock.wall()}
        assignments, params = self._set(values)
        with self._write():
            row = self._row(
                f"UPDATE jobs SET {assignments} WHERE id = :_id AND state = :_state "
                f"RETURNING {JOB_COLUMNS}",
                {**params, "_id": job.id, "_state": job.state.value},
            )
        if row is None:
            raise StaleTransition(f"job {job.id} is no longer {job.state}")
        return _job(row)

    @_retried_write
    def record_progress(self, job_id: int, bytes_sent: int) -> None:
        """Upload progress for `status`; not an event, and harmless if the job moved on."""
        with self._write():
            self.conn.execute(
                "UPDATE jobs SET bytes_sent = ? WHERE id = ? AND state = 'uploading'",
                (bytes_sent, job_id),
            )

    # --- the watcher's operations -------------------------------------------------------------

    def add_settling(
        self, path: str, kind: str, size: int, mtime_ns: int, now: float | None = None
    ) -> Job:
        """A new candidate version of a file: it settles before it becomes a job to upload."""
        (job,) = self.add_settling_many([(path, kind, size, mtime_ns)], now)
        return job

    @_retried_write
    def add_settling_many(
        self, candidates: list[tuple[str, str, int, int]], now: float | None = None
    ) -> list[Job]:
        """New candidates (path, kind, size, mtime_ns), in one transaction: a burst of ten
        thousand files costs one commit, not ten thousand."""
        now = self.clock.now() if now is None else now
        wall = self.clock.wall()
        added = []
        with self._write():
            for path, kind, size, mtime_ns in candidates:
                text, exact = _path_columns(path)
                row = self._row(
                    f"""INSERT INTO jobs (path, path_bytes, kind, state, size, mtime_ns,
                                         settle_since, created_at, updated_at)
                       VALUES (?, ?, ?, 'settling', ?, ?, ?, ?, ?) RETURNING {JOB_COLUMNS}""",
                    (text, exact, kind, size, mtime_ns, now, wall, wall),
                )
                assert row is not None
                self._event(row["id"], None, JobState.SETTLING.value, "found")
                added.append(_job(row))
            if added:
                self._entered.add(JobState.SETTLING)
        return added

    def settle(
        self,
        job: Job,
        sha256: str,
        failure: str | None = None,
        file: tuple[int, int, int] | None = None,
    ) -> Job | None:
        """The settling file is complete and hashed: queue it, unless its content is known.

        Same path and same bytes as an earlier job (a restart, a touch) is the same version:
        the earlier job takes the new size and mtime, and the candidate row goes away. Returns
        the queued (or, given a `failure`, failed) job, or None when the content was known.
        `file` is the (device, inode, ctime) hashed: the upload checks it reads that file.
        """
        (settled,) = self.settle_many([SettledFile(job, sha256, file, failure)])
        if isinstance(settled, StaleTransition):
            raise settled
        return settled

    @_retried_write
    def settle_many(self, hashed: list[SettledFile]) -> list[Job | StaleTransition | None]:
        """`settle` for many files in one transaction. A job moved meanwhile is left alone
        (its StaleTransition in the list) and the others go on."""
        settled: list[Job | StaleTransition | None] = []
        with self._write():
            for one in hashed:
                try:
                    settled.append(self._settle_in_transaction(one))
                except StaleTransition as stale:
                    settled.append(stale)
        return settled

    def _settle_in_transaction(self, settled: SettledFile) -> Job | None:
        job, sha256, file, failure, partial = settled
        dev, ino, ctime_ns = file if file is not None else (None, None, None)
        identity = {"dev": dev, "ino": ino, "ctime_ns": ctime_ns}
        earlier = self._one(
            """SELECT id FROM jobs WHERE path = ? AND path_bytes IS ? AND sha256 = ?
               AND id != ? ORDER BY id DESC LIMIT 1""",
            (*_path_columns(job.path), sha256, job.id),
        )
        if earlier is not None:
            self.conn.execute(
                """UPDATE jobs SET size = ?, mtime_ns = ?, dev = ?, ino = ?, ctime_ns = ?
                   WHERE id = ?""",
                (job.size, job.mtime_ns, dev, ino, ctime_ns, earlier["id"]),
            )
            self.conn.execute("DELETE FROM jobs WHERE id = ? AND state = 'settling'", (job.id,))
            return None
        changes = {
            "sha256": sha256,
            "next_attempt_at": None,
            "incomplete_since": None,
            "replaces": partial.id if partial is not None else None,  # of these bytes only
            **identity,
        }
        if failure is not None:
            return self._move_in_transaction(
                job.id, JobState.SETTLING, JobState.FAILED, failure, {**changes, "error": failure}
            )
        note = "settled"
        if partial is not None:
            note = (
                f"settled; its first {partial.size} bytes are exactly job {partial.id}'s "
                f"(media {partial.hashed_id}): that upload was a partial copy"
            )
        queued = self._move_in_transaction(
            job.id, JobState.SETTLING, JobState.QUEUED, note, changes
        )
        if partial is not None:
            self._event(
                partial.id,
                partial.state.value,
                partial.state.value,
                f"job {queued.id}, a later version of this file, begins with exactly these "
                "bytes: this upload was a partial copy",
            )
        return queued

    @_retried_write
    def drop_candidate(self, job: Job) -> None:
        """Forget a settling candidate whose file went away before it settled. A job with a
        history (it was queued, sent or retried before it settled again) is not forgotten: it
        fails, so that its history stays."""
        with self._write():
            gone = self.conn.execute(
                """DELETE FROM jobs WHERE id = ? AND state = 'settling' AND NOT EXISTS
                   (SELECT 1 FROM events WHERE job_id = ? AND from_state IS NOT NULL)""",
                (job.id, job.id),
            )
            if gone.rowcount == 0:
                why = "the file went away before it settled again"
                with suppress(StaleTransition):
                    self._move_in_transaction(
                        job.id, JobState.SETTLING, JobState.FAILED, why, {"error": why}
                    )

    def known_versions(self) -> dict[str, tuple[int | None, int | None]]:
        """(size, mtime_ns) of the newest job of every path: a scan compares files to these."""
        rows = self.conn.execute(
            """SELECT path, path_bytes, size, mtime_ns FROM jobs
               WHERE id IN (SELECT max(id) FROM jobs GROUP BY path, path_bytes)"""
        )
        return {
            (os.fsdecode(exact) if exact is not None else path): (size, mtime_ns)
            for path, exact, size, mtime_ns in rows
        }

    def done_versions(self, path: str) -> list[Job]:
        """The done jobs of `path` whose media is still theirs (not replaced), newest first:
        a new version may prove one of them partial."""
        rows = self._raw(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE path = ? AND path_bytes IS ?
               AND state = 'done' AND hashed_id IS NOT NULL AND replaced_by IS NULL
               ORDER BY id DESC LIMIT 10""",
            _path_columns(path),
        )
        return [_job(r) for r in rows]

    def latest_for_path(self, path: str) -> Job | None:
        row = self._row(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE path = ? AND path_bytes IS ? "
            "ORDER BY id DESC LIMIT 1",
            _path_columns(path),
        )
        return _job(row) if row else None

    # --- the uploader's operations ------------------------------------------------------------

    @_retried_write
    def claim_upload(self, now: float | None = None) -> Job | None:
        """Atomically take the oldest queued job that is due: queued -> uploading."""
        now = self.clock.now() if now is None else now
        with self._write():
            row = self._row(
                f"""UPDATE jobs SET state = 'uploading', reason = NULL, bytes_sent = NULL,
                                  updated_at = :wall
                   WHERE id = (SELECT id FROM jobs
                               WHERE state = 'queued'
                                 AND (next_attempt_at IS NULL OR next_attempt_at <= :now)
                               ORDER BY id LIMIT 1)
                   RETURNING {JOB_COLUMNS}""",
                {"now": now, "wall": self.clock.wall()},
            )
            if row is None:
                return None
            self._event(row["id"], JobState.QUEUED.value, JobState.UPLOADING.value, "claimed")
        return _job(row)

    @_retried_write
    def requeue_interrupted(
        self, note: str, keep: set[int] | frozenset[int] = frozenset()
    ) -> list[Job]:
        """Jobs left `uploading` by a crash or stop go back to the queue, attempts unchanged.

        `upload_started_at` stays, so the next claim reconciles with Wistia before sending.
        Jobs in `keep` (uploads in progress in this process) are left alone.
        """
        with self._write():
            rows = list(
                self._raw(
                    f"""UPDATE jobs SET state = 'queued', reason = ?, bytes_sent = NULL,
                                      updated_at = ?
                       WHERE state = 'uploading' RETURNING {JOB_COLUMNS}""",
                    (note, self.clock.wall()),
                )
                if not keep
                else self._raw(
                    f"""UPDATE jobs SET state = 'queued', reason = ?, bytes_sent = NULL,
                                       updated_at = ?
                        WHERE state = 'uploading'
                          AND id NOT IN ({", ".join("?" for _ in keep)})
                        RETURNING {JOB_COLUMNS}""",
                    (note, self.clock.wall(), *keep),
                )
            )
            for row in rows:
                self._event(row["id"], JobState.UPLOADING.value, JobState.QUEUED.value, note)
            if rows:
                self._entered.add(JobState.QUEUED)
        return [_job(r) for r in rows]

    def hashed_id_taken(self, hashed_id: str, except_job: int) -> bool:
        row = self._one(
            "SELECT 1 AS x FROM jobs WHERE hashed_id = ? AND id != ? LIMIT 1",
            (hashed_id, except_job),
        )
        return row is not None

    # --- queries by state ---------------------------------------------------------------------

    def jobs_in(self, state: JobState, limit: int = 1000, after_id: int = 0) -> list[Job]:
        """Jobs in `state`, oldest first, from after `after_id` (to page through many)."""
        rows = self._raw(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = ? AND id > ? ORDER BY id LIMIT ?",
            (state.value, after_id, limit),
        )
        return [_job(r) for r in rows]

    def due_polls(self, now: float | None = None, limit: int = 100) -> list[Job]:
        rows = self._raw(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'processing'
               AND (next_poll_at IS NULL OR next_poll_at <= ?) ORDER BY next_poll_at LIMIT ?""",
            (self.clock.now() if now is None else now, limit),
        )
        return [_job(r) for r in rows]

    def soonest(self, state: JobState, after: float) -> float | None:
        """When the next job in `state` falls due after `after` (its next attempt, or for
        processing its next poll), or None when none waits for a time."""
        column = "next_poll_at" if state == JobState.PROCESSING else "next_attempt_at"
        sql = f"SELECT min({column}) AS soonest FROM jobs WHERE state = ? AND {column} > ?"
        row = self._one(sql, (state.value, after))
        return row["soonest"] if row else None

    def processing_with(self, hashed_ids: list[str]) -> list[Job]:
        """The jobs in processing whose media is one of `hashed_ids` (a batch poll's answer)."""
        found: list[Job] = []
        for start in range(0, len(hashed_ids), 500):  # SQLite's limit on parameters
            chunk = hashed_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self._raw(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE hashed_id IN ({marks}) "
                "AND state = 'processing'",
                chunk,
            )
            found += [_job(r) for r in rows]
        return found

    def due_finishing(self, now: float | None = None, limit: int = 50) -> list[Job]:
        rows = self._raw(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'finishing'
               AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ?""",
            (self.clock.now() if now is None else now, limit),
        )
        return [_job(r) for r in rows]

    def get(self, job_id: int) -> Job | None:
        row = self._row(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _job(row) if row else None

    def find(self, ref: str) -> Job | None:
        """A job by id, hashed id, or path (the newest job of that path)."""
        if ref.isascii() and ref.isdigit() and len(ref) < 19 and (job := self.get(int(ref))):
            return job
        row = self._row(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE hashed_id = ? ORDER BY id DESC LIMIT 1",
            (_storable(ref),),
        )
        if row is None:
            for candidate in (ref, str(Path(ref).expanduser().absolute())):
                if job := self.latest_for_path(candidate):
                    return job
        return _job(row) if row else None

    # --- retry --------------------------------------------------------------------------------

    def retry(self, job: Job, note: str = "retry requested") -> Job:
        """A failed job goes again: from finishing if only its sidecars failed; from settling
        if it was never read whole (a person retrying a file the container check refused
        vouches for that version: it is taken as it is); else from the queue."""
        if job.sha256 is None:
            return self.move(
                job,
                JobState.SETTLING,
                f"{note}; the file settles again, its container taken as it is",
                attempts=0,
                error=None,
                next_attempt_at=None,
                incomplete_since=None,
                settle_since=self.clock.now(),
                # Only a file the container check refused is vouched for by the retry.
                skip_container_check=int(job.incomplete_since is not None),
            )
        last = self._one(
            """SELECT from_state FROM events WHERE job_id = ? AND to_state = 'failed'
               ORDER BY id DESC LIMIT 1""",
            (job.id,),
        )
        if last and last["from_state"] == JobState.FINISHING.value and job.hashed_id:
            return self.move(
                job, JobState.FINISHING, note, attempts=0, error=None, next_attempt_at=None
            )
        return self.move(
            job,
            JobState.QUEUED,
            note,
            attempts=0,
            error=None,
            next_attempt_at=None,
            media_id=None,
            hashed_id=None,
            processing_since=None,
            next_poll_at=None,
            poll_interval=None,
        )

    # --- the account-wide hold ----------------------------------------------------------------

    def hold(self) -> Hold | None:
        row = self._one("SELECT kind, reason, since, next_probe_at, probe_interval FROM hold")
        return Hold(**row) if row else None

    @_retried_write
    def start_hold(self, request: HoldRequest) -> Hold:
        """Start the hold; a hold of the same kind keeps its start and its probe schedule.
        `since` is wall time (shown); the probe's time is steady (waited for)."""
        now = self.clock.now()
        with self._write():
            current = self._one("SELECT kind FROM hold")
            if current and current["kind"] == request.kind:
                self.conn.execute("UPDATE hold SET reason = ?", (_prose(request.reason),))
            else:
                self.conn.execute(
                    """INSERT OR REPLACE INTO hold (id, kind, reason, since, next_probe_at,
                                                    probe_interval)
                       VALUES (1, ?, ?, ?, ?, ?)""",
                    (
                        request.kind,
                        _prose(request.reason),
                        self.clock.wall(),
                        now + request.first_probe_in,
                        request.first_probe_in,
                    ),
                )
        hold = self.hold()
        assert hold is not None
        return hold

    @_retried_write
    def take_probe(self, kind: str, next_interval: float) -> bool:
        """True for the one caller that may probe now; pushes the next probe further out."""
        now = self.clock.now()
        with self._write():
            cursor = self.conn.execute(
                """UPDATE hold SET next_probe_at = ?, probe_interval = ?
                   WHERE kind = ? AND next_probe_at <= ?""",
                (now + next_interval, next_interval, kind, now),
            )
            return cursor.rowcount == 1

    @_retried_write
    def clear_hold(self, kind: str | None = None) -> bool:
        """End the hold; every waiting stage is woken, as the jobs it held back may go on."""
        with self._write():
            if kind is None:
                cursor = self.conn.execute("DELETE FROM hold")
            else:
                cursor = self.conn.execute("DELETE FROM hold WHERE kind = ?", (kind,))
            cleared = cursor.rowcount > 0
            if cleared:
                self._entered.update(JobState)
        return cleared

    # --- due times across a restart -----------------------------------------------------------

    @_retried_write
    def bring_times_within(self, now: float) -> int:
        """At start-up: due times stored by an earlier process, implausibly far ahead of
        `now` (the system clock stepped back since, or the last process's steady clock had
        moved away from it: clock.py), are due now; waits that began in the future begin
        now. Returns how many were brought back."""
        latest = now + PLAUSIBLE_WAIT_SECONDS
        soonest_start = now + FUTURE_MARGIN_SECONDS
        due = [
            ("jobs", "next_attempt_at"),
            ("jobs", "next_poll_at"),
            ("jobs", "resync_due_at"),
            ("hold", "next_probe_at"),
            ("notifications", "next_attempt_at"),
        ]
        begun = [
            ("jobs", "settle_since"),
            ("jobs", "processing_since"),
            ("jobs", "incomplete_since"),
            ("notifications", "queued_at"),
        ]
        changed = 0
        with self._write():
            for table, column in due:
                changed += self.conn.execute(
                    f"UPDATE {table} SET {column} = ? WHERE {column} > ?", (now, latest)
                ).rowcount
            for table, column in begun:
                changed += self.conn.execute(
                    f"UPDATE {table} SET {column} = ? WHERE {column} > ?", (now, soonest_start)
                ).rowcount
        return changed

    # --- facts ---------------------------------------------------------------------------------

    def fact(self, name: str) -> str | None:
        row = self._row("SELECT value FROM facts WHERE name = ?", (name,))
        return None if row is None else row[0]

    @_retried_write
    def set_fact(self, name: str, value: str) -> None:
        with self._write():
            self.conn.execute(
                "INSERT OR REPLACE INTO facts (name, value) VALUES (?, ?)", (name, value)
            )

    # --- the outbox ---------------------------------------------------------------------------

    def due_notifications(
        self, now: float | None = None, limit: int = 20, receiver: str | None = None
    ) -> list[Notification]:
        """Notifications due by `now`, oldest first; of one receiver when it is given."""
        rows = self._raw(
            """SELECT id, uid, receiver, job_id, event, at, job, body, attempts, queued_at
               FROM notifications WHERE next_attempt_at <= ? AND (? IS NULL OR receiver = ?)
               ORDER BY next_attempt_at, id LIMIT ?""",
            (self.clock.now() if now is None else now, receiver, receiver, limit),
        )
        return [Notification(*row) for row in rows]

    def receivers_due(self, now: float) -> list[str]:
        """The receivers that have a notification due by `now`."""
        rows = self._raw(
            "SELECT DISTINCT receiver FROM notifications WHERE next_attempt_at <= ?", (now,)
        )
        return [row[0] for row in rows]

    def soonest_notification(self, besides: frozenset[str] = frozenset()) -> float | None:
        """When the next notification falls due, of a receiver not in `besides`."""
        marks = ", ".join("?" for _ in besides)
        row = self._row(
            f"SELECT min(next_attempt_at) FROM notifications WHERE receiver NOT IN ({marks})",
            tuple(besides),
        )
        return None if row is None else row[0]

    @_retried_write
    def fix_notification_body(self, notification: Notification, body: str) -> None:
        """The body every attempt of this notification sends, from now on."""
        with self._write():
            self.conn.execute(
                "UPDATE notifications SET body = ? WHERE uid = ? AND body IS NULL",
                (body, notification.uid),
            )

    def notification_body(self, notification: Notification) -> str | None:
        row = self._row(
            "SELECT body FROM notifications WHERE uid = ? AND body IS NOT NULL LIMIT 1",
            (notification.uid,),
        )
        return None if row is None else row[0]

    @_retried_write
    def forget_notification(self, notification: Notification) -> None:
        with self._write():
            self.conn.execute("DELETE FROM notifications WHERE id = ?", (notification.id,))

    @_retried_write
    def notification_failed(self, notification: Notification, error: str, retry_at: float) -> None:
        with self._write():
            self.conn.execute(
                """UPDATE notifications SET attempts = attempts + 1, last_error = ?,
                   last_attempt_at = ?, next_attempt_at = ? WHERE id = ?""",
                (_prose(error), self.clock.wall(), retry_at, notification.id),
            )

    def notifications_waiting(self) -> dict[str, Any]:
        """How many notifications wait, and the last delivery error among them."""
        count = self._row("SELECT count(DISTINCT uid) FROM notifications")
        last = self._row(
            """SELECT last_error FROM notifications WHERE last_error IS NOT NULL
               ORDER BY last_attempt_at DESC LIMIT 1"""
        )
        return {
            "waiting": count[0] if count is not None else 0,
            "last_error": last[0] if last is not None else None,
        }

    # --- sidecars -----------------------------------------------------------------------------

    def applied_sidecars(self, job_id: int) -> dict[str, str]:
        rows = self._rows("SELECT name, digest FROM sidecars WHERE job_id = ?", (job_id,))
        return {row["name"]: row["digest"] for row in rows}

    def image_recorded(self, hashed_id: str, steps: tuple[str, ...]) -> bool:
        """Whether any job recorded the image media `hashed_id` under one of `steps`."""
        marks = ", ".join("?" for _ in steps)
        row = self.conn.execute(
            f"SELECT 1 FROM sidecars WHERE name IN ({marks}) AND digest LIKE ? LIMIT 1",
            (*steps, f"% {hashed_id}"),
        ).fetchone()
        return row is not None

    @_retried_write
    def record_sidecar(self, job_id: int, name: str, digest: str) -> None:
        with self._write():
            self.conn.execute(
                """INSERT OR REPLACE INTO sidecars (job_id, name, digest, applied_at)
                   VALUES (?, ?, ?, ?)""",
                (job_id, name, digest, self.clock.wall()),
            )

    @_retried_write
    def record_replaced(self, partial: Job, whole: Job, step: str, deleted: bool, how: str) -> None:
        """The finisher dealt with the partial media `whole` replaces: both histories say how,
        and `step` is recorded so that it is done once."""
        with self._write():
            if deleted:
                self.conn.execute(
                    "UPDATE jobs SET replaced_by = ? WHERE id = ?", (whole.id, partial.id)
                )
            self._event(partial.id, partial.state.value, partial.state.value, how)
            self._event(whole.id, whole.state.value, whole.state.value, how)
            self.conn.execute(
                """INSERT OR REPLACE INTO sidecars (job_id, name, digest, applied_at)
                   VALUES (?, ?, ?, ?)""",
                (whole.id, step, partial.hashed_id or "", self.clock.wall()),
            )

    # --- re-sync after done ---------------------------------------------------------------------

    def synced_below(self, folder: str) -> list[Job]:
        """The jobs whose file is anywhere below `folder` (a range of the path index) and
        whose sidecars were sent to their media or are being sent: done or finishing."""
        low, _ = _path_columns(folder.rstrip("/") + "/")
        high = low[:-1] + "0"  # "/" + 1: every path that starts with `low`
        rows = self._raw(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE path >= ? AND path < ?
               AND state IN ('done', 'finishing') ORDER BY id""",
            (low, high),
        )
        return [_job(r) for r in rows]

    def done_read_at(self) -> list[tuple[int, str, float]]:
        """(id, path, when its sidecars were last read) of every done job, for a scan to find
        sidecars changed since with no event seen (jobs from before that was recorded: when
        they last changed)."""
        rows = self.conn.execute(
            """SELECT id, path, path_bytes, coalesce(sidecars_read_at, updated_at) FROM jobs
               WHERE state = 'done'"""
        )
        return [
            (job_id, os.fsdecode(exact) if exact is not None else path, read_at)
            for job_id, path, exact, read_at in rows
        ]

    @_retried_write
    def mark_resync(self, job_ids: list[int], due_at: float, now: float) -> None:
        """These jobs' sidecars changed: the re-sync looks at them from `due_at` on, once
        they are done (a job still finishing keeps the mark through its move to done).

        An earlier mark still ahead is kept; one already due may be under way right now, so
        it is moved: the re-sync under way then leaves the job marked (`resynced`)."""
        with self._write():
            for start in range(0, len(job_ids), 500):
                chunk = job_ids[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                self.conn.execute(
                    f"""UPDATE jobs SET resync_due_at = ? WHERE id IN ({marks})
                       AND state IN ('done', 'finishing')
                       AND (resync_due_at IS NULL OR resync_due_at > ? OR resync_due_at <= ?)""",
                    (due_at, *chunk, due_at, now),
                )
            if job_ids:
                self._entered.add(JobState.DONE)  # wakes the re-sync stage

    @_retried_write
    def resynced(self, job: Job, read_at: float) -> None:
        """The re-sync of `job` (as it was read), which read its sidecars at `read_at`, is
        over; a change marked meanwhile stays marked, so it is looked at again."""
        with self._write():
            self.conn.execute(
                """UPDATE jobs SET resync_due_at = NULL, reason = NULL, updated_at = ?,
                   sidecars_read_at = ?
                   WHERE id = ? AND state = 'done' AND resync_due_at IS ?""",
                (self.clock.wall(), read_at, job.id, job.resync_due_at),
            )

    def due_resync(self, now: float | None = None, limit: int = 50) -> list[Job]:
        rows = self._raw(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE resync_due_at IS NOT NULL
               AND resync_due_at <= ? AND state = 'done' ORDER BY resync_due_at LIMIT ?""",
            (self.clock.now() if now is None else now, limit),
        )
        return [_job(r) for r in rows]

    def soonest_resync(self, after: float) -> float | None:
        row = self._one(
            "SELECT min(resync_due_at) AS soonest FROM jobs WHERE resync_due_at > ?", (after,)
        )
        return row["soonest"] if row else None

    def done_at(self, job_id: int) -> float | None:
        """When the job first became done."""
        row = self._row(
            "SELECT min(at) FROM events WHERE job_id = ? AND to_state = 'done'", (job_id,)
        )
        return None if row is None else row[0]

    @_retried_write
    def note(self, job: Job, note: str) -> None:
        """An event in the job's history that changes no state (a re-sync applied a sidecar)."""
        with self._write():
            self._event(job.id, job.state.value, job.state.value, note)

    # --- projects from folders ----------------------------------------------------------------

    def project_named(self, name: str) -> str | None:
        """The hashed id of the Wistia project a folder named `name` goes to, if known."""
        row = self._one("SELECT hashed_id FROM projects WHERE name = ?", (_storable(name),))
        return row["hashed_id"] if row else None

    @_retried_write
    def remember_project(self, name: str, hashed_id: str) -> None:
        with self._write():
            self.conn.execute(
                "INSERT OR REPLACE INTO projects (name, hashed_id, found_at) VALUES (?, ?, ?)",
                (_storable(name), hashed_id, self.clock.wall()),
            )

    @_retried_write
    def forget_project(self, name: str, hashed_id: str) -> None:
        """The project is gone in Wistia: the next upload looks it up (or makes it) again."""
        with self._write():
            self.conn.execute(
                "DELETE FROM projects WHERE name = ? AND hashed_id = ?",
                (_storable(name), hashed_id),
            )

    # --- status views -------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        rows = self._rows("SELECT state, count(*) AS n FROM jobs GROUP BY state")
        return {row["state"]: row["n"] for row in rows}

    def active_and_recent(self, recent: int | None = 100) -> list[Job]:
        """Every job not yet terminal, then the `recent` newest terminal ones (None: all)."""
        marks = ", ".join("?" for _ in ACTIVE_STATES)
        active = self._raw(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY id", ACTIVE_STATES
        )
        limit = -1 if recent is None else recent
        # One index range per final state, newest first, then the newest of those.
        newest = " UNION ALL ".join(
            f"SELECT * FROM (SELECT {JOB_COLUMNS} FROM jobs WHERE state = ? "
            "ORDER BY updated_at DESC LIMIT ?)"
            for _ in TERMINAL_STATES
        )
        terminal = self._raw(
            f"SELECT * FROM ({newest}) ORDER BY updated_at DESC, id DESC LIMIT ?",
            (*[v for state in TERMINAL_STATES for v in (state, limit)], limit),
        )
        return [_job(r) for r in active] + [_job(r) for r in terminal]

    def events(self, job_id: int) -> list[Event]:
        rows = self._rows("SELECT * FROM events WHERE job_id = ? ORDER BY id", (job_id,))
        return [Event(**row) for row in rows]


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
