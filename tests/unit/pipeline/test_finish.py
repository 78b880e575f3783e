"""The finisher, one job at a time: bad sidecars hold only their job, the file's fate is
recorded before it moves, and nothing is sent twice after a crash."""

from __future__ import annotations

import os

import httpx
import pytest

from ingestd.core.jobs import Job, JobState
from ingestd.ledger import Fate, Ledger
from tests.unit.conftest import World, finishing_job, media, processing_job

S = JobState


@pytest.mark.parametrize(
    ("sidecar", "words"),
    [
        ('{"customizations": {"playerColor": NaN}}', "NaN"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than the 32 levels"),
    ],
    ids=["nan", "deep"],
)
def test_a_poisoned_clip_json_holds_only_its_job(world: World, sidecar: str, words: str) -> None:
    ledger, watch = world.ledger, world.watch
    finisher = world.finisher()
    bad = processing_job(ledger, watch / "bad.mp4")
    (watch / "bad.json").write_text(sidecar)
    bad = ledger.move(bad, S.FINISHING)
    finisher.guard.run(ledger, bad, finisher.finish)
    held = ledger.get(bad.id)
    assert held.state == S.HELD and words in held.reason and "bad.json" in held.reason
    assert world.wistia.requests == []


def test_an_unexpected_error_fails_one_job_and_the_next_one_goes_on(world: World) -> None:
    ledger, watch = world.ledger, world.watch
    finisher = world.finisher()
    first = ledger.move(processing_job(ledger, watch / "a.mp4"), S.FINISHING)

    def broken(ledger: Ledger, job: Job) -> None:
        raise KeyError("surprise")

    finisher.guard.run(ledger, first, broken)
    failed = ledger.get(first.id)
    assert failed.state == S.FAILED and failed.error == "internal error: KeyError: 'surprise'"


def test_a_sidecar_dated_in_the_future_does_not_keep_finishing_waiting(world: World) -> None:
    ledger, watch = world.ledger, world.watch
    finisher, job = finishing_job(world)
    (watch / "clip.json").write_text('{"description": "from the future"}')
    os.utime(watch / "clip.json", (4_000_000_000, 4_000_000_000))  # the year 2096
    world.clock.t = 2_000_000_000.0
    world.wistia.answer = lambda r: httpx.Response(200, json=media("ready"))
    finisher.guard.run(ledger, job, finisher.finish)
    assert ledger.get(job.id).state == S.DONE
    assert b"from+the+future" in world.wistia.requests[0].content


def test_after_a_crash_mid_move_the_sidecars_are_not_sent_again(world: World, tmp_path) -> None:
    ledger, watch = world.ledger, world.watch
    archive = tmp_path / "archive"
    finisher, job = finishing_job(world, after_upload="move", archive_dir=str(archive))
    (watch / "clip.json").write_text('{"name": "Launch", "customizations": {"autoPlay": true}}')
    world.wistia.answer = lambda r: httpx.Response(200, json=media("ready"))
    # A first pass sent the sidecars, recorded the move target, moved clip.json, and died.
    sidecars = finisher.preflight(ledger, job)
    for step in finisher.sync.steps.pending(ledger, job, sidecars):
        step.send()
        ledger.steps.record_sent(job.id, step.name, step.digest)
    target = archive / "clip.mp4"
    ledger.steps.record_fate(job.id, Fate("move", target))
    archive.mkdir()
    os.rename(watch / "clip.json", archive / "clip.json")  # moved; then the kill -9
    sent = len(world.wistia.requests)
    finisher.guard.run(ledger, job, finisher.finish)  # the restart
    assert ledger.get(job.id).state == S.DONE
    assert len(world.wistia.requests) == sent  # nothing re-sent without its clip.json
    assert target.exists() and not (watch / "clip.mp4").exists()


def test_an_archive_that_is_a_file_holds_the_job_before_anything_is_sent(
    world: World, tmp_path
) -> None:
    (tmp_path / "archive").write_text("not a folder")
    finisher, job = finishing_job(world, after_upload="move", archive_dir=str(tmp_path / "archive"))
    finisher.guard.run(world.ledger, job, finisher.finish)
    held = world.ledger.get(job.id)
    assert held.state == S.HELD and "archive is not a folder" in held.reason
    assert world.wistia.requests == []


def test_a_255_byte_name_moves_into_an_archive_where_it_is_taken(world: World, tmp_path) -> None:
    ledger, watch = world.ledger, world.watch
    archive = tmp_path / "archive"
    name = "n" * 251 + ".mp4"
    finisher, job = finishing_job(world, name, after_upload="move", archive_dir=str(archive))
    archive.mkdir()
    (archive / name).write_text("an earlier file of the same name")
    world.wistia.answer = lambda r: httpx.Response(200, json=media("ready"))
    finisher.guard.run(ledger, job, finisher.finish)
    done = ledger.get(job.id)
    assert done.state == S.DONE, done.reason
    (moved,) = [p for p in archive.iterdir() if p.name != name]
    assert moved.name.endswith(" (1).mp4") and len(os.fsencode(moved.name)) <= 255
    assert (archive / name).read_text() == "an earlier file of the same name"
    assert not (watch / name).exists()
