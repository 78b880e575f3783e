"""The failure policy under faults: rate limits, holds, permanent errors, timeouts."""

from __future__ import annotations

import signal
import time
from email.utils import parsedate_to_datetime

import pytest

from ingestd.core.jobs import JobState
from tests.conftest import DaemonProcess, wait_until, write_media


def retry_after_deadline(record) -> float:
    """When the client may send again, by the Retry-After the sandbox answered."""
    value = record.response_headers["Retry-After"]
    if value.isdigit():
        return record.finished + int(value)
    return parsedate_to_datetime(value).timestamp()


@pytest.mark.parametrize(
    ("status", "as_date"),
    [(429, False), (429, True), (503, False)],
    ids=["429-seconds", "429-http-date", "503-seconds"],
)
def test_no_request_leaves_before_retry_after_expires(
    daemon_factory, status: int, as_date: bool
) -> None:
    daemon: DaemonProcess = daemon_factory(ingest={"retry_min_seconds": 0.1})
    daemon.sandbox.faults.update(
        rate_limit_per_minute=4,
        rate_window_seconds=4.0,
        rate_limit_status=status,
        retry_after_as_date=as_date,
    )
    clips = [daemon.watch / f"r{n}.mp4" for n in range(5)]
    for n, clip in enumerate(clips):
        write_media(clip, 50_000, seed=n)
    daemon.start()
    for clip in clips:
        daemon.wait_state(clip, JobState.DONE, timeout=60)

    records = sorted(daemon.sandbox.records, key=lambda r: r.started)
    limited = [r for r in records if r.status == status]
    assert limited, "the rate limit never triggered; the test tested nothing"
    for answer in limited:
        deadline = retry_after_deadline(answer)
        # Requests already on their way when the 429 left are allowed; nothing sent after it.
        early = [r for r in records if answer.finished + 0.5 < r.started < deadline - 0.05]
        assert not early, f"{len(early)} request(s) before Retry-After expired ({status})"


def test_client_limiter_keeps_under_requests_per_minute(daemon_factory) -> None:
    daemon = daemon_factory(wistia={"requests_per_minute": 12})
    clips = [daemon.watch / f"c{n}.mp4" for n in range(16)]
    for n, clip in enumerate(clips):
        write_media(clip, 20_000, seed=n)
    daemon.start()
    first = wait_until(lambda: daemon.sandbox.records, what="first request")[0].started
    # Sixteen files need at least 16 uploads and a poll; watch for 8 s.
    wait_until(lambda: time.time() > first + 8, timeout=15, what="8 s of work")
    sent = [r for r in daemon.sandbox.records if r.started < first + 8]
    assert len(sent) == 12, f"{len(sent)} requests in the first 8 s with a budget of 12/min"
    states = {j.state for j in daemon.jobs()}
    assert JobState.QUEUED in states or JobState.PROCESSING in states  # still waiting on budget


def test_refused_token_holds_everything_until_a_probe_succeeds(daemon_factory) -> None:
    daemon = daemon_factory()
    daemon.sandbox.faults.update(auth_fail=True)
    clip = daemon.watch / "a.mp4"
    write_media(clip, seed=1)
    daemon.start()
    hold = wait_until(lambda: daemon.status_json()["hold"], what="auth hold")
    assert hold["kind"] == "auth" and "HTTP 401" in hold["reason"]
    assert "SIGHUP" in hold["reason"]  # says how to fix it
    wait_until(
        lambda: len([r for r in daemon.sandbox.records if r.path == "/v1/account.json"]) >= 2,
        what="auth probes",
    )
    job = daemon.job_for(clip)
    assert job.state == JobState.QUEUED and job.attempts == 0
    uploads_while_held = [r for r in daemon.sandbox.records if r.is_upload]
    # At most the one that found out (the file is older than the ledger, so the look for it
    # in Wistia may find out first, and then no upload is sent at all); nothing since.
    assert len(uploads_while_held) <= 1

    daemon.sandbox.faults.update(auth_fail=False)
    daemon.wait_state(clip, JobState.DONE)
    assert daemon.status_json()["hold"] is None


