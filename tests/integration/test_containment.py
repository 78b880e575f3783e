"""One job's trouble stays with that job (issue 8): each defect reproduced against the real
daemon. The daemon stays up, the other jobs reach `done`, the bad job shows a reason, a held
job's history does not grow while nothing changes, and READY=1 / WATCHDOG=1 keep coming."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path

from ingestd.core.jobs import JobState
from tests.conftest import DaemonProcess, wait_until, write_config, write_media
from tests.integration.test_operations import NotifySocket


def rechecks(daemon: DaemonProcess, job_id: int) -> int:
    """How often the held jobs' stage looked at `job_id` (its debug log line)."""
    return sum(
        1
        for line in daemon.logs().splitlines()
        if '"looking again at a held job"' in line and json.loads(line).get("job_id") == job_id
    )


def pings(notify: NotifySocket) -> list[float]:
    notify.drain()
    return [at for at, message in notify.messages if "WATCHDOG=1" in message.split("\n")]


def assert_pings_keep_coming(notify: NotifySocket, seconds: float = 2.0) -> None:
    """WATCHDOG=1 arrives steadily (every 0.2 s with WATCHDOG_USEC=400000) for `seconds`."""
    start = time.time()
    wait_until(lambda: time.time() > start + seconds and pings(notify), timeout=seconds + 5)
    recent = [at for at in pings(notify) if at >= start]
    assert len(recent) >= seconds / 0.2 * 0.6, f"only {len(recent)} pings in {seconds} s"
    gaps = [b - a for a, b in itertools.pairwise(recent)]
    assert max(gaps, default=0) < 1.0, f"the pings stopped for {max(gaps):.1f} s"


def test_ftp_url_is_held_once_and_its_history_stays_still(daemon: DaemonProcess) -> None:
    bad = daemon.watch / "ftp.url"
    bad.write_text("ftp://example.com/clip.mp4\n")
    good = daemon.watch / "good.mp4"
    write_media(good, seed=1)
    daemon.wait_state(good, JobState.DONE)
    held = daemon.wait_state(bad, JobState.HELD)
    assert "only http:// and https:// URLs" in held.reason and "ftp://" in held.reason
    events = len(daemon.ledger.jobs.events(held.id))
    wait_until(lambda: rechecks(daemon, held.id) >= 3, timeout=20, what="three rechecks")
    assert len(daemon.ledger.jobs.events(held.id)) == events  # rechecked, nothing written
    assert daemon.job_for(bad) == held

    bad.write_text("https://example.com/clip.mp4\n")  # fixed: it goes on by itself
    daemon.wait_state(bad, JobState.DONE)


