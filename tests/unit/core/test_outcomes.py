"""The outcome policy, row by row: (job, stage, outcome, now) -> the move. Pure: no I/O."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tenacity

from ingestd.core.backoff import Backoff
from ingestd.core.errors import (
    AuthError,
    Cancelled,
    FileChanged,
    JobInputError,
    MediaFailed,
    NotFoundError,
    PermanentError,
    TransientError,
    VideoLimitError,
    WatchFolderMissing,
)
from ingestd.core.jobs import Job, JobState, Move, StaleTransition, can_move
from ingestd.core.outcomes import Policy, Stage, decide, release
from ingestd.ledger import Ledger

S = JobState
NOW = 1_000_000.0
POLICY = Policy(
    max_attempts=3,
    retry=Backoff(5.0, 600.0),  # no jitter: exact numbers
    poll=Backoff(5.0, 60.0, factor=1.5),
    first_probe_in=60.0,
    settle=5.0,
    incomplete_after=3600.0,
)
JOB = Job(
    id=7,
    path="/w/clip.mp4",
    kind="file",
    state=S.UPLOADING,
    size=10,
    mtime_ns=1,
    sha256="aa",
    attempts=0,
)


def job(state: JobState = S.UPLOADING, **changes: object) -> Job:
    return JOB._replace(state=state, **changes)


# --- one test per row of the table in outcomes.py ------------------------------------------------


@pytest.mark.parametrize("stage", list(Stage))
def test_a_lost_race_writes_nothing(stage: Stage) -> None:
    move = decide(job(), stage, StaleTransition("job 7 is no longer uploading"), NOW, POLICY)
    assert not move.writes


def test_a_stop_mid_upload_requeues_without_an_attempt() -> None:
    move = decide(job(), Stage.UPLOAD, Cancelled(), NOW, POLICY)
    assert move.to == S.QUEUED and not move.counts_attempt
    assert "interrupted by a stop" in move.changes["reason"]
    assert not decide(job(S.PROCESSING), Stage.POLL, Cancelled(), NOW, POLICY).writes


def test_a_missing_watch_folder_waits_without_an_attempt() -> None:
    missing = WatchFolderMissing("the watch folder /w is missing")
    upload = decide(job(), Stage.UPLOAD, missing, NOW, POLICY)
    assert upload.to == S.QUEUED and not upload.counts_attempt
    assert upload.changes["next_attempt_at"] == NOW + 10.0
    finish = decide(job(S.FINISHING), Stage.FINISH, missing, NOW, POLICY)
    assert finish.to is None and finish.changes["next_attempt_at"] == NOW + 10.0
    assert not decide(job(S.HELD), Stage.RECHECK, missing, NOW, POLICY).writes


@pytest.mark.parametrize("stage", [Stage.UPLOAD, Stage.RECHECK])
def test_a_changed_file_settles_again_keeping_what_its_attempt_sent(stage: Stage) -> None:
    stat = os.stat_result((0o100644, 1, 1, 1, 0, 0, 20, 0, 0, 0))
    move = decide(job(upload_started_at=NOW - 5), stage, FileChanged(stat), NOW, POLICY)
    assert move.to == S.SETTLING and not move.counts_attempt
    assert move.changes["size"] == 20 and move.changes["sha256"] is None
    assert move.changes["settle_since"] == NOW
    # Kept for a reconcile, valid only if the bytes hash the same again (Job.attempted).
    assert "upload_started_at" not in move.changes and "media_name" not in move.changes


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (VideoLimitError("Wistia: exceeded its video limit"), "video_limit"),
        (AuthError("Wistia refused the API token (HTTP 401)"), "auth"),
    ],
)
def test_a_hold_stops_the_account_and_counts_no_attempt(error: Exception, kind: str) -> None:
    move = decide(job(attempts=2), Stage.UPLOAD, error, NOW, POLICY)
    assert move.to == S.QUEUED and not move.counts_attempt
    assert move.hold is not None and move.hold.kind == kind
    assert move.hold.first_probe_in == 60.0
    assert move.changes["reason"].startswith("hold: ")


def test_an_auth_hold_while_polling_or_finishing_keeps_the_job_where_it_is() -> None:
    error = AuthError("Wistia refused the API token (HTTP 401)")
    for stage, state in ((Stage.POLL, S.PROCESSING), (Stage.FINISH, S.FINISHING)):
        move = decide(job(state), stage, error, NOW, POLICY)
        assert move.to is None and move.hold.kind == "auth" and not move.changes


def test_a_transient_upload_error_counts_an_attempt_and_backs_off() -> None:
    move = decide(job(attempts=0), Stage.UPLOAD, TransientError("HTTP 500"), NOW, POLICY)
    assert move.to == S.QUEUED and move.changes["attempts"] == 1
    assert move.changes["next_attempt_at"] == NOW + 5.0
    assert move.changes["reason"] == "retry 2 of 3 after: HTTP 500"
    second = decide(job(attempts=1), Stage.UPLOAD, TransientError("HTTP 500"), NOW, POLICY)
    assert second.changes["next_attempt_at"] == NOW + 10.0  # the backoff grows


def test_retry_after_is_obeyed_exactly() -> None:
    limited = TransientError("HTTP 429", retry_after=42.0)
    move = decide(job(attempts=0), Stage.UPLOAD, limited, NOW, POLICY)
    assert move.changes["next_attempt_at"] == NOW + 42.0


def test_the_last_attempt_fails_the_job_with_the_last_error() -> None:
    move = decide(job(attempts=2), Stage.UPLOAD, TransientError("HTTP 502"), NOW, POLICY)
    assert move.to == S.FAILED and move.changes == {"attempts": 3, "error": "HTTP 502"}
    assert move.note == "gave up after 3 attempts; last error: HTTP 502"


def test_a_transient_finishing_error_stays_finishing_with_an_attempt() -> None:
    move = decide(job(S.FINISHING), Stage.FINISH, TransientError("HTTP 503"), NOW, POLICY)
    assert move.to is None and move.changes["attempts"] == 1
    assert move.changes["next_attempt_at"] == NOW + 5.0


def test_a_transient_poll_error_polls_later_without_an_attempt() -> None:
    polled = job(S.PROCESSING, poll_interval=10.0)
    move = decide(polled, Stage.POLL, TransientError("timed out"), NOW, POLICY)
    assert move.to is None and not move.counts_attempt
    assert move.changes["poll_interval"] == 15.0 and move.changes["next_poll_at"] == NOW + 15.0
    told = decide(polled, Stage.POLL, TransientError("429", retry_after=40.0), NOW, POLICY)
    assert told.changes["next_poll_at"] == NOW + 40.0


@pytest.mark.parametrize(
    ("stage", "state", "text"),
    [
        (Stage.POLL, S.PROCESSING, "deleted in Wistia (404) before processing finished"),
        (Stage.FINISH, S.FINISHING, "deleted in Wistia before it was finished"),
        (Stage.UPLOAD, S.UPLOADING, "Wistia: not found"),
    ],
)
def test_a_media_deleted_in_wistia_fails_the_job(stage: Stage, state: JobState, text: str) -> None:
    move = decide(job(state), stage, NotFoundError("Wistia: not found (HTTP 404)"), NOW, POLICY)
    assert move.to == S.FAILED and text in move.changes["error"]


def test_a_permanent_error_fails_with_wistias_message() -> None:
    error = PermanentError("Wistia refused the request (HTTP 400): Project not found: x")
    move = decide(job(), Stage.UPLOAD, error, NOW, POLICY)
    assert move.to == S.FAILED and not move.counts_attempt
    assert move.changes["error"] == error.reason


def test_a_media_failed_in_wistia_fails_the_job() -> None:
    error = MediaFailed("Wistia could not process the media (status failed)")
    move = decide(job(S.PROCESSING), Stage.POLL, error, NOW, POLICY)
    assert move.to == S.FAILED and "could not process" in move.changes["error"]


@pytest.mark.parametrize("stage", [Stage.SETTLE, Stage.UPLOAD, Stage.FINISH])
def test_bad_input_holds_the_job_with_the_reason_and_the_fix(stage: Stage) -> None:
    error = JobInputError("clip.json, line 1 column 2: Expecting value", "fix the JSON")
    move = decide(job(), stage, error, NOW, POLICY)
    assert move.to == S.HELD and not move.counts_attempt
    assert move.changes["reason"] == "clip.json, line 1 column 2: Expecting value (fix the JSON)"


def test_fatal_bad_input_fails_the_job() -> None:
    error = JobInputError("the file vanished before it could be uploaded", fatal=True)
    move = decide(job(), Stage.UPLOAD, error, NOW, POLICY)
    assert move.to == S.FAILED and move.changes["error"] == error.reason


def test_a_recheck_that_finds_the_same_problem_writes_nothing() -> None:
    error = JobInputError("clip.json: bad", "fix it")
    held = job(S.HELD, reason=str(error))
    assert not decide(held, Stage.RECHECK, error, NOW, POLICY).writes
    other = JobInputError("clip.json: worse", "fix it")
    move = decide(held, Stage.RECHECK, other, NOW, POLICY)
    assert move.to is None and move.changes == {"reason": str(other)}  # no event


@pytest.mark.parametrize("stage", [s for s in Stage if s != Stage.RESYNC])  # done stays done
def test_an_unexpected_exception_fails_the_job_with_its_type_and_a_traceback(stage) -> None:
    move = decide(job(), stage, ValueError("Out of range float values"), NOW, POLICY)
    assert move.to == S.FAILED and move.traceback
    assert move.changes["error"] == "internal error: ValueError: Out of range float values"


@pytest.mark.parametrize(
    ("progress", "target"),
    [
        ({"sha256": None}, S.SETTLING),
        ({"sha256": "aa", "hashed_id": None}, S.QUEUED),
        ({"sha256": "aa", "hashed_id": "h1"}, S.FINISHING),
    ],
)
def test_a_released_job_resumes_where_it_got_to(progress: dict, target: JobState) -> None:
    move = release(job(S.HELD, **progress), NOW)
    assert move.to == target and move.note == "problem fixed"
    assert move.changes.get("settle_since", NOW) == NOW


OWNED = {
    Stage.SETTLE: S.SETTLING,
    Stage.UPLOAD: S.UPLOADING,
    Stage.POLL: S.PROCESSING,
    Stage.FINISH: S.FINISHING,
    Stage.RECHECK: S.HELD,
    Stage.RESYNC: S.DONE,
}
EVERY_OUTCOME = [
    StaleTransition("x"),
    Cancelled(),
    WatchFolderMissing("gone"),
    FileChanged(os.stat_result((0o100644, 1, 1, 1, 0, 0, 20, 0, 0, 0))),
    VideoLimitError("limit"),
    AuthError("401"),
    TransientError("500"),
    NotFoundError("404"),
    MediaFailed("failed"),
    PermanentError("400"),
    JobInputError("bad"),
    JobInputError("gone", fatal=True),
    RecursionError("deep"),
]


@pytest.mark.parametrize("stage", list(Stage))
@pytest.mark.parametrize("error", EVERY_OUTCOME, ids=lambda e: type(e).__name__)
def test_every_outcome_in_every_stage_is_a_move_the_state_machine_allows(stage, error) -> None:
    state = OWNED[stage]
    move = decide(job(state, hashed_id=None), stage, error, NOW, POLICY)
    assert move.to is None or can_move(state, move.to)


@pytest.mark.parametrize("error", EVERY_OUTCOME, ids=lambda e: type(e).__name__)
def test_a_resync_never_moves_a_done_job(error) -> None:
    move = decide(job(S.DONE, hashed_id="abc"), Stage.RESYNC, error, NOW, POLICY)
    assert move.to is None
    if isinstance(error, TransientError):
        assert move.changes["resync_due_at"] > NOW  # tried again later
    elif isinstance(error, NotFoundError):
        assert "deleted in Wistia" in move.changes["reason"] and not move.changes["resync_due_at"]


def test_a_move_the_state_machine_refuses_fails_the_job_instead() -> None:
    move = decide(job(S.PROCESSING), Stage.POLL, JobInputError("bad"), NOW, POLICY)
    assert move.to == S.FAILED and "InvalidTransition: processing -> held" in move.changes["error"]


# --- the backoff law -----------------------------------------------------------------------


def test_backoff_grows_to_its_cap_and_obeys_retry_after() -> None:
    backoff = Backoff(1.0, 10.0, jitter=1.0, rng=lambda: 0.5)
    assert [backoff.seconds(n) for n in range(1, 7)] == [1.5, 2.5, 4.5, 8.5, 10.0, 10.0]
    assert backoff.seconds(1, retry_after=42.0) == 42.0
    assert backoff.seconds(10_000) == 10.0  # no overflow
    assert [backoff.after(None), backoff.after(4.0), backoff.after(8.0)] == [1.0, 8.0, 10.0]


def test_backoff_is_tenacitys_wait_strategy_too() -> None:
    waits: list[float] = []
    attempts = iter([TransientError("429", retry_after=3.0), TransientError("500"), None])

    def call() -> str:
        error = next(attempts)
        if error is not None:
            raise error
        return "ok"

    retrying = tenacity.Retrying(
        wait=Backoff(1.0, 10.0), sleep=waits.append, stop=tenacity.stop_after_attempt(5)
    )
    assert retrying(call) == "ok"
    assert waits == [3.0, 2.0]  # Retry-After exactly, then the second step of the law


# --- the ledger makes the move -------------------------------------------------------------------


def test_ledger_applies_moves_holds_and_nothing(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db")
    queued = ledger.settling.settle(ledger.settling.add("/w/a.mp4", "file", 10, 1), "aa")
    uploading = ledger.uploads.claim()
    events = len(ledger.jobs.events(queued.id))
    assert ledger.apply(uploading, Move()) == uploading
    assert len(ledger.jobs.events(queued.id)) == events  # an empty move writes nothing

    move = decide(uploading, Stage.UPLOAD, VideoLimitError("limit"), NOW, POLICY)
    requeued = ledger.apply(uploading, move)
    assert requeued.state == S.QUEUED and requeued.attempts == 0
    assert ledger.hold.current().kind == "video_limit"
    assert ledger.jobs.events(queued.id)[-1].note == "on hold: limit"
    with pytest.raises(StaleTransition):
        ledger.apply(uploading, move)  # it is no longer uploading
    ledger.close()
