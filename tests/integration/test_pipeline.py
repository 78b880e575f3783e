"""The whole pipeline, real daemon against the real sandbox: from a file dropped to `done`."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ingestd.core.jobs import JobState
from tests.conftest import TOKEN, DaemonProcess, sha256, wait_until, write_media

SPEC_JOB_KEYS = {"id", "path", "state", "attempts", "error", "reason", "media_id", "hashed_id"}


def test_one_video_ends_done_with_its_exact_bytes(daemon: DaemonProcess) -> None:
    clip = daemon.watch / "clip.mp4"
    data = write_media(clip, 1_500_000)

    job = daemon.wait_state(clip, JobState.DONE)

    uploads = daemon.sandbox.uploads()
    assert len(uploads) == 1
    assert uploads[0].files["file"]["sha256"] == sha256(data)
    assert uploads[0].files["file"]["size"] == len(data)
    assert uploads[0].form["name"] == "clip.mp4"  # always sent: reconciling needs it
    media = daemon.sandbox.store.medias[job.hashed_id]
    assert media.file_path is not None and media.file_path.read_bytes() == data
    assert job.media_id == media.id

    view = daemon.status_json()
    assert view["counts"]["done"] == 1 and set(view["counts"]) == {s.value for s in JobState}
    assert view["hold"] is None
    (shown,) = view["jobs"]
    assert set(shown) >= SPEC_JOB_KEYS
    assert shown["path"] == str(clip) and os.path.isabs(shown["path"])
    assert shown["state"] == "done" and shown["attempts"] == 0
    assert shown["error"] is None and shown["reason"] is None
    assert shown["media_id"] == media.id and shown["hashed_id"] == media.hashed_id

    for ref in (str(job.id), str(clip), job.hashed_id):
        one = daemon.status_json(ref)
        assert one["job"]["id"] == job.id
        steps = [(e["from"], e["to"]) for e in one["events"]]
        assert steps == [
            (None, "settling"),
            ("settling", "queued"),
            ("queued", "uploading"),
            ("uploading", "processing"),
            ("processing", "finishing"),
            ("finishing", "done"),
        ]


def test_status_table_is_readable(daemon: DaemonProcess) -> None:
    clip = daemon.watch / "talk.mov"
    write_media(clip)
    job = daemon.wait_state(clip, JobState.DONE)
    table = daemon.cli("status")
    assert table.returncode == 0
    assert "daemon: running" in table.stdout
    assert "done 1" in table.stdout and str(clip) in table.stdout and job.hashed_id in table.stdout


def test_slowly_written_file_is_uploaded_once_and_complete(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"settle_seconds": 1.0}).start()
    clip = daemon.watch / "slow.mp4"
    chunks = [os.urandom(100_000) for _ in range(12)]
    with open(clip, "wb") as handle:
        for chunk in chunks:  # about 3 s of writing, with pauses shorter than settle_seconds
            handle.write(chunk)
            handle.flush()
            time.sleep(0.25)
    daemon.wait_state(clip, JobState.DONE)
    uploads = daemon.sandbox.uploads()
    assert len(uploads) == 1
    assert uploads[0].files["file"]["sha256"] == sha256(b"".join(chunks))


def test_rsync_style_temp_then_rename_is_uploaded_once_under_final_name(
    daemon: DaemonProcess,
) -> None:
    temp = daemon.watch / ".clip.mp4.Xk29aQ"  # what rsync writes first
    data = write_media(temp, 800_000, seed=3)
    time.sleep(0.5)  # let the temp file sit longer than settle_seconds: it must stay ignored
    final = daemon.watch / "clip.mp4"
    temp.rename(final)
    daemon.wait_state(final, JobState.DONE)
    uploads = daemon.sandbox.uploads()
    assert [u.files["file"]["filename"] for u in uploads] == ["clip.mp4"]
    assert uploads[0].files["file"]["sha256"] == sha256(data)
    assert [j.path for j in daemon.jobs()] == [str(final)]


def test_file_renamed_in_from_a_media_name_is_uploaded_once(daemon: DaemonProcess) -> None:
    first = daemon.watch / "draft.mp4"
    write_media(first, seed=4)
    final = daemon.watch / "final.mp4"
    first.rename(final)  # renamed at once, before it settled
    daemon.wait_state(final, JobState.DONE)
    wait_until(lambda: daemon.job_for(first) is None, timeout=5, what="draft candidate dropped")
    assert len(daemon.sandbox.uploads()) == 1


def test_file_in_new_nested_folder_is_found(daemon: DaemonProcess) -> None:
    deep = daemon.watch / "2026" / "launch" / "cuts"
    deep.mkdir(parents=True)
    clip = deep / "teaser.mp4"
    data = write_media(clip, seed=5)
    daemon.wait_state(clip, JobState.DONE)
    assert daemon.sandbox.uploads()[0].files["file"]["sha256"] == sha256(data)


def test_ignored_and_non_media_files_are_left_alone(daemon: DaemonProcess) -> None:
    for name in ("notes.txt", "clip.mp4.part", "~clip.mp4", ".hidden.mp4", "x.crdownload"):
        write_media(daemon.watch / name, 1000)
    write_media(daemon.watch / ".cache" / "inside.mp4", 1000)
    marker = daemon.watch / "marker.mp4"
    write_media(marker, 1000)
    daemon.wait_state(marker, JobState.DONE)
    assert [j.path for j in daemon.jobs()] == [str(marker)]


def test_files_present_before_start_are_ingested_and_a_restart_uploads_nothing(
    daemon_factory,
) -> None:
    daemon = daemon_factory()
    clips = [daemon.watch / "a.mp4", daemon.watch / "sub" / "b.MP4", daemon.watch / "c.mov"]
    for n, clip in enumerate(clips):
        write_media(clip, seed=10 + n)
    daemon.start()
    for clip in clips:
        daemon.wait_state(clip, JobState.DONE)
    assert len(daemon.sandbox.uploads()) == 3
    assert daemon.stop() == 0

    os.utime(clips[0])  # a touch: new mtime, same bytes
    daemon.start()
    daemon.wait_state(clips[0], JobState.DONE)
    # Give the touched file time to settle and be recognised, then nothing new may appear.
    wait_until(lambda: "content unchanged" in daemon.logs(), timeout=10, what="touch recognised")
    assert len(daemon.sandbox.uploads()) == 3
    assert len(daemon.jobs()) == 3


def test_transient_500_is_retried_and_the_job_ends_done(daemon: DaemonProcess) -> None:
    daemon.sandbox.faults.update(fail_uploads=2, fail_status=500)
    clip = daemon.watch / "flaky.mp4"
    data = write_media(clip, seed=7)
    job = daemon.wait_state(clip, JobState.DONE)
    posts = [r for r in daemon.sandbox.records if r.is_upload]
    assert [r.status for r in posts] == [500, 500, 200]
    assert posts[-1].files["file"]["sha256"] == sha256(data)
    assert job.attempts == 2
    assert len(daemon.sandbox.store.medias) == 1


def test_exhausted_attempts_fail_the_job_and_retry_brings_it_to_done(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"max_attempts": 3}).start()
    daemon.sandbox.faults.update(fail_uploads=1000, fail_status=502)
    clip = daemon.watch / "doomed.mp4"
    write_media(clip, seed=8)
    job = daemon.wait_state(clip, JobState.FAILED)
    assert job.attempts == 3
    assert "HTTP 502" in (job.error or "")
    shown = daemon.status_json()["jobs"][0]
    assert shown["state"] == "failed" and "HTTP 502" in shown["error"]

    daemon.sandbox.faults.update(fail_uploads=0)
    result = daemon.cli("retry", str(job.id))
    assert result.returncode == 0, result.stderr
    done = daemon.wait_state(clip, JobState.DONE)
    assert done.id == job.id and done.attempts == 0 and done.error is None
    assert len(daemon.sandbox.store.medias) == 1


def test_three_workers_upload_three_files_at_once(daemon: DaemonProcess) -> None:
    daemon.sandbox.faults.update(slow_upload_seconds=1.5)
    clips = [daemon.watch / f"part{n}.mp4" for n in range(3)]
    for n, clip in enumerate(clips):
        write_media(clip, seed=20 + n)
    for clip in clips:
        daemon.wait_state(clip, JobState.DONE)
    uploads = daemon.sandbox.uploads()
    assert len(uploads) == 3
    latest_start = max(u.started for u in uploads)
    earliest_end = min(u.finished for u in uploads)  # type: ignore[type-var]
    assert latest_start < earliest_end, "the three uploads did not overlap"


def test_sigterm_mid_upload_requeues_without_counting_an_attempt(daemon: DaemonProcess) -> None:
    daemon.sandbox.faults.update(slow_upload_seconds=30)
    clip = daemon.watch / "long.mp4"
    write_media(clip, seed=30)
    daemon.wait_state(clip, JobState.UPLOADING)
    wait_until(lambda: len(daemon.sandbox.store.medias) == 1, what="media created")
    started = time.monotonic()
    assert daemon.stop(timeout=12) == 0
    assert time.monotonic() - started < 10
    job = daemon.job_for(clip)
    assert job is not None and job.state == JobState.QUEUED and job.attempts == 0

    # The sandbox did create the media (its answer was only slow): the restart must find it
    # by name instead of uploading a second copy.
    daemon.sandbox.faults.update(slow_upload_seconds=0)
    daemon.start()
    daemon.wait_state(clip, JobState.DONE)
    assert len(daemon.sandbox.store.medias) == 1
    assert len(daemon.sandbox.uploads()) == 1


def test_kill_9_mid_upload_then_restart_uploads_once(daemon: DaemonProcess) -> None:
    daemon.sandbox.faults.update(slow_upload_seconds=3)
    clip = daemon.watch / "crash.mp4"
    data = write_media(clip, seed=31)
    daemon.wait_state(clip, JobState.UPLOADING)
    # Wistia has the media; its answer is on the way (slow): the worst moment to die.
    wait_until(lambda: len(daemon.sandbox.store.medias) == 1, what="media created")
    daemon.kill()
    assert daemon.job_for(clip).state == JobState.UPLOADING  # type: ignore[union-attr]
    daemon.sandbox.faults.update(slow_upload_seconds=0)
    daemon.start()
    job = daemon.wait_state(clip, JobState.DONE)
    (media,) = daemon.sandbox.store.medias.values()
    assert job.hashed_id == media.hashed_id and media.sha256 == sha256(data)
    notes = [e.note for e in daemon.ledger.jobs.events(job.id)]
    assert any("found uploading at start-up" in (n or "") for n in notes)
    assert any(n == f"uploaded as media {media.hashed_id}" for n in notes)
    assert len([r for r in daemon.sandbox.records if r.is_upload]) == 1  # never sent again


def test_second_daemon_on_the_same_ledger_refuses_to_start(daemon: DaemonProcess) -> None:
    result = daemon.cli("run")
    assert result.returncode != 0
    assert "already running" in result.stderr


def test_token_never_appears_in_logs_status_or_ledger(daemon: DaemonProcess) -> None:
    daemon.sandbox.faults.update(fail_uploads=1)
    clip = daemon.watch / "secret.mp4"
    write_media(clip, seed=40)
    daemon.wait_state(clip, JobState.DONE)
    daemon.sandbox.faults.update(auth_fail=True)  # errors that mention auth must not echo it
    write_media(daemon.watch / "second.mp4", seed=41)
    wait_until(lambda: daemon.status_json()["hold"] is not None, what="auth hold")
    outputs = [
        daemon.logs(),
        daemon.cli("status").stdout,
        daemon.cli("status", "--all").stdout,
        daemon.cli("status", "--json").stdout,
        daemon.cli("status", "1").stdout,
    ]
    daemon.stop()
    for text in outputs:
        assert TOKEN not in text
    for suffix in ("", "-wal", "-shm"):
        stored = Path(str(daemon.ledger_path) + suffix)
        if stored.exists():
            assert TOKEN.encode() not in stored.read_bytes()
    # Every request carried the token in its Authorization header, and nowhere else.
    assert {r.auth for r in daemon.sandbox.records} == {"bearer"}
    assert not any(r.token_elsewhere for r in daemon.sandbox.records)
    assert "Bearer" not in daemon.logs()
