"""Complete means complete: real writers that stall with the file open, containers cut short,
and a partial upload that a later version proves and replaces.

Stalls are not sleeps: a writer stops writing and the test waits until the daemon has noticed
the quiet, still-open file (the job's reason names the writer) and looked again at least once
more, so the stall outlasts several settle periods whatever the machine's speed.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from ingestd.core.jobs import Job, JobState
from tests.conftest import DaemonProcess, sha256, wait_until
from tests.media_files import FTYP, box, mkv, mp4

SETTLE = 0.3


def _settling_with(daemon: DaemonProcess, path: Path, words: str, timeout: float = 20) -> Job:
    def seen() -> Job | None:
        job = daemon.job_for(path)
        ok = job is not None and job.state == JobState.SETTLING and words in (job.reason or "")
        return job if ok else None

    return wait_until(seen, timeout=timeout, what=f"{path.name} settling with {words!r}")


def _stalled_long(daemon: DaemonProcess, path: Path, words: str) -> Job:
    """The daemon saw the open writer, then looked again (a writer recheck is a settle period
    or a second later) and still saw it."""
    first = _settling_with(daemon, path, words)
    return wait_until(
        lambda: (j := _settling_with(daemon, path, words)).settle_since != first.settle_since and j,
        what="a second look at the stalled file",
    )


def _one_whole_media(daemon: DaemonProcess, path: Path, data: bytes) -> None:
    job = daemon.wait_state(path, JobState.DONE, timeout=30)
    medias = list(daemon.sandbox.store.medias.values())
    assert len(medias) == 1, f"{len(medias)} medias: the partial file was uploaded"
    assert medias[0].sha256 == sha256(data) == job.sha256
    assert [j.state for j in daemon.jobs() if j.path == str(path)] == [JobState.DONE]


def _feed(pipe: subprocess.Popen[bytes], data: bytes) -> None:
    assert pipe.stdin is not None
    pipe.stdin.write(data)
    pipe.stdin.flush()


def _finish(pipe: subprocess.Popen[bytes], data: bytes) -> None:
    _feed(pipe, data)
    assert pipe.stdin is not None
    pipe.stdin.close()
    assert pipe.wait(timeout=20) == 0


# --- writers that stall with the file open ------------------------------------------------------


def test_a_cp_that_stalls_with_the_file_open_is_uploaded_once_whole(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    # Real cp, reading from a FIFO the test feeds: it blocks on its read with the target open,
    # as a cp from a stalled network mount does. An .mpg has no container to check: only the
    # open writer tells.
    source = tmp_path / "source.fifo"
    os.mkfifo(source)
    clip = daemon.watch / "stalled.mpg"
    data = random.Random(1).randbytes(600_000)
    cp = subprocess.Popen(["cp", str(source), str(clip)])
    with open(source, "wb") as feed:
        feed.write(data[:300_000])
        feed.flush()
        job = _stalled_long(daemon, clip, "open for writing by cp")
        assert f"(pid {cp.pid})" in job.reason
        shown = next(j for j in daemon.status_json()["jobs"] if j["path"] == str(clip))
        assert shown["state"] == "settling" and "open for writing by cp" in shown["reason"]
        assert daemon.sandbox.records == []  # nothing sent while it was open
        feed.write(data[300_000:])
    assert cp.wait(timeout=20) == 0
    _one_whole_media(daemon, clip, data)


def test_a_dd_writer_that_pauses_is_waited_for(daemon: DaemonProcess) -> None:
    clip = daemon.watch / "dd.mp4"
    data = mp4(500_000, seed=2)
    dd = subprocess.Popen(
        ["dd", f"of={clip}", "bs=65536", "status=none"], stdin=subprocess.PIPE
    )  # writes each block as it arrives, the file open until its input ends
    _feed(dd, data[:200_000])
    _stalled_long(daemon, clip, "open for writing by dd")
    _finish(dd, data[200_000:])
    _one_whole_media(daemon, clip, data)


def test_an_rsync_partial_copy_waits_as_incomplete_and_goes_on_when_resumed(
    daemon: DaemonProcess,
) -> None:
    # rsync --partial: the interrupted transfer leaves the partial file under its own name
    # and the writer is gone; `rsync --append` later adds the rest.
    clip = daemon.watch / "resumed.mp4"
    data = mp4(400_000, seed=3)
    clip.write_bytes(data[:150_000])
    job = _settling_with(daemon, clip, "incomplete MP4: box 'mdat' runs past the end of the file")
    assert job.incomplete_since is not None
    with open(clip, "ab") as resumed:
        resumed.write(data[150_000:])
    _one_whole_media(daemon, clip, data)


def test_a_half_mkv_waits_with_its_reason_and_goes_on_when_completed(
    daemon: DaemonProcess,
) -> None:
    clip = daemon.watch / "half.mkv"
    data = mkv(300_000, seed=4)
    clip.write_bytes(data[:100_000])
    _settling_with(daemon, clip, "incomplete Matroska: the Segment runs past the end of the file")
    with open(clip, "ab") as rest:
        rest.write(data[100_000:])
    _one_whole_media(daemon, clip, data)


def test_a_faststart_mp4_with_a_64_bit_mdat_cut_inside_it_waits(daemon: DaemonProcess) -> None:
    clip = daemon.watch / "faststart.mp4"
    data = mp4(300_000, seed=5, faststart=True, large=True)
    clip.write_bytes(data[:-1000])  # moov first: everything but the last bytes of mdat
    _settling_with(daemon, clip, "box 'mdat' runs past the end of the file")
    with open(clip, "ab") as rest:
        rest.write(data[-1000:])
    _one_whole_media(daemon, clip, data)


def test_a_file_that_stays_incomplete_is_failed_after_the_configured_time(
    daemon_factory,
) -> None:
    daemon = daemon_factory(ingest={"incomplete_after_seconds": 1.5}).start()
    clip = daemon.watch / "abandoned.mp4"
    clip.write_bytes(FTYP + box(b"mdat", bytes(100_000)))  # whole boxes, but no moov
    failed = daemon.wait_state(clip, JobState.FAILED)
    assert "incomplete MP4: it has no 'moov' box" in failed.error
    assert daemon.sandbox.records == []
    # New bytes make it a new version, as usual.
    clip.write_bytes(mp4(100_000, seed=6))
    wait_until(
        lambda: (j := daemon.job_for(clip)) is not None and j.state == JobState.DONE,
        what="the whole file done",
    )


def test_a_person_who_retries_a_refused_file_gets_it_uploaded_as_it_is(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"incomplete_after_seconds": 1.0}).start()
    clip = daemon.watch / "padded.mp4"
    data = mp4(100_000, seed=14) + bytes(3)  # a camera's padding after the last box
    clip.write_bytes(data)
    failed = daemon.wait_state(clip, JobState.FAILED)
    assert "incomplete MP4: the file ends inside a box header" in failed.error
    result = daemon.cli("retry", str(failed.id))
    assert result.returncode == 0 and f"job {failed.id}: settling" in result.stdout
    done = daemon.wait_state(clip, JobState.DONE)
    assert done.id == failed.id and done.sha256 == sha256(data)
    (media,) = daemon.sandbox.store.medias.values()
    assert media.sha256 == sha256(data)


# --- another user's writer: the read lease ------------------------------------------------------


def _cat_as_nobody(path: Path) -> subprocess.Popen[bytes]:
    """`cat >> path`, run by another user: it keeps the file open while its input lasts."""
    return subprocess.Popen(
        ["/bin/sh", "-c", 'exec cat >> "$1"', "sh", str(path)],
        stdin=subprocess.PIPE,
        user=65534,
        group=65534,
        extra_groups=[],
    )


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run a writer as another user",
)


@needs_root
def test_another_users_writer_is_seen_through_a_lease_with_cap_lease_alone(
    daemon_factory, shared_folder: Path
) -> None:
    # The daemon keeps CAP_LEASE and nothing else (as the shipped unit grants): /proc does
    # not show another user's descriptors to it, and the read lease sees the writer anyway.
    daemon = daemon_factory(watch_dir=shared_folder)
    daemon.start(wrapper=["setpriv", "--bounding-set=-all,+lease"])
    clip = shared_folder / "from-smb.mpg"
    data = random.Random(7).randbytes(400_000)
    cat = _cat_as_nobody(clip)
    _feed(cat, data[:100_000])
    _stalled_long(daemon, clip, "open for writing by another process")
    _finish(cat, data[100_000:])
    _one_whole_media(daemon, clip, data)
    assert "cannot tell whether other processes" not in daemon.logs()


@needs_root
def test_without_cap_lease_the_daemon_says_once_that_it_cannot_tell(
    daemon_factory, shared_folder: Path
) -> None:
    daemon = daemon_factory(watch_dir=shared_folder)
    daemon.start(wrapper=["setpriv", "--bounding-set=-all"])
    clip = shared_folder / "unseen.mpg"
    cat = _cat_as_nobody(clip)
    _feed(cat, random.Random(8).randbytes(50_000))
    wait_until(
        lambda: "cannot tell whether other processes are still writing" in daemon.logs(),
        what="the notice",
    )
    assert "CAP_LEASE" in daemon.logs()
    _finish(cat, b"")
    daemon.wait_state(clip, JobState.DONE)
    assert daemon.logs().count("cannot tell whether other processes") == 1


# --- a partial upload proved by the next version ------------------------------------------------


def _history(daemon: DaemonProcess, job: Job) -> str:
    return "\n".join(e.note or "" for e in daemon.ledger.jobs.events(job.id))


def _next_version_done(daemon: DaemonProcess, clip: Path, earlier: Job) -> Job:
    """The job of the version after `earlier`, once it is done."""
    return wait_until(
        lambda: (
            (j := daemon.job_for(clip)) and j.id != earlier.id and j.state == JobState.DONE and j
        ),
        timeout=30,
        what="the next version done",
    )


def test_a_partial_upload_is_replaced_in_place_by_the_whole(daemon: DaemonProcess) -> None:
    # A remote copy stalled past the settle time with no local writer: half an .mpg (no
    # container to check) went up. The rest arrives: the new version begins with exactly the
    # uploaded bytes, so once the whole one is processed it is swapped into the half media,
    # whose hashed id (and embeds) now play the whole file.
    clip = daemon.watch / "remote.mpg"
    data = random.Random(9).randbytes(500_000)
    clip.write_bytes(data[:200_000])
    half = daemon.wait_state(clip, JobState.DONE)
    with open(clip, "ab") as rest:
        rest.write(data[200_000:])
    whole = _next_version_done(daemon, clip, half)
    assert whole.replaces == half.id and whole.hashed_id == half.hashed_id
    (left,) = daemon.sandbox.store.medias.values()
    assert left.hashed_id == half.hashed_id and left.sha256 == sha256(data)
    (swap,) = daemon.sandbox.store.jobs.values()
    assert swap.original == half.hashed_id and swap.outcome == "finished"
    assert [m.hashed_id for m in daemon.sandbox.store.deleted] == [swap.replacement]
    assert "partial copy" in _history(daemon, half)
    assert "swapped into it: its embeds now play the whole file" in _history(daemon, whole)


def test_a_partial_upload_is_deleted_once_the_whole_is_done_when_new_versions_add(
    daemon_factory,
) -> None:
    daemon = daemon_factory(ingest={"new_version": "add"}).start()
    clip = daemon.watch / "remote.mpg"
    data = random.Random(9).randbytes(500_000)
    clip.write_bytes(data[:200_000])
    half = daemon.wait_state(clip, JobState.DONE)
    with open(clip, "ab") as rest:
        rest.write(data[200_000:])
    whole = _next_version_done(daemon, clip, half)
    assert whole.replaces == half.id
    (deleted,) = daemon.sandbox.store.deleted
    assert deleted.hashed_id == half.hashed_id
    (left,) = daemon.sandbox.store.medias.values()
    assert left.hashed_id == whole.hashed_id and left.sha256 == sha256(data)
    half_now = daemon.ledger.get(half.id)
    assert half_now is not None and half_now.replaced_by == whole.id
    assert half_now.state == JobState.DONE
    assert "partial copy" in _history(daemon, half) and "deleted it from Wistia" in _history(
        daemon, half
    )
    assert f"job {half.id}'s" in _history(daemon, whole)
    assert "deleted it from Wistia" in _history(daemon, whole)
    assert daemon.sandbox.store.jobs == {}  # no swap


def test_a_different_file_at_the_same_path_deletes_nothing(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"new_version": "add"}).start()
    clip = daemon.watch / "other.mpg"
    first = random.Random(10).randbytes(200_000)
    clip.write_bytes(first)
    done = daemon.wait_state(clip, JobState.DONE)
    # Longer, and all but the last byte of `first` alike: not a prefix, so not partial.
    second = first[:-1] + bytes([first[-1] ^ 1]) + random.Random(11).randbytes(300_000)
    clip.write_bytes(second)
    later = _next_version_done(daemon, clip, done)
    assert later.replaces is None
    assert daemon.sandbox.store.deleted == []
    assert len(daemon.sandbox.store.medias) == 2


def test_with_replace_partial_off_the_partial_media_stays(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"replace_partial": False}).start()
    clip = daemon.watch / "kept.mpg"
    data = random.Random(12).randbytes(300_000)
    clip.write_bytes(data[:100_000])
    half = daemon.wait_state(clip, JobState.DONE)
    with open(clip, "ab") as rest:
        rest.write(data[100_000:])
    whole = _next_version_done(daemon, clip, half)
    assert whole.replaces == half.id
    assert daemon.sandbox.store.deleted == []
    assert "left in Wistia (ingest.replace_partial = false)" in _history(daemon, half)


def test_a_kill_after_the_partial_media_is_deleted_does_not_go_wrong(daemon_factory) -> None:
    """kill -9 after Wistia deleted the partial media and before its answer arrived: after
    the restart the delete is asked again, found done (404), and recorded; the whole media
    is untouched."""
    daemon = daemon_factory(ingest={"new_version": "add"}).start()
    clip = daemon.watch / "crash.mpg"
    data = random.Random(13).randbytes(300_000)
    clip.write_bytes(data[:120_000])
    half = daemon.wait_state(clip, JobState.DONE)
    daemon.sandbox.faults.update(slow_seconds=3.0)  # every answer held back after the work
    with open(clip, "ab") as rest:
        rest.write(data[120_000:])
    wait_until(lambda: daemon.sandbox.store.deleted, timeout=40, what="the partial deleted")
    daemon.kill()
    daemon.sandbox.faults.update(slow_seconds=0.0)
    daemon.start()
    whole = _next_version_done(daemon, clip, half)
    assert [m.hashed_id for m in daemon.sandbox.store.deleted] == [half.hashed_id]
    (left,) = daemon.sandbox.store.medias.values()
    assert left.hashed_id == whole.hashed_id
    assert "already gone from Wistia" in _history(daemon, whole)
    assert daemon.ledger.get(half.id).replaced_by == whole.id
