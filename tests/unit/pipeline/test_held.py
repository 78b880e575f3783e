"""Held jobs: rechecked at growing intervals with the very check that found the problem,
writing nothing while nothing changed, and let go once it is fixed."""

from __future__ import annotations

import itertools

from ingestd.core.jobs import Job, JobState
from ingestd.ledger import Ledger
from tests.unit.conftest import World, queued_job

S = JobState


def test_held_job_recheck_writes_nothing_until_fixed_then_resumes(world: World) -> None:
    ledger, watch, clock = world.ledger, world.watch, world.clock
    uploader = world.uploader()
    held_jobs = world.held_jobs({S.QUEUED: uploader.preflight})
    path = watch / "clip.url"
    queued = queued_job(ledger, path, b"ftp://example.com/clip.mp4\n")
    job = ledger.uploads.claim()
    uploader.guard.run(ledger, job, uploader._process)
    held = ledger.get(queued.id)
    assert held.state == S.HELD and "ftp://" in held.reason
    events = len(ledger.jobs.events(held.id))

    for _ in range(5):  # nothing changed: rechecks at growing intervals, and no writes
        for due in held_jobs.due(ledger, clock.now()):
            held_jobs.guard.run(ledger, due, held_jobs.recheck)
        clock.t += 1000
    assert len(ledger.jobs.events(held.id)) == events and ledger.get(held.id) == held
    assert held_jobs.due(ledger, clock.now()) == [held]  # the interval is long, but it was due

    path.write_text("https://example.com/clip.mp4\n")
    held_jobs.nudge(watch)  # the watcher saw the folder change: look at once
    (due,) = held_jobs.due(ledger, clock.now())
    held_jobs.guard.run(ledger, due, held_jobs.recheck)
    assert ledger.get(held.id).state == S.QUEUED
    assert ledger.jobs.events(held.id)[-1].note == "problem fixed"
    assert uploader.prepare(ledger.get(held.id)).url == "https://example.com/clip.mp4"


def test_held_job_rechecks_grow_and_a_nudge_starts_them_over(world: World) -> None:
    ledger, watch, clock = world.ledger, world.watch, world.clock
    checks: list[float] = []

    def still_bad(ledger: Ledger, job: Job) -> None:
        from ingestd.core.errors import JobInputError

        checks.append(clock.t)
        raise JobInputError("clip.json: bad")

    held_jobs = world.held_jobs({S.QUEUED: still_bad})
    job = queued_job(ledger, watch / "clip.mp4")
    ledger.move(ledger.uploads.claim(), S.HELD, reason="clip.json: bad")
    held_at = clock.t
    for _ in range(400):  # 200 s in half-second steps
        for due in held_jobs.due(ledger, clock.now()):
            held_jobs.guard.run(ledger, due, held_jobs.recheck)
        clock.t += 0.5
    gaps = [b - a for a, b in itertools.pairwise([held_at, *checks])]
    assert gaps[:6] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0] and max(gaps) == 60.0
    before = len(checks)
    held_jobs.nudge(watch / "sub")  # another folder: not this job's
    assert held_jobs.due(ledger, clock.now()) == []
    held_jobs.nudge(watch)
    assert held_jobs.due(ledger, clock.now()) == [ledger.get(job.id)]
    assert len(checks) == before


def test_a_job_held_again_right_after_release_cycles_ever_more_slowly(world: World) -> None:
    ledger, watch, clock = world.ledger, world.watch, world.clock

    def looks_fine(ledger: Ledger, job: Job) -> None:
        pass  # the recheck sees nothing wrong; only the stage itself meets the problem

    held_jobs = world.held_jobs({S.QUEUED: looks_fine})
    queued_job(ledger, watch / "clip.mp4")
    ledger.move(ledger.uploads.claim(), S.HELD, reason="cannot move the file")
    releases = []
    for _ in range(1200):  # 10 minutes in half-second steps
        for due in held_jobs.due(ledger, clock.now()):
            held_jobs.guard.run(ledger, due, held_jobs.recheck)
            releases.append(clock.t)
            again = ledger.uploads.claim(clock.t)  # the stage meets the problem again at once
            ledger.move(again, S.HELD, reason="cannot move the file")
        clock.t += 0.5
    gaps = [b - a for a, b in itertools.pairwise(releases)]
    assert gaps[:4] == [4.0, 8.0, 16.0, 32.0] and min(gaps) >= 4.0
    assert len(releases) <= 15  # in ten minutes: not several a second, at most one a minute
