"""The one outcome policy: what happens to a job when a step of it does not simply succeed.

Every stage runs each job's step inside one guard (stageloop.Guard). Whatever the step
raises, expected or not, the guard asks `decide` what it means for that job: the next state,
the reason shown in `status`, when to look again, whether an attempt counts, whether the whole
account goes on hold. Ledger.apply then writes that `Move`. No stage decides a state on its
own, so one job's trouble always ends in that job's state and never stops a stage.

    outcome                           upload               poll              finish      recheck
    --------------------------------  -------------------  ----------------  ----------  ---------
    StaleTransition (moved meanwhile) nothing              nothing           nothing     nothing
    Cancelled (daemon stopping)       queued, no attempt   nothing           nothing     nothing
    WatchFolderMissing                queued, 10 s later   nothing           10 s later  nothing
    FileChanged                       settling             -                 -           settling
    StillWritten (settle only)        settling: reason, looked at again a settle period later
    IncompleteContainer (settle)      settling: reason; failed after incomplete_after_seconds
    HoldError (video limit, auth)     queued + hold        hold              hold        -
    TransientError                    attempt; queued at   next poll at      attempt;    -
                                      backoff, or failed   backoff or R-A    backoff or
                                      at max_attempts                        failed
    NotFoundError (404)               failed               failed (deleted)  failed      -
    PermanentError, MediaFailed       failed               failed            failed      -
    JobInputError, fatal              failed               failed            failed      failed
    JobInputError                     held                 held              held        reason *
    any other exception               failed, "internal error: <type>: <message>", traceback logged

    * a recheck that finds the same problem writes nothing; a different one updates the
      reason (no event); no problem at all is `release`: back to where the job resumes.

The settle stage (watcher) follows the same rows as upload where they apply. Backoffs all
follow one law, core.backoff.Backoff; a Retry-After from Wistia is obeyed exactly instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from ingestd.core.backoff import Backoff
from ingestd.core.errors import (
    Cancelled,
    FileChanged,
    HoldError,
    IncompleteContainer,
    IngestdError,
    JobInputError,
    NotFoundError,
    PermanentError,
    StillWritten,
    TransientError,
    WatchFolderMissing,
)
from ingestd.core.jobs import (
    HOLD_REASON_PREFIX,
    HoldRequest,
    InvalidTransition,
    Job,
    JobState,
    Move,
    StaleTransition,
    can_move,
    resume_state,
)


class Stage(StrEnum):
    """The stage whose step produced an outcome: the one that owns the job's state."""

    SETTLE = "settle"  # watcher: settling
    UPLOAD = "upload"  # uploader: queued, uploading
    POLL = "poll"  # poller: processing
    FINISH = "finish"  # finisher: finishing
    RECHECK = "recheck"  # held.py: held
    RESYNC = "resync"  # resync.py: done jobs whose sidecars changed (the job stays done)


# How soon a job waiting for a missing watch folder (an unmounted share) is looked at again.
FOLDER_WAIT_SECONDS = 10.0
# Under a video-limit hold, how often the account is asked whether it has room (SPEC: every
# 15 s or sooner; uploads resume within 15 s of room appearing).
ROOM_CHECK_SECONDS = 10.0
# A file still open for writing is looked at again no sooner than this (a /proc pass each time).
WRITER_RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Policy:
    """The numbers the policy needs, from `[ingest]` (pipeline.loop.policy_for)."""

    max_attempts: int
    retry: Backoff  # between attempts after a transient error
    poll: Backoff  # between polls of a media Wistia is processing
    first_probe_in: float  # the first probe of an account-wide hold
    settle: float  # the quiet time a settling file needs
    incomplete_after: float  # a file failing the container check this long is failed


@dataclass(frozen=True)
class Case:
    """One outcome to decide on."""

    job: Job
    stage: Stage
    error: BaseException
    now: float
    policy: Policy


def decide(job: Job, stage: Stage, error: BaseException, now: float, policy: Policy) -> Move:
    """The move for `job` after `stage`'s step ended in `error`. Pure: no I/O, no clock."""
    case = Case(job, stage, error, now, policy)
    if stage == Stage.RESYNC:
        return _resync(case)
    rule = next(rule for kind, rule in RULES if isinstance(error, kind))
    move = rule(case)
    if move.to is not None and not can_move(job.state, move.to):
        # An outcome no stage should meet in this state: a bug, kept to this one job.
        surprise = InvalidTransition(f"{job.state} -> {move.to} after {type(error).__name__}")
        return _unexpected(replace(case, error=surprise))
    return move


def release(job: Job, now: float) -> Move:
    """A held job whose problem is gone goes back to where it resumes."""
    target = resume_state(job)
    changes: dict[str, object] = {"next_attempt_at": None}
    if target == JobState.SETTLING:
        changes["settle_since"] = now
    return Move(
        to=target,
        note="problem fixed",
        changes=changes,
        message=f"problem fixed; going on ({target.value})",
    )


