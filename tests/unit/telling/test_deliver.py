"""Delivering notifications: a waiting notification's age and wait on the steady clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestd.core.jobs import JobState
from ingestd.telling.notify.deliver import outbox_for
from tests.unit.conftest import World, queued_job

S = JobState
DAY = 86_400.0


@pytest.mark.parametrize("step", [-DAY, +2 * DAY])
def test_a_waiting_notification_is_neither_dropped_nor_stalled_by_a_step(
    world: World, tmp_path: Path, step: float
) -> None:
    ledger, clock, settings = world.ledger, world.clock, world.settings
    told = tmp_path / "told"
    settings.notify.command = ["/bin/sh", "-c", f"touch '{told}'"]
    settings.notify.events = ["failed"]
    world.ledgers.outbox = outbox_for(settings.notify)
    job = queued_job(ledger, world.watch / "clip.mp4")
    ledger.move(ledger.uploads.claim(clock.now()), S.FAILED, "no", error="no")
    (notification,) = ledger.outbox.due(clock.now())
    ledger.outbox.failed(notification, "refused", retry_at=clock.now() + 5.0)
    clock.wall_offset = step  # 2 days ahead: beyond max_age_hours (24)
    clock.t += 5.01
    notifier = world.notifier(settings)
    (due,) = ledger.outbox.due(clock.now())
    assert notifier.deliver(ledger, due)
    assert told.exists(), "dropped as too old instead of delivered"
    assert job.id == due.job_id
