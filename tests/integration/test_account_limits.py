"""The account out of room (issue 21): a full account costs no upload, room is seen within 15 s,
a storage limit holds too, a thumbnail refused for the limit joins the hold, and `status` and
`check` show the media count against the limit."""

from __future__ import annotations

import itertools
import signal
import time

from ingestd.core.jobs import JobState
from tests.conftest import DaemonProcess, wait_until, write_config, write_media


def uploads_since(daemon: DaemonProcess, since: float) -> list:
    return [r for r in daemon.sandbox.records if r.is_upload and r.started >= since]


def account_looks_since(daemon: DaemonProcess, since: float) -> list:
    return [
        r
        for r in daemon.sandbox.records
        if r.method == "GET" and r.path == "/v1/account.json" and r.started >= since
    ]


def full_account(daemon_factory, sizes: list[int]) -> tuple[DaemonProcess, list]:
    """An account with room for two medias, and more files than that waiting."""
    daemon = daemon_factory()
    daemon.sandbox.store.processing_seconds = 0.5
    daemon.sandbox.faults.update(video_limit=2)
    clips = [daemon.watch / f"v{n}.mp4" for n in range(len(sizes))]
    for n, (clip, size) in enumerate(zip(clips, sizes, strict=True)):
        write_media(clip, size, seed=n)
    daemon.start()
    wait_until(lambda: daemon.status_json()["hold"], what="the video-limit hold")
    wait_until(lambda: daemon.status_json()["counts"]["done"] == 2, what="two done under hold")
    return daemon, clips


def test_a_full_account_costs_no_upload_and_uploads_resume_within_15_s_of_room(
    daemon_factory,
) -> None:
    """While account.json shows mediaCount >= videoLimit the probe is that cheap request, and
    no upload is sent; once it shows room, the smallest waiting file goes within 15 s."""
    sizes = [30_000, 30_000, 90_000, 20_000, 60_000]
    daemon, clips = full_account(daemon_factory, sizes)
    held = time.time()
    wait_until(lambda: len(account_looks_since(daemon, held)) >= 2, timeout=30, what="two looks")
    view = daemon.status_json()
    assert view["hold"]["kind"] == "video_limit" and view["hold"]["room"] == "none"
    assert view["hold"]["next_probe_at"] is None  # no upload probe while the account is full
    assert view["account"]["shown"] == "media 2 of 2"
    assert "media 2 of 2" in daemon.cli("status").stdout
    assert uploads_since(daemon, held) == []  # the looks cost no upload
    looks = account_looks_since(daemon, held)
    gaps = [b.started - a.started for a, b in itertools.pairwise(looks)]
    assert all(gap <= 15.0 for gap in gaps), gaps

    room = time.time()
    daemon.sandbox.faults.update(video_limit=10)  # the customer upgraded
    first = wait_until(lambda: uploads_since(daemon, room), timeout=20, what="the first upload")
    assert first[0].started - room <= 15.0
    # The probe is the smallest waiting file.
    smallest = min(clips[2:], key=lambda clip: clip.stat().st_size)
    assert first[0].files["file"]["size"] == smallest.stat().st_size
    for clip in clips:
        assert daemon.wait_state(clip, JobState.DONE, timeout=30).attempts == 0
    assert daemon.status_json()["hold"] is None
    refused = [r for r in daemon.sandbox.records if r.is_upload and r.status == 400]
    # The uploads already on their way when the limit was met; never a probe.
    assert refused and all(r.started < held for r in refused)


def test_sighup_looks_at_the_account_at_once(daemon_factory) -> None:
    daemon, clips = full_account(daemon_factory, [30_000, 30_000, 40_000])
    held = time.time()
    wait_until(lambda: account_looks_since(daemon, held), timeout=20, what="a first look")
    daemon.sandbox.faults.update(video_limit=10)
    hup = time.time()
    daemon.proc.send_signal(signal.SIGHUP)
    first = wait_until(lambda: uploads_since(daemon, hup), timeout=20, what="an upload")
    assert first[0].started - hup < 5.0  # not the next scheduled look, ten seconds on
    daemon.wait_state(clips[2], JobState.DONE, timeout=30)