# --- the rules, one per row of the table above ------------------------------------------------


def _resync(case: Case) -> Move:
    """A re-sync's trouble never moves the done job: it shows as the job's reason, and the
    re-sync is tried again later (Wistia's trouble) or when the sidecars change (theirs)."""
    error = case.error
    if isinstance(error, StaleTransition | Cancelled):
        return Move()
    if isinstance(error, HoldError):
        later = {
            "resync_due_at": case.now + case.policy.first_probe_in,
            "reason": HOLD_REASON_PREFIX + error.reason,  # due again when the hold lifts
        }
        return Move(changes=later, hold=_hold_request(case), level="error", message=str(error))
    if isinstance(error, TransientError):
        wait = case.policy.retry.seconds(1, error.retry_after)
        reason = f"re-sync waits: {error.reason}"
        return Move(
            changes={"resync_due_at": case.now + wait, "reason": reason},
            level="warning",
            message=reason,
        )
    if isinstance(error, NotFoundError):
        reason = "the media was deleted in Wistia: sidecars are not applied, nothing re-uploaded"
    elif isinstance(error, IngestdError):
        reason = f"a sidecar changed after done cannot be applied: {error}"
    else:
        reason = f"re-sync failed: internal error: {type(error).__name__}: {error}"[:400]
    return Move(
        changes={"resync_due_at": None, "reason": reason},
        level="warning",
        message=reason,
        traceback=not isinstance(error, IngestdError),
    )


def _stale(case: Case) -> Move:
    return Move(message="the job was moved meanwhile; leaving it to its new owner")


def _cancelled(case: Case) -> Move:
    if case.stage != Stage.UPLOAD:
        return Move()  # looked at again after the restart
    return Move(
        to=JobState.QUEUED,
        note="daemon stopping; the upload starts again later",
        changes={"reason": "interrupted by a stop; waiting to start again"},
        message="upload interrupted by the stop; back to the queue",
    )


def _folder_missing(case: Case) -> Move:
    later = {**_later(case, case.now + FOLDER_WAIT_SECONDS), "reason": str(case.error)}
    message = "the watch folder is missing (an unmounted share?); the job waits"
    if case.stage == Stage.UPLOAD:
        return Move(
            to=JobState.QUEUED,
            note="watch folder missing",
            changes=later,
            level="warning",
            message=message,
        )
    if case.stage == Stage.FINISH:
        return Move(changes=later, level="warning", message=message)
    return Move(level="warning", message=message)


def _file_changed(case: Case) -> Move:
    assert isinstance(case.error, FileChanged)
    stat = case.error.stat
    return Move(
        to=JobState.SETTLING,
        note=case.error.reason,
        # What an earlier attempt sent (upload_started_at, media_name, attempt_sha256) stays:
        # if the bytes turn out the same (a touch), the next claim still reconciles with it.
        changes={
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": None,
            "settle_since": case.now,
            "bytes_sent": None,
            "next_attempt_at": None,
            "replaces": None,  # what these bytes prove is found when they settle
            "skip_container_check": 0,
        },
        level="warning",
        message="the file changed; waiting for it to settle again",
    )


def _still_written(case: Case) -> Move:
    """A quiet file that a process still has open: its quiet time starts again."""
    reason = f"{case.error}; waiting for it to finish"
    changes: dict[str, object] = {
        "settle_since": case.now,
        "next_attempt_at": case.now + max(case.policy.settle, WRITER_RECHECK_SECONDS),
    }
    if reason == case.job.reason:
        return Move(changes=changes)  # the same writer: nothing to say again
    return Move(changes={**changes, "reason": reason}, message=f"not complete yet: {reason}")


def _incomplete(case: Case) -> Move:
    """A file whose container is cut short waits for the rest; after a while it fails."""
    reason, job = str(case.error), case.job
    if job.incomplete_since is None:
        return Move(
            changes={"reason": reason, "incomplete_since": case.now},
            level="warning",
            message=f"not complete yet: {reason}; waiting for the rest of the file",
        )
    waited = case.now - job.incomplete_since
    if waited >= case.policy.incomplete_after:
        return _failed(f"{reason} (unchanged for {waited:.0f} s)")
    return Move(changes={"reason": reason} if reason != job.reason else {})


