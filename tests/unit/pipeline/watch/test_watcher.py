"""The watcher, one tick at a time: rescans, names that are not UTF-8, the observer's choice,
bytes rewritten under a kept mtime, and a settle begun on another process's clock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingestd.core.errors import FileChanged
from ingestd.core.jobs import JobState
from tests.unit.conftest import World

S = JobState
DAY = 86_400.0


def test_the_periodic_rescan_finds_what_no_event_announced(world: World) -> None:
    settings, ledger, clock = world.settings, world.ledger, world.clock
    watcher = world.watcher(settings)
    watcher.tick()  # the start-up scan (no observer here: no events at all)
    quiet = world.watch / "quiet" / "missed.mp4"
    quiet.parent.mkdir()
    quiet.write_bytes(b"never announced")
    watcher.tick()
    assert ledger.jobs.latest_for_path(str(quiet)) is None  # the rescan is not due yet
    clock.t += settings.ingest.rescan_seconds
    watcher.tick()
    assert ledger.jobs.latest_for_path(str(quiet)).state == S.SETTLING


def test_a_name_that_is_not_utf8_is_a_job_kept_exactly(world: World) -> None:
    settings, ledger, clock = world.settings, world.ledger, world.clock
    watcher = world.watcher(settings)
    raw = os.fsencode(world.watch) + b"/caf\xe9.mp4"
    with open(raw, "wb") as handle:
        handle.write(b"bytes")
    watcher.tick()
    clock.t += 2
    watcher.tick()
    (job,) = ledger.jobs.active_and_recent(None)
    assert os.fsencode(job.path) == raw and job.state == S.QUEUED
    assert ledger.jobs.latest_for_path(os.fsdecode(raw)) == job


def test_observer_choice_follows_the_setting_and_the_mount() -> None:
    from ingestd.pipeline.watch.watcher import choose_observer

    mounts = (
        "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /srv/share rw - nfs4 server:/export rw\n"
        "41 22 0:51 / /srv/my\\040sshfs rw - fuse.sshfs me@host: rw\n"
    )
    folder = Path("/srv/share/inbox")
    assert choose_observer("auto", folder, mounts)[0] == "polling"
    assert "nfs4" in choose_observer("auto", folder, mounts)[1]
    assert choose_observer("auto", Path("/srv/my sshfs/x"), mounts)[0] == "polling"
    assert choose_observer("auto", Path("/home/me"), mounts)[0] == "inotify"
    assert choose_observer("native", folder, mounts)[0] == "inotify"
    assert choose_observer("polling", Path("/home/me"), mounts)[0] == "polling"


def test_bytes_rewritten_in_place_with_the_mtime_put_back_are_not_uploaded(world: World) -> None:
    settings, ledger, clock = world.settings, world.ledger, world.clock
    watcher = world.watcher(settings)
    path = world.watch / "clip.mp4"
    path.write_bytes(b"the bytes that are hashed")
    watcher.tick()
    clock.t += 2
    watcher.tick()
    (job,) = ledger.jobs.active_and_recent(None)
    assert job.state == S.QUEUED and job.ctime_ns is not None
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.write(b"THE BYTES THAT ARE HASHED")  # same size, in place
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the mtime put back
    uploader = world.uploader(settings)
    with pytest.raises(FileChanged):
        uploader.prepare(ledger.uploads.claim(clock.t))


def test_a_settle_begun_in_the_future_by_another_process_begins_now(world: World) -> None:
    """`ingestd retry` writes the settle's start on its own wall clock; the daemon's steady
    clock may be a day behind it: the file settles after settle_seconds, not a day."""
    ledger, clock, watch = world.ledger, world.clock, world.watch
    clip = watch / "clip.mp4"
    clip.write_bytes(b"some bytes")
    stat = clip.stat()
    job = ledger.settling.add(str(clip), "file", stat.st_size, stat.st_mtime_ns, clock.now())
    job = ledger.update(job, settle_since=clock.now() + DAY)
    watcher = world.watcher()
    still: list = []
    watcher.settler._check(ledger, job, still=still)
    assert ledger.get(job.id).settle_since == clock.now()  # begins now
    clock.t += world.settings.ingest.settle_seconds
    watcher.settler._check(ledger, ledger.get(job.id), still=still)
    assert [j.id for j, _ in still] == [job.id]
