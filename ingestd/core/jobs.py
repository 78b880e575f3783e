"""The job: its states, the transitions allowed between them, and the job record.

One job is one version of one media file (or `.url` import). The ledger (ledger.py) is the
only code that changes a job's state, and it refuses any move not listed in TRANSITIONS.

    settling -> queued -> uploading -> processing -> finishing -> done
        |          |          |             |            |
        +----------+----------+-------------+------------+--> failed (terminal; retry -> queued,
        |                                                          or settling if never read whole)
        +----------+----------+--------------------------+--> held (its own problem; resumes)

    queued -> processing: a file older than the ledger, found already in Wistia (adopted)

`held` is a job waiting on its own problem (a malformed sidecar, an unreadable file). Where it
resumes is derived from how far it got (see `resume_state`), so no extra column can disagree.
An account-wide stop (video limit, auth) is the ledger's `hold`, not a job state.

Who moves a job out of each state (only its owner does):

    settling -> watcher       queued, uploading -> uploader    processing -> poller
    finishing -> finisher     held -> held.py (rechecks)       failed -> `ingestd retry`
    queued, while it waits for its look in Wistia (a file older than the ledger) -> adopt.py

What happens to a job after anything goes wrong is decided once, by outcomes.decide, as a
`Move`; Ledger.apply makes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class JobState(StrEnum):
    SETTLING = "settling"
    QUEUED = "queued"
    UPLOADING = "uploading"
    PROCESSING = "processing"
    FINISHING = "finishing"
    DONE = "done"
    FAILED = "failed"
    HELD = "held"


TERMINAL = frozenset({JobState.DONE, JobState.FAILED})

S = JobState
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.SETTLING: frozenset({S.QUEUED, S.FAILED, S.HELD}),
    # Only a claim takes a job out of the queue (the uploader checks the file after it), or
    # its look in Wistia before the upload: found there (processing), found twice (failed),
    # or its sidecars unreadable (held: looked for once they are fixed).
    S.QUEUED: frozenset({S.UPLOADING, S.PROCESSING, S.FAILED, S.HELD}),
    # uploading -> settling: the file changed before or while it was being sent.
    S.UPLOADING: frozenset({S.PROCESSING, S.QUEUED, S.FAILED, S.HELD, S.SETTLING}),
    S.PROCESSING: frozenset({S.FINISHING, S.FAILED}),
    S.FINISHING: frozenset({S.DONE, S.HELD, S.FAILED}),
    S.HELD: frozenset({S.SETTLING, S.QUEUED, S.FINISHING, S.FAILED}),
    # failed -> settling: a retried job that was never read whole (a cut container) settles again.
    S.FAILED: frozenset({S.QUEUED, S.FINISHING, S.SETTLING}),
    S.DONE: frozenset(),
}
del S


def can_move(from_state: JobState, to_state: JobState) -> bool:
    return to_state in TRANSITIONS[from_state]


class StaleTransition(RuntimeError):
    """The job was not in the state the caller expected: someone else moved it first."""


class InvalidTransition(ValueError):
    """A move that TRANSITIONS does not allow: a bug, never a user error."""


@dataclass(frozen=True)
class HoldRequest:
    """Start (or keep) the account-wide hold: no upload until a probe succeeds."""

    kind: str  # video_limit | auth
    reason: str
    first_probe_in: float
    first_check_in: float | None = None  # the first look at the account (video limit)


# The reason of a job that waits on the account-wide hold begins so: when the hold lifts, the
# ledger makes such jobs due at once (a finishing thumbnail, a re-sync's).
HOLD_REASON_PREFIX = "hold: "


@dataclass(frozen=True)
class Move:
    """What happens to a job after one outcome, as outcomes.decide says; Ledger.apply makes it.

    `to` None keeps the job where it is (its columns may still change, without an event).
    An empty Move writes nothing. `message` is what the stage logs about it, at `level`.
    """

    to: JobState | None = None
    note: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    hold: HoldRequest | None = None
    level: str = "info"
    message: str = ""
    traceback: bool = False

    @property
    def counts_attempt(self) -> bool:
        return "attempts" in self.changes

    @property
    def writes(self) -> bool:
        return self.to is not None or bool(self.changes) or self.hold is not None


class JobKind(StrEnum):
    FILE = "file"  # a media file, uploaded as multipart
    URL = "url"  # a `.url` file, imported by Wistia from the web


class Job(NamedTuple):
    """One row of the ledger's jobs table: immutable, and built straight from the row's
    values (ten thousand of them make a `status` in milliseconds)."""

    id: int
    path: str
    kind: str
    state: JobState
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    dev: int | None = None  # device, inode and change time of the file that was hashed
    ino: int | None = None
    ctime_ns: int | None = None
    settle_since: float | None = None
    attempts: int = 0
    error: str | None = None
    reason: str | None = None
    next_attempt_at: float | None = None
    upload_started_at: float | None = None
    attempt_sha256: str | None = None
    bytes_sent: int | None = None
    media_name: str | None = None
    media_id: int | None = None
    hashed_id: str | None = None
    processing_since: float | None = None
    next_poll_at: float | None = None
    poll_interval: float | None = None
    incomplete_since: float | None = None  # when its container was first found cut short
    replaces: int | None = None  # the done job whose media this version proves partial
    replaced_by: int | None = None  # the job whose version proved this one's media partial
    skip_container_check: int = 0  # 1: a person retried it; its container is taken as it is
    project_id: str | None = None  # the hashed id of the Wistia project its media is in
    resync_due_at: float | None = None  # done, and its sidecars changed: look at them then
    sidecars_read_at: float | None = None  # when the sidecars its media has were read (wall)
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def version(self) -> tuple[int | None, int | None]:
        """What identifies the file this job saw, short of hashing it: size and mtime."""
        return (self.size, self.mtime_ns)

    def is_file_hashed(self, stat: os.stat_result) -> bool:
        """Whether an opened file is the very file this job hashed, unchanged since."""
        if version_of(stat) != self.version:
            return False
        return self.dev is None or file_identity(stat) == (self.dev, self.ino, self.ctime_ns)

    @property
    def attempted(self) -> bool:
        """An earlier upload attempt of these very bytes began: Wistia may have its media."""
        return self.upload_started_at is not None and self.attempt_sha256 in (None, self.sha256)


def version_of(stat: os.stat_result) -> tuple[int, int]:
    """A file's version as a job records it (see Job.version)."""
    return (stat.st_size, stat.st_mtime_ns)


def file_identity(stat: os.stat_result) -> tuple[int, int, int]:
    """Which file, and whether it changed at all: device, inode and change time."""
    return (stat.st_dev, stat.st_ino, stat.st_ctime_ns)


def resume_state(job: Job) -> JobState:
    """Where a held or retried job goes back to, judged by how far it got."""
    if job.sha256 is None:
        return JobState.SETTLING  # never read completely: settle and hash again
    if job.hashed_id is None:
        return JobState.QUEUED  # not in Wistia yet
    return JobState.FINISHING  # in Wistia and processed: only the sidecars are left