def _hold(case: Case) -> Move:
    assert isinstance(case.error, HoldError)
    error = case.error
    hold = _hold_request(case)
    message = f"on hold for the whole account: {error.reason}"
    if case.stage != Stage.UPLOAD:
        # An auth hold pauses these stages, and they take the job up again once it lifts. A
        # video limit does not stop them, but what it refused (a thumbnail is an upload too)
        # waits for the hold to lift, or the first probe at the latest.
        if error.kind == "auth":
            return Move(hold=hold, level="error", message=message)
        later = {
            **_later(case, case.now + hold.first_probe_in),
            "reason": HOLD_REASON_PREFIX + error.reason,
        }
        return Move(changes=later, hold=hold, level="error", message=message)
    return Move(
        to=JobState.QUEUED,
        note=f"on hold: {error.reason}",
        changes={"reason": HOLD_REASON_PREFIX + error.reason},
        hold=hold,
        level="error",
        message=message,
    )


def _hold_request(case: Case) -> HoldRequest:
    """The hold an error asks for; under a video limit the account is looked at once at
    once, then every ROOM_CHECK_SECONDS (a cheap request), so that no upload probe is sent
    while it is full and uploads resume soon after room appears."""
    assert isinstance(case.error, HoldError)
    error = case.error
    check = 0.0 if error.kind == "video_limit" else None
    return HoldRequest(error.kind, str(error), case.policy.first_probe_in, check)


def _transient(case: Case) -> Move:
    assert isinstance(case.error, TransientError)
    error, job, policy = case.error, case.job, case.policy
    if case.stage == Stage.POLL:  # polls count no attempts: processing_timeout bounds them
        interval = policy.poll.after(job.poll_interval)
        wait = max(interval, error.retry_after or 0.0)
        return Move(
            changes={
                "next_poll_at": case.now + wait,
                "poll_interval": interval,
                "reason": f"could not ask Wistia about it; trying again: {error.reason}",
            },
            level="warning",
            message=f"could not poll the media; trying again: {error.reason}",
        )
    attempts = job.attempts + 1
    if attempts >= policy.max_attempts:
        message = f"gave up after {attempts} attempts; last error: {error.reason}"
        return Move(
            to=JobState.FAILED,
            note=message,
            changes={"attempts": attempts, "error": error.reason},
            level="error",
            message=message,
        )
    wait = policy.retry.seconds(attempts, error.retry_after)
    retry = {
        "attempts": attempts,
        "error": error.reason,
        "next_attempt_at": case.now + wait,
        "reason": f"retry {attempts + 1} of {policy.max_attempts} after: {error.reason}",
    }
    message = f"attempt {attempts} of {policy.max_attempts} failed: {error.reason}"
    if case.stage == Stage.UPLOAD:
        return Move(
            to=JobState.QUEUED, note=message, changes=retry, level="warning", message=message
        )
    return Move(changes=retry, level="warning", message=message)


def _not_found(case: Case) -> Move:
    messages = {
        Stage.POLL: "the media was deleted in Wistia (404) before processing finished",
        Stage.FINISH: "the media was deleted in Wistia before it was finished",
    }
    assert isinstance(case.error, NotFoundError)
    return _failed(messages.get(case.stage, case.error.reason))


def _permanent(case: Case) -> Move:
    assert isinstance(case.error, PermanentError)
    return _failed(case.error.reason)


def _later(case: Case, at: float) -> dict[str, object]:
    """When the stage looks at the job again: polls have their own column."""
    return {"next_poll_at": at} if case.stage == Stage.POLL else {"next_attempt_at": at}


def _failed(message: str) -> Move:
    return Move(
        to=JobState.FAILED, note=message, changes={"error": message}, level="error", message=message
    )


def _bad_input(case: Case) -> Move:
    assert isinstance(case.error, JobInputError)
    error = case.error
    if error.fatal:
        return _failed(error.reason)
    if case.stage == Stage.RECHECK:
        if str(error) == case.job.reason:
            return Move()  # the same problem: nothing to write, nothing to log
        return Move(changes={"reason": str(error)}, message=f"still held: {error.reason}")
    return Move(
        to=JobState.HELD,
        note=error.reason,
        changes={"reason": str(error)},
        level="warning",
        message=f"held until the problem is fixed: {error.reason}",
    )


def _unexpected(case: Case) -> Move:
    text = " ".join(str(case.error).split())[:300]
    message = f"internal error: {type(case.error).__name__}: {text}"
    return Move(
        to=JobState.FAILED,
        note=message,
        changes={"error": message},
        level="error",
        message=message,
        traceback=True,
    )


# First match wins: subclasses before their bases.
RULES: list[tuple[type[BaseException], Callable[[Case], Move]]] = [
    (StaleTransition, _stale),
    (Cancelled, _cancelled),
    (WatchFolderMissing, _folder_missing),
    (FileChanged, _file_changed),
    (StillWritten, _still_written),
    (IncompleteContainer, _incomplete),
    (HoldError, _hold),
    (TransientError, _transient),
    (NotFoundError, _not_found),
    (PermanentError, _permanent),
    (JobInputError, _bad_input),
    (Exception, _unexpected),
]