def test_sighup_with_a_new_token_lifts_the_auth_hold(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"probe_min_seconds": 60, "probe_max_seconds": 60})
    daemon.config["wistia"]["api_token"] = "an-old-revoked-token"
    clip = daemon.watch / "b.mp4"
    write_media(clip, seed=2)
    daemon.start()
    wait_until(lambda: daemon.status_json()["hold"], what="auth hold")

    from tests.conftest import TOKEN, write_config

    daemon.config["wistia"]["api_token"] = TOKEN
    write_config(daemon.config_path, daemon.config)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_state(clip, JobState.DONE)
    assert "config reloaded" in daemon.logs()


def test_bad_config_on_sighup_is_rejected_and_the_daemon_goes_on(daemon: DaemonProcess) -> None:
    daemon.config_path.write_text("watch_dir = [not toml", encoding="utf-8")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "config reload rejected" in daemon.logs(), what="reload rejected")
    clip = daemon.watch / "after.mp4"
    write_media(clip, seed=3)
    daemon.wait_state(clip, JobState.DONE)


def test_other_4xx_on_upload_fails_the_job_with_wistias_message(daemon_factory) -> None:
    daemon = daemon_factory(wistia={"project_id": "nosuchproj"}).start()
    clip = daemon.watch / "lost.mp4"
    write_media(clip, seed=4)
    job = daemon.wait_state(clip, JobState.FAILED)
    assert "the project nosuchproj is not in this Wistia account" in job.error
    assert "The project_id given is not valid" in job.error and job.attempts == 0
    assert len([r for r in daemon.sandbox.records if r.is_upload]) == 1  # not retried
    assert any(r.path == "/v1/projects/nosuchproj.json" for r in daemon.sandbox.records)


def test_media_failed_in_wistia_fails_the_job(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"extensions": ["mp4", "bin"]}).start()
    clip = daemon.watch / "not-a-video.bin"
    write_media(clip, seed=5)
    job = daemon.wait_state(clip, JobState.FAILED)
    assert "could not process" in job.error


def test_media_deleted_in_wistia_while_processing_fails_the_job(daemon: DaemonProcess) -> None:
    daemon.sandbox.store.processing_seconds = 5.0
    clip = daemon.watch / "gone.mp4"
    write_media(clip, seed=6)
    job = daemon.wait_state(clip, JobState.PROCESSING)
    daemon.sandbox.store.delete_media(job.hashed_id)
    failed = daemon.wait_state(clip, JobState.FAILED)
    assert "deleted in Wistia" in failed.error


def test_processing_longer_than_the_limit_fails_the_job(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"processing_timeout_seconds": 1.0}).start()
    daemon.sandbox.store.processing_seconds = 30.0
    clip = daemon.watch / "slowpoke.mp4"
    write_media(clip, seed=7)
    job = daemon.wait_state(clip, JobState.FAILED, timeout=15)
    assert "giving up" in job.error


def test_read_timeout_after_the_upload_is_reconciled_not_duplicated(daemon_factory) -> None:
    daemon = daemon_factory(wistia={"upload_timeout_seconds": 1.0}).start()
    daemon.sandbox.faults.update(slow_upload_seconds=3)
    clip = daemon.watch / "timeout.mp4"
    write_media(clip, seed=8)
    wait_until(
        lambda: daemon.job_for(clip) and daemon.job_for(clip).attempts >= 1,
        what="a timed-out attempt",
    )
    daemon.sandbox.faults.update(slow_upload_seconds=0)
    job = daemon.wait_state(clip, JobState.DONE)
    assert len(daemon.sandbox.store.medias) == 1  # the slow answer's media was found by name
    assert job.hashed_id in daemon.sandbox.store.medias


def test_dropped_connections_and_server_errors_are_survived(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"max_attempts": 30})
    daemon.sandbox.faults.update(drop_uploads=2, error_rate=0.2, seed=11)
    clips = [daemon.watch / f"d{n}.mp4" for n in range(4)]
    for n, clip in enumerate(clips):
        write_media(clip, 300_000, seed=n)
    daemon.start()
    for clip in clips:
        daemon.wait_state(clip, JobState.DONE, timeout=60)
    assert any(r.dropped for r in daemon.sandbox.records)
    assert len(daemon.sandbox.store.medias) == 4