def test_nan_in_customizations_holds_its_job_and_the_rest_flows(daemon_factory, tmp_path) -> None:
    daemon: DaemonProcess = daemon_factory()
    notify = NotifySocket(tmp_path)
    try:
        daemon.start(env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"})
        wait_until(lambda: "READY=1" in notify.lines(), what="READY=1")
        (daemon.watch / "nan.json").write_text('{"customizations": {"playerColor": NaN}}')
        nan = daemon.watch / "nan.mp4"
        write_media(nan, seed=2)
        held = daemon.wait_state(nan, JobState.HELD)
        assert "nan.json" in held.reason and "NaN" in held.reason and held.attempts == 0
        others = [daemon.watch / f"after{n}.mp4" for n in range(3)]
        for n, clip in enumerate(others):
            write_media(clip, seed=10 + n)
        for clip in others:
            daemon.wait_state(clip, JobState.DONE)
        assert_pings_keep_coming(notify)
        assert "stage stopped by an error" not in daemon.logs()
    finally:
        notify.close()


def test_deeply_nested_clip_json_is_held_not_counted(daemon: DaemonProcess) -> None:
    (daemon.watch / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    deep = daemon.watch / "deep.mp4"
    write_media(deep, seed=3)
    other = daemon.watch / "other.mp4"
    write_media(other, seed=4)
    daemon.wait_state(other, JobState.DONE)
    held = daemon.wait_state(deep, JobState.HELD)
    assert "deep.json, line 1: nested deeper than the 32 levels allowed" in held.reason
    assert held.attempts == 0 and not daemon.sandbox.uploads()[1:]  # only `other` was sent
    assert "RecursionError" not in daemon.logs()


def test_a_name_that_is_not_utf8_is_uploaded_and_nothing_else_stops(
    daemon_factory, tmp_path: Path
) -> None:
    daemon: DaemonProcess = daemon_factory()
    odd = os.fsencode(daemon.watch) + b"/caf\xe9 \xff.mp4"
    with open(odd, "wb") as handle:
        handle.write(os.urandom(5000))
    notify = NotifySocket(tmp_path)
    try:
        daemon.start(env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"})
        wait_until(lambda: "READY=1" in notify.lines(), what="READY=1")
        good = daemon.watch / "good.mp4"
        write_media(good, seed=5)
        daemon.wait_state(good, JobState.DONE)
        job = daemon.wait_state(Path(os.fsdecode(odd)), JobState.DONE)
        assert os.fsencode(job.path) == odd  # the ledger kept the exact bytes
        names = {u.form["name"] for u in daemon.sandbox.uploads()}
        assert names == {"good.mp4", "caf\ufffd \ufffd.mp4"}  # Wistia gets valid text
        shown = {j["path"] for j in daemon.status_json()["jobs"]}
        assert str(daemon.watch) + "/caf\\xe9 \\xff.mp4" in shown
        table = daemon.cli("status")
        assert table.returncode == 0 and "caf\\xe9 \\xff.mp4" in table.stdout
        assert "stage stopped by an error" not in daemon.logs()
        assert_pings_keep_coming(notify, 1.0)
    finally:
        notify.close()


def test_a_fifo_named_like_a_caption_holds_its_job_and_blocks_nothing(
    daemon: DaemonProcess,
) -> None:
    os.mkfifo(daemon.watch / "piped.en.srt")
    piped = daemon.watch / "piped.mp4"
    write_media(piped, seed=6)
    held = daemon.wait_state(piped, JobState.HELD)
    assert "piped.en.srt is a FIFO (named pipe), not a regular file" in held.reason
    later = daemon.watch / "later.mp4"
    write_media(later, seed=7)
    daemon.wait_state(later, JobState.DONE)
    (daemon.watch / "piped.en.srt").unlink()  # the fix: the job goes on
    daemon.wait_state(piped, JobState.DONE)


def test_a_settling_file_swapped_for_a_fifo_blocks_nothing(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"settle_seconds": 1.5}).start()
    swapped = daemon.watch / "swapped.mp4"
    write_media(swapped, seed=8)
    daemon.wait_state(swapped, JobState.SETTLING)
    swapped.unlink()
    os.mkfifo(swapped)
    held = daemon.wait_state(swapped, JobState.HELD)
    assert "FIFO" in held.reason
    later = daemon.watch / "later.mp4"
    write_media(later, seed=9)
    daemon.wait_state(later, JobState.DONE)
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 5
    assert not daemon.sandbox.uploads()[1:]


def test_a_255_byte_name_is_uploaded(daemon: DaemonProcess) -> None:
    longest = daemon.watch / ("n" * 251 + ".mp4")
    (daemon.watch / "n.json").write_text('{"name": "not this one"}')  # another media's
    write_media(longest, seed=10)
    job = daemon.wait_state(longest, JobState.DONE)
    assert job.attempts == 0
    (upload,) = daemon.sandbox.uploads()
    assert upload.form["name"] == longest.name


def test_a_lost_race_in_the_poller_is_not_a_crash(daemon_factory) -> None:
    # One media asked about on its own: the job is read, the answer takes a second, and the
    # job is moved meanwhile. (A batch poll reads the jobs after its list came back.)
    daemon = daemon_factory(ingest={"batch_polling": False}).start()
    daemon.sandbox.store.processing_seconds = 30.0
    clip = daemon.watch / "raced.mp4"
    write_media(clip, seed=11)
    job = daemon.wait_state(clip, JobState.PROCESSING)
    daemon.sandbox.faults.update(slow_seconds=1.0)  # every poll's answer now takes a second

    def poll_in_flight() -> bool:
        poll = f"/v1/medias/{job.hashed_id}.json"
        return any(r.path == poll and r.finished is None for r in daemon.sandbox.records)

    wait_until(poll_in_flight, what="a poll under way")
    daemon.ledger.move(daemon.job_for(clip), JobState.FAILED, "moved by the test", error="x")
    wait_until(lambda: "moved meanwhile" in daemon.logs(), what="the poller saw the race")
    daemon.sandbox.faults.update(slow_seconds=0)
    daemon.sandbox.store.processing_seconds = 0.3
    other = daemon.watch / "other.mp4"
    write_media(other, seed=12)
    daemon.wait_state(other, JobState.DONE)
    assert "stage stopped by an error" not in daemon.logs()
    assert "restarting stage" not in daemon.logs()


def max_concurrent_uploads(records, since: float = 0.0) -> int:
    spans = [(r.started, r.finished or time.time()) for r in records if r.is_upload]
    spans = [(a, b) for a, b in spans if b >= since]
    return max((sum(1 for a, b in spans if a <= t < b) for t, _ in spans), default=0)


def test_scaling_workers_3_1_3_by_sighup_never_runs_more_than_configured(daemon_factory) -> None:
    daemon = daemon_factory()
    daemon.sandbox.faults.update(slow_upload_seconds=1.5)
    clips = [daemon.watch / f"w{n:02}.mp4" for n in range(12)]
    for n, clip in enumerate(clips):
        write_media(clip, 20_000, seed=n)
    daemon.start()

    def reload(workers: int) -> float:
        done = daemon.logs().count('"config reloaded"')
        daemon.config["ingest"]["workers"] = workers
        write_config(daemon.config_path, daemon.config)
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: daemon.logs().count('"config reloaded"') > done, what="reload")
        return time.time()

    # 3 -> 1 -> 3 while three uploads are under way: the two let go are taken back.
    wait_until(lambda: max_concurrent_uploads(daemon.sandbox.records) == 3, what="3 at once")
    reload(1)
    reload(3)
    # 3 -> 1 for good: the two let go finish their upload, then one worker is left.
    wait_until(lambda: len(daemon.sandbox.uploads()) >= 6, timeout=20, what="six uploads")
    calm = reload(1) + 1.6
    wait_until(lambda: time.time() > calm + 3.2, timeout=10, what="uploads at one worker")
    assert max_concurrent_uploads(daemon.sandbox.records, since=calm) == 1
    reload(3)
    for clip in clips:
        daemon.wait_state(clip, JobState.DONE, timeout=40)
    assert max_concurrent_uploads(daemon.sandbox.records) == 3  # never 4 or 5


def test_auth_probes_do_not_hold_up_the_watchdog(daemon_factory, tmp_path: Path) -> None:
    daemon = daemon_factory(ingest={"probe_min_seconds": 0.2, "probe_max_seconds": 0.4})
    daemon.sandbox.faults.update(auth_fail=True, latency=2.0)  # each probe waits 2 s
    write_media(daemon.watch / "a.mp4", seed=13)
    notify = NotifySocket(tmp_path)
    try:
        daemon.start(env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"})
        wait_until(lambda: daemon.status_json()["hold"], what="auth hold")
        probes = lambda: [r for r in daemon.sandbox.records if r.path == "/v1/account.json"]  # noqa: E731
        wait_until(lambda: len(probes()) >= 2, timeout=15, what="two slow probes")
        assert_pings_keep_coming(notify, 2.0)
    finally:
        notify.close()
