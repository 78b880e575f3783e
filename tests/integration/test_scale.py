"""Scale (issue 10), as behaviour: batch polling and its fallback, the polls' share of the
request budget, the bandwidth limit and the upload hours, each reloaded on SIGHUP. (Figures
come from benchmarks/, never from tests.)"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta

from ingestd.core.jobs import JobState
from tests.conftest import DaemonProcess, wait_until, write_config, write_media


def lists(daemon: DaemonProcess) -> list:
    return [r for r in daemon.sandbox.records if r.path == "/v1/medias.json"]


def single_polls(daemon: DaemonProcess) -> list:
    return [
        r for r in daemon.sandbox.records if r.method == "GET" and r.path.startswith("/v1/medias/")
    ]


def test_many_medias_in_processing_are_polled_with_one_list(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"poll_min_seconds": 0.5, "poll_max_seconds": 1.0})
    daemon.sandbox.store.processing_seconds = 3.0
    daemon.start()  # the files are newer than the ledger: nothing to look for in Wistia first
    clips = [daemon.watch / f"m{n:02}.mp4" for n in range(12)]
    for n, clip in enumerate(clips):
        write_media(clip, 5_000, seed=n)
    for clip in clips:
        daemon.wait_state(clip, JobState.DONE)
    assert lists(daemon) and all(r.query["sort_by"] == "updated" for r in lists(daemon))
    assert single_polls(daemon) == []  # every answer came from a list
    assert len(daemon.sandbox.records) <= 1.5 * len(clips)


def test_a_media_no_list_shows_is_polled_on_its_own(daemon_factory) -> None:
    daemon = daemon_factory().start()
    daemon.sandbox.faults.update(list_lag_seconds=3600)  # the lists lag an hour behind
    clip = daemon.watch / "unlisted.mp4"
    write_media(clip, seed=1)
    job = daemon.wait_state(clip, JobState.DONE)
    polled = single_polls(daemon)
    assert polled and all(r.path == f"/v1/medias/{job.hashed_id}.json" for r in polled)
    assert lists(daemon)  # asked first, in vain


def test_a_list_that_breaks_falls_back_to_one_poll_per_media(daemon_factory) -> None:
    daemon = daemon_factory().start()
    daemon.sandbox.faults.update(list_fail_status=500)  # an HTML error page, every time
    clips = [daemon.watch / f"nolist{n}.mp4" for n in range(3)]
    for n, clip in enumerate(clips):
        write_media(clip, seed=n)
    jobs = [daemon.wait_state(clip, JobState.DONE) for clip in clips]
    assert all(job.attempts <= 1 for job in jobs)  # the list's trouble was not the jobs'
    polled = {r.path for r in single_polls(daemon)}
    assert {f"/v1/medias/{job.hashed_id}.json" for job in jobs} <= polled
    failed = lists(daemon)
    assert failed and all(r.status == 500 for r in failed)
    # the first failed list (with its retries) and no other: after it, one by one only
    assert failed[-1].finished <= min(r.started for r in single_polls(daemon))


def test_polls_never_take_more_than_their_share_of_the_budget(daemon_factory) -> None:
    daemon = daemon_factory(
        wistia={"requests_per_minute": 40},  # polls may take 10 a minute
        ingest={"batch_polling": False, "poll_min_seconds": 0.1, "poll_max_seconds": 0.2},
    )
    daemon.sandbox.store.processing_seconds = 120.0  # they all stay in processing
    clips = [daemon.watch / f"p{n:02}.mp4" for n in range(16)]
    for n, clip in enumerate(clips):
        write_media(clip, 5_000, seed=n)
    daemon.start()
    first = wait_until(lambda: daemon.sandbox.records, what="first request")[0].started
    wait_until(
        lambda: sum(r.is_upload for r in daemon.sandbox.records) == 16, timeout=30, what="uploads"
    )
    wait_until(lambda: len(single_polls(daemon)) >= 10, what="the polls' share used")
    capped = time.time()
    wait_until(lambda: time.time() > capped + 5, timeout=10, what="five more seconds")
    in_window = [r for r in single_polls(daemon) if r.started < first + 55]
    assert len(in_window) == 10  # a quarter of 40, however many polls are due


def upload_rate(daemon: DaemonProcess) -> float:
    """Bytes per second all uploads together moved, first start to last finish."""
    uploads = [r for r in daemon.sandbox.records if r.is_upload and r.status == 200]
    total = sum(r.files["file"]["size"] for r in uploads)
    return total / (max(r.finished for r in uploads) - min(r.started for r in uploads))


def test_upload_bandwidth_holds_all_uploads_together_and_reloads(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"upload_bandwidth": "300K", "workers": 3})
    clips = [daemon.watch / f"b{n}.mp4" for n in range(3)]
    for n, clip in enumerate(clips):
        write_media(clip, 600_000, seed=n)  # 1.8 MB at 300 KiB/s: about six seconds
    daemon.start()
    for clip in clips:
        daemon.wait_state(clip, JobState.DONE, timeout=40)
    limit = 300 * 1024
    assert limit * 0.7 < upload_rate(daemon) <= limit * 1.15

    daemon.config["ingest"]["upload_bandwidth"] = ""  # no limit, live
    write_config(daemon.config_path, daemon.config)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "no limit" in daemon.logs(), what="reload")
    fast = daemon.watch / "fast.mp4"
    write_media(fast, 3_000_000, seed=9)
    daemon.wait_state(fast, JobState.DONE)
    (upload,) = [r for r in daemon.sandbox.uploads() if r.files["file"]["size"] == 3_000_000]
    assert 3_000_000 / (upload.finished - upload.started) > limit * 3


def window_without_now() -> str:
    later = datetime.now() + timedelta(hours=2)
    return f"{later:%H}:00-{(later + timedelta(hours=1)):%H}:00"


def test_outside_the_upload_hours_jobs_wait_and_status_says_why(daemon_factory) -> None:
    hours = window_without_now()
    daemon = daemon_factory(ingest={"upload_hours": hours}).start()
    clip = daemon.watch / "tonight.mp4"
    write_media(clip, seed=3)
    daemon.wait_state(clip, JobState.QUEUED)
    shown = wait_until(
        lambda: next(
            (
                j
                for j in daemon.status_json()["jobs"]
                if j["reason"] and "upload hours" in j["reason"]
            ),
            None,
        ),
        what="the reason in status",
    )
    assert shown["reason"].startswith(f"outside the upload hours ({hours}): uploads start at")
    assert "outside the upload hours" in daemon.cli("status").stdout
    wait_until(lambda: "no new upload starts" in daemon.logs(), what="the log says so")
    assert daemon.sandbox.uploads() == [] and daemon.job_for(clip).state == JobState.QUEUED

    daemon.config["ingest"]["upload_hours"] = ""  # always, live
    write_config(daemon.config_path, daemon.config)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_state(clip, JobState.DONE)
