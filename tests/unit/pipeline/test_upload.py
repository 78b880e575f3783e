"""The uploader, one job at a time: the hold, files that are not what they were, a retry's
wait, and a crash's attempt found again by name."""

from __future__ import annotations

import os

import httpx
import pytest

from ingestd.core.jobs import JobState
from tests.unit.conftest import World, queued_job

S = JobState
DAY = 86_400.0


def test_upload_video_limit_requeues_and_holds_the_account(world: World) -> None:
    ledger = world.ledger
    uploader = world.uploader()
    queued_job(ledger, world.watch / "clip.mp4")
    job = ledger.uploads.claim()
    limit = {"error": "This account has exceeded its video limit. Please upgrade."}
    world.wistia.answer = lambda r: httpx.Response(400, json=limit)
    uploader.guard.run(ledger, job, uploader._process)
    after = ledger.get(job.id)
    assert after.state == S.QUEUED and after.attempts == 0
    assert ledger.hold.current().kind == "video_limit"
    (sent,) = world.wistia.requests
    assert sent.headers["Authorization"] == "Bearer tok" and b"video bytes" in sent.content


def test_upload_of_a_fifo_is_held_without_reading_it(world: World) -> None:
    ledger = world.ledger
    uploader = world.uploader()
    path = world.watch / "clip.mp4"
    queued_job(ledger, path)
    path.unlink()
    os.mkfifo(path)  # a writer never comes: opening it for reading must not wait for one
    job = ledger.uploads.claim()
    uploader.guard.run(ledger, job, uploader._process)
    held = ledger.get(job.id)
    assert held.state == S.HELD and "FIFO" in held.reason
    assert world.wistia.requests == []


def test_a_file_changed_before_upload_settles_again(world: World) -> None:
    ledger = world.ledger
    uploader = world.uploader()
    path = world.watch / "clip.mp4"
    queued_job(ledger, path)
    path.write_bytes(b"other, longer video bytes")
    job = ledger.uploads.claim()
    uploader.guard.run(ledger, job, uploader._process)
    after = ledger.get(job.id)
    assert after.state == S.SETTLING and after.size == len(b"other, longer video bytes")
    assert world.wistia.requests == []


def test_a_255_byte_name_settles_and_its_sidecars_are_looked_for(world: World) -> None:
    settings, ledger = world.settings, world.ledger
    path = world.watch / ("x" * 251 + ".mp4")
    queued_job(ledger, path)
    uploader = world.uploader(settings)
    upload = uploader.prepare(ledger.uploads.claim())
    upload.close()
    assert upload.fields["name"] == path.name


def test_a_touch_after_a_timed_out_upload_still_reconciles(world: World) -> None:
    ledger, watch, clock = world.ledger, world.watch, world.clock
    uploader = world.uploader()
    path = watch / "clip.mp4"
    queued = queued_job(ledger, path)

    def timeout_then_touch(request: httpx.Request) -> httpx.Response:
        os.utime(path, ns=(5, 5))  # touched while Wistia was (slowly) creating the media
        raise httpx.ReadTimeout("no answer", request=request)

    world.wistia.answer = timeout_then_touch
    uploader.guard.run(ledger, ledger.uploads.claim(clock.t), uploader._process)
    settling = ledger.get(queued.id)
    assert settling.state == S.SETTLING and settling.attempts == 0
    assert settling.upload_started_at is not None and settling.media_name == "clip.mp4"
    # The same bytes again:
    requeued = ledger.settling.settle(ledger.update(settling, mtime_ns=5), "sha")
    assert requeued.attempted  # the next claim asks Wistia before sending anything
    assert not ledger.settling.settle(
        ledger.move(ledger.uploads.claim(clock.t), S.SETTLING), "other"
    ).attempted  # new bytes: the old attempt is not theirs


@pytest.mark.parametrize("step", [-DAY, +DAY])
def test_a_retry_is_due_after_its_wait_whichever_way_the_wall_clock_steps(
    world: World, step: float
) -> None:
    ledger, clock = world.ledger, world.clock
    uploader = world.uploader()
    queued_job(ledger, world.watch / "clip.mp4")
    world.wistia.answer = lambda r: httpx.Response(500, json={"error": "boom"})
    job = ledger.uploads.claim(clock.now())
    uploader.guard.run(ledger, job, uploader._process)
    waiting = ledger.get(job.id)
    assert waiting.state == S.QUEUED and waiting.next_attempt_at is not None
    clock.wall_offset = step  # the system clock steps; the steady one goes on
    assert ledger.uploads.claim(clock.now()) is None  # not due yet: a step brings nothing near
    clock.t = waiting.next_attempt_at + 0.01
    assert ledger.uploads.claim(clock.now()).id == job.id  # due after its wait, no later
