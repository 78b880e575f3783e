"""Stopping at any moment, and watch folders on network mounts (polling, folder gone a while)."""

from __future__ import annotations

import random
import sqlite3
import time

from ingestd.core.jobs import JobState
from tests.conftest import DaemonProcess, wait_until, write_media


def test_sigterm_at_any_moment_stops_within_10_s_and_loses_nothing(daemon_factory) -> None:
    daemon: DaemonProcess = daemon_factory()
    daemon.sandbox.faults.update(latency=0.05, slow_upload_seconds=0.5)
    daemon.sandbox.store.processing_seconds = 1.0
    clips = [daemon.watch / f"t{n}.mp4" for n in range(8)]
    for n, clip in enumerate(clips):
        write_media(clip, 2_000_000, seed=n)
    chance = random.Random(7)
    for _ in range(5):
        daemon.start()
        time.sleep(chance.uniform(0.1, 1.5))  # a random moment: settling, hashing, uploading...
        started = time.monotonic()
        assert daemon.stop(timeout=15) == 0
        assert time.monotonic() - started < 10
        assert all(j.state != JobState.UPLOADING for j in daemon.jobs())
    daemon.sandbox.faults.update(latency=0, slow_upload_seconds=0)
    daemon.start()
    for clip in clips:
        job = daemon.wait_state(clip, JobState.DONE, timeout=40)
        assert job.attempts == 0  # stops never count as attempts
    assert len(daemon.sandbox.store.medias) == len(clips)  # and never make duplicates
    check = sqlite3.connect(daemon.ledger_path)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()


def test_polling_observer_survives_the_folder_going_away(daemon_factory, tmp_path) -> None:
    daemon = daemon_factory(ingest={"observer": "polling", "rescan_seconds": 2.0}).start()
    first = daemon.watch / "before.mp4"
    write_media(first, seed=1)
    daemon.wait_state(first, JobState.DONE)
    queued_behind = daemon.watch / "pending.mp4"

    unmounted = tmp_path / "unmounted"
    daemon.watch.rename(unmounted)  # the share goes away
    wait_until(lambda: "watch folder is missing" in daemon.logs(), what="missing noticed")
    time.sleep(1.0)  # a while without the folder: nothing may fail meanwhile
    assert daemon.proc.poll() is None
    assert all(j.state == JobState.DONE for j in daemon.jobs())
    write_media(unmounted / "pending.mp4", seed=2)  # arrives on the share while "unmounted"
    unmounted.rename(daemon.watch)  # and comes back

    wait_until(lambda: "watch folder is back" in daemon.logs(), what="back noticed")
    daemon.wait_state(queued_behind, JobState.DONE)
    after = daemon.watch / "after.mp4"
    write_media(after, seed=3)
    daemon.wait_state(after, JobState.DONE)
    assert daemon.cli("status", "--json").returncode == 0
    assert len(daemon.sandbox.uploads()) == 3
