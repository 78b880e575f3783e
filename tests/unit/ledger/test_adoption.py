"""Adoption in the ledger: which queued files wait for a look in Wistia, that the claim takes
none of them, the three ends of a look, and the round `status` counts."""

from __future__ import annotations

import time
from pathlib import Path

from ingestd.core.jobs import JobState
from ingestd.ledger import Adopted, Ledger

S = JobState
OLD = 1_000_000_000  # nanoseconds since the epoch: long before any ledger


def queued(ledger: Ledger, path: str, mtime_ns: int = OLD, sha: str = "aa", adopt: bool = True):
    job = ledger.settling.add(path, "file", 10, mtime_ns)
    return ledger.settling.settle(job, sha, adopt=adopt)


def adopted(ready: bool = True) -> Adopted:
    return Adopted("abc123", 7, "a.mp4", "proj1", ready, "already in Wistia as abc123")


def test_the_ledger_knows_when_it_was_made_and_a_reopen_does_not_move_it(tmp_path: Path) -> None:
    before = time.time()
    first = Ledger(tmp_path / "l.db")
    made = first.adoption.created_at()
    first.close()
    assert made is not None and before - 1 <= made <= time.time()
    again = Ledger(tmp_path / "l.db")
    assert again.adoption.created_at() == made
    again.close()


def test_only_old_files_at_paths_with_no_done_version_wait(ledger: Ledger) -> None:
    old = queued(ledger, "/w/old.mp4")
    new = queued(ledger, "/w/new.mp4", mtime_ns=time.time_ns() + 10**9)
    off = queued(ledger, "/w/off.mp4", adopt=False)
    url = ledger.settling.settle(ledger.settling.add("/w/x.url", "url", 10, OLD), "bb", adopt=True)
    assert [j.id for j in ledger.adoption.waiting()] == [old.id]
    for other in (new, off, url):  # none of them waits for a look
        assert other is not None and ledger.get(other.id).reason is None
    assert ledger.get(old.id).reason.startswith("older than the ledger")

    # A path whose earlier version is done: a new version, not a file to adopt.
    done = queued(ledger, "/w/done.mp4", adopt=False)
    job = ledger.uploads.claim()
    while job is not None and job.id != done.id:
        job = ledger.uploads.claim()
    assert job is not None
    job = ledger.move(job, S.PROCESSING, "uploaded", hashed_id="h1", media_id=1)
    job = ledger.move(job, S.FINISHING, "ready")
    ledger.move(job, S.DONE, "done")
    queued(ledger, "/w/done.mp4", sha="cc")
    assert [j.id for j in ledger.adoption.waiting()] == [old.id]


def test_the_claim_takes_no_job_waiting_for_its_look(ledger: Ledger) -> None:
    old = queued(ledger, "/w/old.mp4")
    assert ledger.uploads.claim() is None
    ledger.adoption.none(old, "not in Wistia yet")
    claimed = ledger.uploads.claim()
    assert claimed is not None and claimed.id == old.id
    assert claimed.reason is None


def test_found_goes_on_from_the_media_and_records_what_it_has(ledger: Ledger) -> None:
    ready = queued(ledger, "/w/a.mp4")
    waiting = queued(ledger, "/w/b.mp4")
    media = Adopted("abc123", 7, "a.mp4", "proj1", True, "already in Wistia", "digest")
    moved = ledger.adoption.found(ready, media)
    assert moved.state == S.FINISHING
    assert (moved.hashed_id, moved.media_id, moved.project_id) == ("abc123", 7, "proj1")
    assert ledger.steps.sent(ready.id) == {"metadata": "digest"}
    assert [(e.from_state, e.to_state) for e in ledger.jobs.events(ready.id)][-2:] == [
        ("queued", "processing"),
        ("processing", "finishing"),
    ]
    processing = ledger.adoption.found(waiting, Adopted("def456", 8, "b.mp4", None, False, "x"))
    assert processing.state == S.PROCESSING and processing.next_poll_at is not None
    assert ledger.steps.sent(waiting.id) == {}


def test_several_fail_the_job_and_a_retry_uploads_it(ledger: Ledger) -> None:
    job = queued(ledger, "/w/a.mp4")
    failed = ledger.adoption.failed(job, "already in Wistia 2 times: a, b")
    assert failed.state == S.FAILED and failed.error == "already in Wistia 2 times: a, b"
    retried = ledger.jobs.retry(failed)
    assert retried.state == S.QUEUED
    claimed = ledger.uploads.claim()
    assert claimed is not None and claimed.id == job.id


def test_the_round_is_counted_until_its_last_file_is_checked(ledger: Ledger) -> None:
    jobs = [queued(ledger, f"/w/{n}.mp4", sha=f"s{n}") for n in range(3)]
    assert ledger.adoption.progress() == (3, 0)
    ledger.adoption.none(jobs[0], "not in Wistia yet")
    ledger.adoption.found(jobs[1], adopted())
    assert ledger.adoption.progress() == (3, 2)
    ledger.adoption.none(jobs[2], "not in Wistia yet")
    assert ledger.adoption.progress() is None
    # A later round counts its own files only.
    queued(ledger, "/w/later.mp4", sha="later")
    assert ledger.adoption.progress() == (1, 0)


def test_turned_off_every_waiting_file_is_uploaded(ledger: Ledger) -> None:
    jobs = [queued(ledger, f"/w/{n}.mp4", sha=f"s{n}") for n in range(2)]
    assert ledger.adoption.stop_looking("ingest.adopt is off") == 2
    assert ledger.adoption.waiting() == [] and ledger.adoption.progress() is None
    assert {ledger.uploads.claim().id, ledger.uploads.claim().id} == {j.id for j in jobs}


def test_why_files_still_wait_is_written_only_on_those_still_waiting(ledger: Ledger) -> None:
    decided, waiting = (queued(ledger, f"/w/{n}.mp4", sha=f"s{n}") for n in range(2))
    ledger.adoption.none(decided, "not in Wistia yet")
    ledger.adoption.still_waiting([decided, waiting], "waiting; Wistia could not answer")
    assert ledger.get(decided.id).reason is None
    assert ledger.get(waiting.id).reason == "waiting; Wistia could not answer"
    failed = ledger.adoption.failed(waiting, "could not look for it in Wistia")
    assert failed.state == S.FAILED and ledger.adoption.progress() is None


def test_a_file_held_before_its_look_is_looked_for_once_back_in_the_queue(ledger: Ledger) -> None:
    """Its sidecar could not be read: held. The round ends with the other file, but the held
    one keeps its look: back in the queue, it waits for it (never uploaded blind)."""
    held, other = (queued(ledger, f"/w/{n}.mp4", sha=f"s{n}") for n in range(2))
    held = ledger.move(held, S.HELD, "clip.json, line 1: not JSON")
    ledger.adoption.none(other, "not in Wistia yet")
    assert ledger.adoption.progress() is None
    back = ledger.move(held, S.QUEUED, "fixed")
    assert [j.id for j in ledger.adoption.waiting()] == [back.id]
    assert ledger.adoption.progress() == (1, 0)
    claimed = ledger.uploads.claim()
    assert claimed is not None and claimed.id == other.id  # the held one is not taken
    assert ledger.uploads.claim() is None
