"""The ledger's schema: its migrations, applied in order, each all or nothing.

The ledger's `PRAGMA user_version` is the number of migrations applied; MIGRATIONS is append
only. `migrate` runs inside the caller's write transaction, statement by statement, with the
version read again under the lock: threads or processes opening a new ledger at once migrate
it once. A ledger from any earlier version is carried forward (tests/fixtures holds one made
by schema 8).

Tables, as they are now:

    jobs            one row per version of a media file (core.jobs.Job's columns)
    events          append-only history: one row per state change or note
    hold            at most one row: the account-wide stop
    sent            per job, what each sidecar step sent its media (a digest)
    fates           per job, what became of the file: moved (where, exactly) or deleted
    thumbnails      per job, the thumbnail image: being sent, uploaded, failed, the still
    replacements    per job, the partial media its version replaced
    projects        a folder's name -> the Wistia project its media go to
    notifications   the outbox: one row per notification and receiver, until delivered
                    (a receiver is `webhook`, `command` or a label such as `slack#1`)
    facts           what the daemon learned once (the account's url, when the ledger was made)
    refused         per job, the finishing steps Wistia refused (403), by digest
    swaps           per job, the media a new version replaces in place, and each step
    adoption        files older than the ledger, looked for in Wistia before their upload
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable

from ingestd.core.jobs import JobState


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


def _migration_9(db: sqlite3.Connection) -> None:
    # When the sidecars a done job's media has were last read from disk (wall time, like a
    # file's mtime): a sidecar changed after that moment has not reached the media.
    _script(db, "ALTER TABLE jobs ADD COLUMN sidecars_read_at REAL")


def _migration_10(db: sqlite3.Connection) -> None:
    # When a notification was queued, on the daemon's steady clock (clock.py): its age is
    # measured on it, so a step of the system clock neither drops nor keeps it. `at` stays
    # the wall time the receivers are told.
    _script(
        db,
        """ALTER TABLE notifications ADD COLUMN queued_at REAL;
           UPDATE notifications SET queued_at = at""",
    )


def _migration_11(db: sqlite3.Connection) -> None:
    # Typed records of what finishing did, instead of strings in a table named for something
    # else: `sidecars` held sidecar digests, but also the file's fate ("delete", or the hex of
    # the archive path), the thumbnail's steps ("<digest> <hashed id>", "<digest> <epoch>")
    # and the partial media replaced. Today's rows move to their tables.
    _script(
        db,
        """CREATE TABLE sent (
               job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
               step TEXT NOT NULL,
               digest TEXT NOT NULL,
               sent_at REAL NOT NULL,
               PRIMARY KEY (job_id, step)
           );
           CREATE TABLE fates (
               job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
               action TEXT NOT NULL CHECK (action IN ('move', 'delete')),
               target BLOB,
               chosen_at REAL NOT NULL,
               CHECK ((action = 'move') = (target IS NOT NULL))
           );
           CREATE TABLE thumbnails (
               job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
               stage TEXT NOT NULL CHECK (stage IN ('sending', 'uploaded', 'failed', 'still')),
               image_digest TEXT NOT NULL,
               image_hashed_id TEXT,
               began_at REAL,
               at REAL NOT NULL,
               PRIMARY KEY (job_id, stage)
           );
           CREATE INDEX thumbnails_by_image ON thumbnails (image_hashed_id)
               WHERE image_hashed_id IS NOT NULL;
           CREATE TABLE replacements (
               job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
               partial_job_id INTEGER NOT NULL,
               partial_hashed_id TEXT NOT NULL,
               outcome TEXT NOT NULL CHECK (outcome IN ('deleted', 'kept')),
               at REAL NOT NULL
           )""",
    )
    rows = db.execute("SELECT job_id, name, digest, applied_at FROM sidecars").fetchall()
    for job_id, name, digest, at in rows:
        if name == "fate":
            target = None if digest == "delete" else _archive_path_bytes(digest)
            action = "delete" if target is None else "move"
            db.execute(
                "INSERT INTO fates (job_id, action, target, chosen_at) VALUES (?, ?, ?, ?)",
                (job_id, action, target, at),
            )
        elif name in THUMBNAIL_RECORDS:
            image, _, rest = digest.partition(" ")
            stage = THUMBNAIL_RECORDS[name]
            # When the image began to be sent; unreadable: when that was recorded, just before.
            began = (_number(rest) or at) if stage == "sending" else None
            hashed_id = (rest or None) if stage in ("uploaded", "still") else None
            if stage == "uploaded" and hashed_id is None:
                continue  # nothing to find the image by: the thumbnail is sent again
            db.execute(
                """INSERT INTO thumbnails (job_id, stage, image_digest, image_hashed_id,
                                           began_at, at) VALUES (?, ?, ?, ?, ?, ?)""",
                (job_id, stage, image, hashed_id, began, at),
            )
        elif name == "replace-partial":
            partial = db.execute(  # the partial job: the one this job replaces
                """SELECT id, replaced_by FROM jobs
                   WHERE id = (SELECT replaces FROM jobs WHERE id = ?)
                      OR (hashed_id = ? AND id != ?)
                   ORDER BY id = (SELECT replaces FROM jobs WHERE id = ?) DESC, id DESC
                   LIMIT 1""",
                (job_id, digest, job_id, job_id),
            ).fetchone()
            if partial is not None:
                outcome = "deleted" if partial[1] == job_id else "kept"
                db.execute(
                    """INSERT INTO replacements (job_id, partial_job_id, partial_hashed_id,
                                                 outcome, at) VALUES (?, ?, ?, ?, ?)""",
                    (job_id, partial[0], digest, outcome, at),
                )
        else:
            db.execute(
                "INSERT INTO sent (job_id, step, digest, sent_at) VALUES (?, ?, ?, ?)",
                (job_id, name, digest, at),
            )
    db.execute("DROP TABLE sidecars")


def _migration_12(db: sqlite3.Connection) -> None:
    # Each receiver delivers on its own (a lane per receiver), and a digest takes every
    # notification waiting for its receiver: a dead Slack or mail server keeps a day of them.
    _script(
        db,
        "CREATE INDEX notifications_by_receiver ON notifications (receiver, next_attempt_at)",
    )


def _migration_13(db: sqlite3.Connection) -> None:
    # The video-limit hold asks the account (cheap) apart from probing with an upload: when it
    # next asks (steady time), and what the last answer said (`none`: no room; `room`;
    # `unknown`: no limit given, or no answer). `refused`: the finishing steps Wistia refused
    # (403: the plan or the token's scope), by the digest of what was refused, so that a step
    # is tried again only when its sidecar changes.
    _script(
        db,
        """ALTER TABLE hold ADD COLUMN next_check_at REAL;
           ALTER TABLE hold ADD COLUMN room TEXT;
           CREATE TABLE refused (
               job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
               step TEXT NOT NULL,
               digest TEXT NOT NULL,
               reason TEXT NOT NULL,
               at REAL NOT NULL,
               PRIMARY KEY (job_id, step)
           )""",
    )


def _migration_14(db: sqlite3.Connection) -> None:
    # A new version replacing a media in place (Swap): the media it replaces and how it was
    # chosen, then each step as it is made (asked, Wistia's background job, its end, the
    # leftover replacement deleted), so that a crash between any two neither swaps twice nor
    # leaves the job without its media. `unknown`: a clip.json `replaces` naming no media.
    _script(
        db,
        """CREATE TABLE swaps (
               job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
               original TEXT NOT NULL,
               how TEXT NOT NULL CHECK (how IN ('path', 'replaces', 'partial')),
               project TEXT,
               stage TEXT NOT NULL CHECK (stage IN ('unknown', 'chosen', 'requesting',
                   'requested', 'finished', 'refused', 'cleaned')),
               replacement TEXT,
               background_job TEXT,
               api TEXT,
               requested_at REAL,
               reason TEXT,
               at REAL NOT NULL
           )""",
    )


def _migration_15(db: sqlite3.Connection) -> None:
    # Adopting what Wistia already has: when the ledger was made (a fact that a restart does
    # not move: a new ledger now; an older one, its first job), and the files looked for in
    # Wistia before their upload, each until it is checked (found, several, none). The rows of
    # a round of looking stay until its last file is checked, for `status`'s count.
    _script(
        db,
        """CREATE TABLE adoption (
               job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
               checked INTEGER NOT NULL DEFAULT 0,
               at REAL NOT NULL
           );
           CREATE INDEX adoption_waiting ON adoption (checked, job_id)""",
    )
    first = db.execute("SELECT min(created_at) FROM jobs").fetchone()[0]
    created = first if first is not None else time.time()
    db.execute(
        "INSERT OR IGNORE INTO facts (name, value) VALUES ('ledger_created_at', ?)",
        (repr(float(created)),),
    )


def _migration_16(db: sqlite3.Connection) -> None:
    # A swap asked without an answer (a crash, a network error) is judged by what Wistia
    # shows afterwards: the original's file size and last change (Wistia's clock) before the
    # ask, and the replacement's size. The original holding the replacement's size is the swap
    # made; where the sizes are the same, its change since (rows from before: unknown).
    _script(
        db,
        """ALTER TABLE swaps ADD COLUMN before_size INTEGER;
           ALTER TABLE swaps ADD COLUMN before_updated REAL;
           ALTER TABLE swaps ADD COLUMN replacement_size INTEGER""",
    )


# Migration 11: the thumbnail's records as schema 8 named them -> their stage.
THUMBNAIL_RECORDS = {
    "thumbnail-sending": "sending",
    "thumbnail-upload": "uploaded",
    "thumbnail-failed": "failed",
    "thumbnail": "still",
}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _archive_path_bytes(recorded: str) -> bytes:
    """The archive path as migration 11 found it: the hex of its bytes (or, from an older
    ingestd still, the path as text)."""
    try:
        return bytes.fromhex(recorded)
    except ValueError:
        return os.fsencode(recorded)


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
    _migration_11,
    _migration_12,
    _migration_13,
    _migration_14,
    _migration_15,
    _migration_16,
]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations the ledger lacks, inside the caller's write transaction (the
    version is read under its lock: of two migrators, the second finds nothing to do)."""
    for number in range(schema_version(conn), SCHEMA_VERSION):
        MIGRATIONS[number](conn)
        conn.execute(f"PRAGMA user_version = {number + 1}")
