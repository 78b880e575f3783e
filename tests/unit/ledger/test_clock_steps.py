"""Due times in the ledger when the system clock steps: the hold's probe, and what an earlier
process stored far ahead."""

from __future__ import annotations

from ingestd.core.jobs import JobState
from tests.unit.conftest import World, processing_job, queued_job

S = JobState
DAY = 86_400.0


def test_the_holds_probe_comes_after_its_interval_though_the_clock_stepped_back(
    world: World,
) -> None:
    from ingestd.core.jobs import HoldRequest

    ledger, clock = world.ledger, world.clock
    ledger.hold.start(HoldRequest("video_limit", "limit", first_probe_in=60.0))
    clock.wall_offset = -DAY
    assert not ledger.hold.take_probe("video_limit", 120.0)
    clock.t += 60.01
    assert ledger.hold.take_probe("video_limit", 120.0)


def test_due_times_stored_far_ahead_by_an_earlier_process_are_due_at_start_up(
    world: World,
) -> None:
    """The daemon stopped; the system clock was set back a day; it starts again. What the
    last process stored a day ahead is due now, and what began "in the future" begins now."""
    ledger, clock = world.ledger, world.clock
    queued = queued_job(ledger, world.watch / "a.mp4")
    ledger.update(queued, next_attempt_at=clock.now() + DAY + 30)
    polled = processing_job(ledger, world.watch / "b.mp4", "hb", since=clock.now() + DAY)
    ledger.update(polled, next_poll_at=clock.now() + DAY)
    soon = queued_job(ledger, world.watch / "c.mp4")
    ledger.update(soon, next_attempt_at=clock.now() + 30)  # a plausible wait: kept
    assert ledger.dues.bring_within(clock.now()) == 3
    assert ledger.get(queued.id).next_attempt_at == clock.now()
    assert ledger.get(polled.id).processing_since == clock.now()
    assert ledger.get(polled.id).next_poll_at == clock.now()
    assert ledger.get(soon.id).next_attempt_at == clock.now() + 30
    assert ledger.uploads.claim(clock.now()).id == queued.id


def test_a_wait_the_config_allows_is_kept_across_a_restart(world: World) -> None:
    """probe_max_seconds = 6 h: a probe due in 5 h is a real wait, not a clock step."""
    ledger, clock = world.ledger, world.clock
    queued = queued_job(ledger, world.watch / "a.mp4")
    ledger.update(queued, next_attempt_at=clock.now() + 5 * 3600)
    longest = world.with_ingest(probe_max_seconds=6 * 3600).ingest.longest_wait_seconds
    assert ledger.dues.bring_within(clock.now(), longest) == 0
    assert ledger.get(queued.id).next_attempt_at == clock.now() + 5 * 3600
    assert ledger.dues.bring_within(clock.now()) == 1  # the default caps: a step
