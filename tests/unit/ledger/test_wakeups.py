"""Wake-ups: a stage waiting for jobs to enter its state is woken by that, and only that."""

from __future__ import annotations

from pathlib import Path

from ingestd.core.jobs import HoldRequest, JobState
from ingestd.ledger import Ledger

S = JobState


def queued(ledger: Ledger, name: str = "/w/a.mp4", sha: str = "aa"):
    job = ledger.settling.add(name, "file", 10, 1)
    return ledger.settling.settle(job, sha)


def test_a_job_entering_a_state_wakes_its_waiters_and_nothing_else_does(tmp_path: Path) -> None:
    from ingestd.ledger import Wakeups

    wakeups = Wakeups()
    ledger = Ledger(tmp_path / "l.db", wakeups=wakeups)
    queued, settling = wakeups.arrivals(JobState.QUEUED), wakeups.arrivals(JobState.SETTLING)
    assert ledger.uploads.claim() is None  # a write transaction that moves nothing
    assert not queued.is_set() and not settling.is_set()  # wakes no one (no busy looping)
    job = ledger.settling.add("/w/a.mp4", "file", 1, 1)
    assert settling.is_set() and not queued.is_set()
    ledger.settling.settle(job, "aa")
    assert queued.is_set()
    ledger.close()


def test_a_cleared_hold_wakes_every_stage_and_a_finished_loop_leaves_no_waiter(
    tmp_path: Path,
) -> None:
    from ingestd.ledger import Wakeups

    wakeups = Wakeups()
    ledger = Ledger(tmp_path / "l.db", wakeups=wakeups)
    ledger.hold.start(HoldRequest("video_limit", "full", first_probe_in=60.0))
    with (
        wakeups.arrivals_while(JobState.QUEUED) as queued,
        wakeups.arrivals_while(JobState.PROCESSING) as polled,
    ):
        assert ledger.hold.clear()
        assert queued.is_set() and polled.is_set()  # held-back uploads and polls may go on
        queued.clear()
        assert not ledger.hold.clear()  # nothing to clear: no one woken
        assert not queued.is_set()
    waiting = wakeups._waiters
    assert queued not in waiting[JobState.QUEUED] and polled not in waiting[JobState.PROCESSING]
    ledger.close()
