"""Settle logic and the media filter, on real files and a real ledger (no observer thread)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ingestd.config.settings import Settings
from ingestd.core.errors import JobInputError
from ingestd.core.jobs import JobState
from ingestd.core.names import media_name
from ingestd.folder.urlimport import read_url_file
from ingestd.ledger import Ledgers
from ingestd.pipeline.watch.filter import MediaFilter
from ingestd.pipeline.watch.watcher import Watcher
from tests.conftest import wait_until


@pytest.fixture
def watcher(tmp_path: Path):
    watch = tmp_path / "inbox"
    watch.mkdir()
    settings = Settings(watch_dir=watch, ledger=tmp_path / "l.db", ingest={"settle_seconds": 0.3})
    made = Watcher(settings, Ledgers(settings.ledger), threading.Event())
    made.ledger = made.settler.ledger = made.ledgers.open()
    yield made
    made.ledger.close()


def state_of(watcher: Watcher, path: Path) -> JobState | None:
    job = watcher.ledger.jobs.latest_for_path(str(path))
    return job.state if job else None


def test_a_file_settles_only_once_it_stops_changing(watcher: Watcher) -> None:
    clip = watcher.settings.watch_dir / "a.mp4"
    clip.write_bytes(b"x" * 100)
    watcher.observe(clip)
    watcher.tick()
    assert state_of(watcher, clip) == JobState.SETTLING  # not still for 0.3 s yet
    with open(clip, "ab") as handle:
        handle.write(b"more")
    watcher.tick()
    job = watcher.ledger.jobs.latest_for_path(str(clip))
    assert job.state == JobState.SETTLING and job.size == 104
    wait_until(
        lambda: (watcher.tick(), state_of(watcher, clip) == JobState.QUEUED)[1],
        timeout=5,
        what="settled",
    )
    assert watcher.ledger.jobs.latest_for_path(str(clip)).sha256 is not None


def test_growing_file_never_settles(watcher: Watcher) -> None:
    clip = watcher.settings.watch_dir / "grow.mp4"
    clip.write_bytes(b"")
    watcher.observe(clip)
    for n in range(12):  # keeps growing for ~0.6 s, longer than settle_seconds
        with open(clip, "ab") as handle:
            handle.write(b"y" * 10)
        os.utime(clip, ns=(n * 10**9, n * 10**9))
        watcher.tick()
        assert state_of(watcher, clip) == JobState.SETTLING
        threading.Event().wait(0.05)


def test_touch_of_a_done_file_is_not_a_new_job(watcher: Watcher) -> None:
    clip = watcher.settings.watch_dir / "done.mp4"
    clip.write_bytes(b"content")
    watcher.observe(clip)
    wait_until(lambda: (watcher.tick(), state_of(watcher, clip) == JobState.QUEUED)[1], timeout=5)
    ledger = watcher.ledger
    job = ledger.uploads.claim()
    job = ledger.move(job, JobState.PROCESSING, "uploaded", hashed_id="h1")
    job = ledger.move(ledger.move(job, JobState.FINISHING), JobState.DONE)
    os.utime(clip, ns=(1, 1))
    watcher.observe(clip)
    assert state_of(watcher, clip) == JobState.SETTLING  # a candidate for a new version
    wait_until(lambda: (watcher.tick(), state_of(watcher, clip) == JobState.DONE)[1], timeout=5)
    assert [j.id for j in ledger.jobs.active_and_recent(None)] == [job.id]  # same bytes: same job
    assert ledger.get(job.id).version == (7, 1)


def test_a_changed_queued_file_is_left_to_the_uploader(watcher: Watcher) -> None:
    clip = watcher.settings.watch_dir / "queued.mp4"
    clip.write_bytes(b"content")
    watcher.observe(clip)
    wait_until(lambda: (watcher.tick(), state_of(watcher, clip) == JobState.QUEUED)[1], timeout=5)
    clip.write_bytes(b"new content")
    watcher.observe(clip)
    watcher.tick()
    # The queue is the uploader's: it checks the file before sending (FileChanged).
    assert state_of(watcher, clip) == JobState.QUEUED
    assert len(watcher.ledger.jobs.active_and_recent(None)) == 1


def test_empty_file_fails_with_a_reason(watcher: Watcher) -> None:
    clip = watcher.settings.watch_dir / "empty.mp4"
    clip.write_bytes(b"")
    watcher.observe(clip)
    wait_until(lambda: (watcher.tick(), state_of(watcher, clip) == JobState.FAILED)[1], timeout=5)
    assert "empty file" in watcher.ledger.jobs.latest_for_path(str(clip)).error


def test_vanished_candidate_is_forgotten(watcher: Watcher) -> None:
    clip = watcher.settings.watch_dir / "gone.mp4"
    clip.write_bytes(b"abc")
    watcher.observe(clip)
    clip.unlink()
    watcher.tick()
    assert state_of(watcher, clip) is None


def test_media_filter(tmp_path: Path) -> None:
    settings = Settings(
        watch_dir=tmp_path,
        ledger=tmp_path / "l.db",
        ingest={"after_upload": "move", "archive_dir": str(tmp_path / "done")},
    )
    media = MediaFilter(settings)
    assert media.kind(tmp_path / "a.mp4") == "file"
    assert media.kind(tmp_path / "A.MOV") == "file"
    assert media.kind(tmp_path / "link.url") == "url"
    assert media.kind(tmp_path / "notes.txt") is None
    assert media.kind(tmp_path / "a.mp4.part") is None
    assert media.kind(tmp_path / "~a.mp4") is None
    assert media.kind(tmp_path / ".a.mp4.x1") is None
    assert media.kind(tmp_path / ".sync" / "a.mp4") is None
    assert media.kind(tmp_path / "done" / "a.mp4") is None  # the archive is not watched
    assert media.kind(tmp_path.parent / "outside.mp4") is None


def test_media_name_keeps_the_extension_within_wistias_limit() -> None:
    assert media_name(Path("/w/clip.mp4")) == "clip.mp4"
    long = media_name(Path("/w/" + "x" * 300 + ".mp4"))
    assert len(long) == 255 and long.endswith(".mp4")


def test_url_files(tmp_path: Path) -> None:
    plain = tmp_path / "a.url"
    plain.write_text("https://example.com/v.mp4\n")
    assert read_url_file(plain, tmp_path) == "https://example.com/v.mp4"
    shortcut = tmp_path / "b.url"
    shortcut.write_text("[InternetShortcut]\r\nURL=https://example.com/w.mp4?x=1&y=2\r\n")
    assert read_url_file(shortcut, tmp_path) == "https://example.com/w.mp4?x=1&y=2"
    empty = tmp_path / "c.url"
    empty.write_text("[InternetShortcut]\n")
    with pytest.raises(JobInputError, match="no URL"):
        read_url_file(empty, tmp_path)


def test_dead_observer_is_replaced(watcher: Watcher) -> None:
    watcher.start_observer()
    first = watcher.observer
    first.stop()
    first.join(timeout=5)
    assert not first.is_alive()
    watcher.check_observer()
    assert watcher.observer is not first and watcher.observer.is_alive()
    watcher.stop_observer()
