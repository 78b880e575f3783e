"""The outbox's digest windows: a receiver told in digests gets its notification due when the
window that opened with it closes, and not before a retry it already waits for; a digest takes
every notification waiting for its receiver; status counts what waits per kind of receiver."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestd.core.clock import Clock
from ingestd.core.jobs import Job, JobState
from ingestd.ledger import Ledger, Outbox
from ingestd.telling.views import job_view_text


class SetClock(Clock):
    def __init__(self) -> None:
        self.t = 1_000_000.0
        super().__init__(wall=lambda: self.t, monotonic=lambda: self.t)


@pytest.fixture
def clock() -> SetClock:
    return SetClock()


@pytest.fixture
def ledger(tmp_path: Path, clock: SetClock) -> Ledger:
    outbox = Outbox(
        frozenset({"done", "failed"}),
        ("webhook", "slack#1", "mailto#1"),
        job_view_text,
        digested=frozenset({"slack#1", "mailto#1"}),
        digest_seconds=60.0,
    )
    opened = Ledger(tmp_path / "ledger.db", clock=clock, outbox=outbox)
    yield opened
    opened.close()


def _done(ledger: Ledger, name: str) -> Job:
    job = ledger.settling.add(f"/srv/inbox/{name}", "file", 10, 1)
    return ledger.move(job, JobState.FAILED, "empty", error="empty file (0 bytes)")


def test_a_digested_receiver_waits_for_the_window_the_webhook_does_not(
    ledger: Ledger, clock: SetClock
) -> None:
    _done(ledger, "a.mp4")
    assert [n.receiver for n in ledger.outbox.due(clock.t)] == ["webhook"]
    assert ledger.outbox.receivers_due(clock.t + 59.9) == ["webhook"]
    assert sorted(ledger.outbox.receivers_due(clock.t + 60)) == ["mailto#1", "slack#1", "webhook"]


def test_what_arrives_while_the_window_is_open_goes_with_it(
    ledger: Ledger, clock: SetClock
) -> None:
    _done(ledger, "a.mp4")
    opened = clock.t
    clock.t += 30
    _done(ledger, "b.mp4")
    clock.t += 30  # the first one's window closes: both wait, one message takes both
    assert "slack#1" in ledger.outbox.receivers_due(clock.t)
    taken = ledger.outbox.waiting_for("slack#1", 50)
    assert [n.job_id for n in taken] == [1, 2]
    assert ledger.outbox.soonest(frozenset({"webhook", "mailto#1"})) == opened + 60
    ledger.outbox.forget_all(taken)
    assert ledger.outbox.waiting_for("slack#1", 50) == []
    assert len(ledger.outbox.waiting_for("mailto#1", 50)) == 2  # each URL on its own


def test_a_receiver_waiting_for_its_retry_gathers_what_comes_meanwhile(
    ledger: Ledger, clock: SetClock
) -> None:
    _done(ledger, "a.mp4")
    clock.t += 60
    refused = ledger.outbox.waiting_for("slack#1", 50)
    ledger.outbox.failed_all(refused, "Slack answered HTTP 500", retry_at=clock.t + 600)
    clock.t += 10
    _done(ledger, "b.mp4")  # its window would close in 60 s; the retry is later
    assert "slack#1" not in ledger.outbox.receivers_due(clock.t + 589.9)
    assert "mailto#1" in ledger.outbox.receivers_due(clock.t + 60)  # not held up by Slack
    retried = ledger.outbox.due(clock.t + 590, 50, "slack#1")  # both, at the retry
    assert [(n.job_id, n.attempts) for n in retried] == [(1, 1), (2, 0)]


def test_status_counts_what_waits_per_kind_of_receiver(ledger: Ledger, clock: SetClock) -> None:
    _done(ledger, "a.mp4")
    _done(ledger, "b.mp4")
    waiting = ledger.outbox.waiting()
    assert waiting["waiting"] == 2
    assert waiting["receivers"] == {"mailto": 2, "slack": 2, "webhook": 2}
    ledger.outbox.forget_all(ledger.outbox.waiting_for("webhook", 50))
    assert ledger.outbox.waiting()["receivers"] == {"mailto": 2, "slack": 2}
