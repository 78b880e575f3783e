"""The job model: which moves TRANSITIONS allows, and where a held or retried job goes on."""

from __future__ import annotations

import pytest

from ingestd.core.jobs import TERMINAL, TRANSITIONS, JobState, can_move, resume_state
from ingestd.ledger import Ledger

S = JobState


def queued(ledger: Ledger, name: str = "/w/a.mp4", sha: str = "aa"):
    job = ledger.settling.add(name, "file", 10, 1)
    return ledger.settling.settle(job, sha)


def test_terminal_states_have_no_way_out_but_retry() -> None:
    assert TRANSITIONS[S.DONE] == frozenset()
    # retry: from the queue, from finishing (sidecars only), from settling (never read whole)
    assert TRANSITIONS[S.FAILED] == {S.QUEUED, S.FINISHING, S.SETTLING}
    assert {S.DONE, S.FAILED} == set(TERMINAL)


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        (S.SETTLING, S.QUEUED, True),
        (S.SETTLING, S.UPLOADING, False),
        (S.QUEUED, S.UPLOADING, True),
        (S.QUEUED, S.PROCESSING, True),  # a file older than the ledger, found in Wistia
        (S.QUEUED, S.FINISHING, False),
        (S.QUEUED, S.HELD, True),  # its look in Wistia found a sidecar it cannot read
        (S.UPLOADING, S.PROCESSING, True),
        (S.UPLOADING, S.QUEUED, True),
        (S.UPLOADING, S.DONE, False),
        (S.PROCESSING, S.FINISHING, True),
        (S.PROCESSING, S.QUEUED, False),
        (S.FINISHING, S.DONE, True),
        (S.HELD, S.FINISHING, True),
        (S.DONE, S.QUEUED, False),
        (S.FAILED, S.QUEUED, True),
    ],
)
def test_transition_table(source: JobState, target: JobState, allowed: bool) -> None:
    assert can_move(source, target) is allowed


def test_resume_state_follows_how_far_the_job_got(ledger: Ledger) -> None:
    job = ledger.settling.add("/w/x.mp4", "file", 1, 1)
    assert resume_state(job) == S.SETTLING
    job = ledger.settling.settle(job, "sha")
    assert resume_state(job) == S.QUEUED
    job = ledger.update(job, hashed_id="h")
    assert resume_state(job) == S.FINISHING
