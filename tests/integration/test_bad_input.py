"""Bad input: each gets a clear reason, the daemon runs on, other jobs are unaffected."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from ingestd.core.jobs import JobState
from tests.conftest import DaemonProcess, sha256, wait_until, write_media


def test_zero_byte_file_fails_and_its_later_content_is_a_new_job(daemon: DaemonProcess) -> None:
    clip = daemon.watch / "empty.mp4"
    clip.write_bytes(b"")
    other = daemon.watch / "fine.mp4"
    write_media(other, seed=1)
    empty = daemon.wait_state(clip, JobState.FAILED)
    assert empty.error == "empty file (0 bytes)"
    daemon.wait_state(other, JobState.DONE)
    assert len(daemon.sandbox.uploads()) == 1  # nothing was sent for the empty file

    data = write_media(clip, seed=2)
    job = wait_until(
        lambda: (j := daemon.job_for(clip)) and j.id != empty.id and j.state == JobState.DONE and j,
        what="new version done",
    )
    assert job.sha256 == sha256(data)


def test_unreadable_file_is_held_until_it_can_be_read(daemon_factory) -> None:
    daemon = daemon_factory()
    locked = daemon.watch / "locked.mp4"
    write_media(locked, seed=3)
    locked.chmod(0o000)
    fine = daemon.watch / "fine.mp4"
    write_media(fine, seed=4)
    daemon.start(honour_permissions=True)
    daemon.wait_state(fine, JobState.DONE)
    held = daemon.wait_state(locked, JobState.HELD)
    assert "cannot read locked.mp4: permission denied" in held.reason and "chmod" in held.reason
    shown = next(j for j in daemon.status_json()["jobs"] if j["path"] == str(locked))
    assert shown["state"] == "held" and "permission denied" in shown["reason"]
    locked.chmod(0o644)
    job = daemon.wait_state(locked, JobState.DONE)
    assert job.attempts == 0


def test_file_vanishing_before_upload_fails_with_a_reason(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"workers": 1}).start()
    daemon.sandbox.faults.update(slow_upload_seconds=2)
    first = daemon.watch / "first.mp4"
    write_media(first, seed=5)
    daemon.wait_state(first, JobState.UPLOADING)
    second = daemon.watch / "second.mp4"
    write_media(second, seed=6)
    daemon.wait_state(second, JobState.QUEUED)
    second.unlink()
    failed = daemon.wait_state(second, JobState.FAILED)
    assert "vanished before it could be uploaded" in failed.error
    daemon.wait_state(first, JobState.DONE)


def test_file_changed_during_upload_is_sent_again_once_settled(daemon: DaemonProcess) -> None:
    daemon.sandbox.faults.update(slow_upload_seconds=1.5)
    clip = daemon.watch / "edit.mp4"
    write_media(clip, 400_000, seed=7)
    daemon.wait_state(clip, JobState.UPLOADING)
    wait_until(lambda: daemon.sandbox.records, what="upload under way")
    final = write_media(clip, 400_000, seed=8)  # same size, new bytes
    daemon.sandbox.faults.update(slow_upload_seconds=0)
    job = wait_until(
        lambda: (j := daemon.job_for(clip)) and j.state == JobState.DONE and j,
        timeout=30,
        what="done with the final bytes",
    )
    assert job.sha256 == sha256(final) and job.attempts == 0
    # The media made of the bytes that changed is named in the history, never deleted:
    # ingestd deletes only a partial copy a done version proves, and a replaced thumbnail.
    stale, final_media = sorted(daemon.sandbox.store.medias.values(), key=lambda m: m.id)
    assert final_media.sha256 == sha256(final) and final_media.hashed_id == job.hashed_id
    assert daemon.sandbox.store.deleted == []
    notes = [e.note or "" for e in daemon.ledger.jobs.events(job.id)]
    assert any(f"media {stale.hashed_id}" in note and "left in Wistia" in note for note in notes)


def test_odd_file_names_are_uploaded_under_their_own_name(daemon: DaemonProcess) -> None:
    names = [
        "with spaces.mp4",
        "ünïcödé – 日本語.mp4",
        'say "cheese".mp4',
        "new\nline.mp4",
        "it's.mov",
    ]
    clips = [daemon.watch / name for name in names]
    for n, clip in enumerate(clips):
        write_media(clip, 10_000, seed=10 + n)
    for clip in clips:
        daemon.wait_state(clip, JobState.DONE)
    received = {u.files["file"]["filename"]: u.form["name"] for u in daemon.sandbox.uploads()}
    assert received == {name: name for name in names}
    shown = {j["path"] for j in daemon.status_json()["jobs"]}
    assert shown == {str(c) for c in clips}
    assert daemon.cli("status").returncode == 0


def test_symlinks_are_never_followed_and_say_why(daemon_factory, tmp_path: Path) -> None:
    daemon = daemon_factory()
    outside = tmp_path / "outside.mp4"
    write_media(outside, seed=20)
    stored = daemon.watch / ".store" / "real.mp4"  # an ignored folder
    write_media(stored, seed=21)
    marker = daemon.watch / "marker.mp4"
    write_media(marker, seed=22)
    links = {
        "inside-link.mp4": stored,
        "outside-link.mp4": outside,
        "dangling.mp4": daemon.watch / "nothing.mp4",
        "self.mp4": daemon.watch / "self.mp4",
        "alias.mp4": marker,
    }
    for name, target in links.items():
        (daemon.watch / name).symlink_to(target)
    (daemon.watch / "loop").symlink_to(daemon.watch)  # a folder loop is never entered
    daemon.start()
    daemon.wait_state(marker, JobState.DONE)
    for name in links:
        held = daemon.wait_state(daemon.watch / name, JobState.HELD)
        assert f"{name} is a symbolic link, not a regular file" in held.reason
    received = {
        u.files["file"]["filename"]: u.files["file"]["sha256"] for u in daemon.sandbox.uploads()
    }
    assert received == {"marker.mp4": daemon.job_for(marker).sha256}
    assert {Path(j.path).name for j in daemon.jobs()} == {"marker.mp4", *links}


def test_directory_named_like_a_media_file_is_not_a_job(daemon: DaemonProcess) -> None:
    folder = daemon.watch / "folder.mp4"
    folder.mkdir()
    inner = folder / "inner.mp4"
    write_media(inner, seed=30)
    daemon.wait_state(inner, JobState.DONE)
    assert [j.path for j in daemon.jobs()] == [str(inner)]


def test_ledger_locked_by_another_process_is_waited_for(daemon: DaemonProcess) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sqlite3, sys, time\n"
                f"c = sqlite3.connect({str(daemon.ledger_path)!r}, isolation_level=None)\n"
                "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(4)\n"
                "c.execute('ROLLBACK')\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    clip = daemon.watch / "patient.mp4"
    write_media(clip, seed=31)
    daemon.wait_state(clip, JobState.DONE, timeout=40)
    assert holder.wait(timeout=10) == 0
    check = sqlite3.connect(daemon.ledger_path)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