def test_a_storage_limit_refusal_holds_and_probes_with_uploads_of_the_smallest_file(
    daemon_factory,
) -> None:
    """account.json cannot tell a storage limit: the probe is an upload of the smallest
    waiting file, one at a time, on a growing interval; the jobs are never failed."""
    daemon = daemon_factory()
    daemon.sandbox.store.processing_seconds = 0.5
    daemon.sandbox.faults.update(storage_limit=100_000)
    sizes = [60_000, 70_000, 45_000, 50_000]  # none of the rest fits beside the first
    clips = [daemon.watch / f"s{n}.mp4" for n in range(len(sizes))]
    write_media(clips[0], sizes[0], seed=0)
    daemon.start()
    daemon.wait_state(clips[0], JobState.DONE)
    for n in range(1, len(sizes)):
        write_media(clips[n], sizes[n], seed=n)
    hold = wait_until(lambda: daemon.status_json()["hold"], what="the storage-limit hold")
    assert hold["kind"] == "video_limit" and "storage limit" in hold["reason"]
    started = time.time()
    wait_until(
        lambda: len([r for r in uploads_since(daemon, started) if r.status == 400]) >= 3,
        timeout=20,
        what="three probes",
    )
    probes = [r for r in uploads_since(daemon, started) if r.status == 400]
    assert {r.files["file"]["size"] for r in probes} == {min(sizes[1:])}  # the smallest
    for earlier, later in itertools.pairwise(probes):
        assert later.started >= earlier.finished, "two probes at once"
    gaps = [b.started - a.started for a, b in itertools.pairwise(probes)]
    assert all(gap >= 0.4 for gap in gaps), f"probes too close together: {gaps}"
    assert gaps == sorted(gaps) or max(gaps) >= 1.5, f"probe intervals did not grow: {gaps}"
    view = daemon.status_json()
    waiting = [j for j in view["jobs"] if j["state"] in ("queued", "uploading")]
    assert len(waiting) == 3 and all(j["attempts"] == 0 for j in waiting)

    daemon.sandbox.faults.update(storage_limit=None)
    for clip in clips:
        assert daemon.wait_state(clip, JobState.DONE, timeout=30).attempts == 0
    assert daemon.status_json()["hold"] is None


def test_a_thumbnail_refused_for_the_limit_joins_the_hold(daemon_factory) -> None:
    """The image is a media too: refused for the limit, the job waits under the hold (not
    failed) and its still is set once there is room."""
    daemon = daemon_factory()
    daemon.sandbox.store.processing_seconds = 0.3
    daemon.sandbox.faults.update(video_limit=1)
    clip = daemon.watch / "launch.mp4"
    (daemon.watch / "launch.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 2000)
    write_media(clip, seed=1)
    daemon.start()
    hold = wait_until(lambda: daemon.status_json()["hold"], what="the hold")
    assert hold["kind"] == "video_limit"
    job = daemon.wait_state(clip, JobState.FINISHING)
    wait_until(
        lambda: (daemon.job_for(clip).reason or "").startswith("hold: "),
        what="the job waiting on the hold",
    )
    assert daemon.job_for(clip).state == JobState.FINISHING
    room = time.time()
    daemon.sandbox.faults.update(video_limit=5)
    job = daemon.wait_state(clip, JobState.DONE, timeout=30)
    assert time.time() - room < 20
    video = daemon.sandbox.store.medias[job.hashed_id]
    assert video.still is not None
    assert daemon.sandbox.store.medias[video.still].type == "Image"
    assert daemon.status_json()["hold"] is None


def test_check_shows_the_media_count_and_warns_near_the_limit(daemon_factory) -> None:
    daemon = daemon_factory()
    write_config(daemon.config_path, daemon.config)
    daemon.sandbox.faults.update(video_limit=10)
    for n in range(9):
        daemon.sandbox.add_media(f"existing {n}.mp4", size=1000 + n)
    result = daemon.cli("check")
    assert "media 9 of 10" in result.stdout and "over 90% full" in result.stdout
    daemon.sandbox.faults.update(video_limit=None)
    result = daemon.cli("check")
    assert "no media limit given" in result.stdout
