"""The ledger on real SQLite: checked moves with their events, claims, versions, retries, the hold,
and what it survives (locks, a full disk, many openers, old schemas)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from ingestd.core.errors import FileChanged
from ingestd.core.jobs import HoldRequest, JobState
from ingestd.ledger import SCHEMA_VERSION, InvalidTransition, Ledger, StaleTransition

S = JobState


def queued(ledger: Ledger, name: str = "/w/a.mp4", sha: str = "aa"):
    job = ledger.settling.add(name, "file", 10, 1)
    return ledger.settling.settle(job, sha)


def test_schema_is_versioned_and_in_wal_mode(ledger: Ledger) -> None:
    assert ledger.db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert ledger.db.sqlite_utils.journal_mode == "wal"
    reopened = Ledger(ledger.path)  # a second open migrates nothing and fails nothing
    assert reopened.jobs.counts() == {}
    reopened.close()


def test_every_move_is_an_event_and_a_wrong_move_is_refused(ledger: Ledger) -> None:
    job = queued(ledger)
    claimed = ledger.uploads.claim()
    assert claimed is not None and claimed.id == job.id and claimed.state == S.UPLOADING
    with pytest.raises(InvalidTransition):
        ledger.move(claimed, S.DONE, "skipping ahead")
    moved = ledger.move(claimed, S.PROCESSING, "uploaded", hashed_id="abc", media_id=7)
    assert (moved.hashed_id, moved.media_id) == ("abc", 7)
    with pytest.raises(StaleTransition):
        ledger.move(claimed, S.QUEUED, "someone else's stale view")  # it is processing now
    assert [(e.from_state, e.to_state) for e in ledger.jobs.events(job.id)] == [
        (None, "settling"),
        ("settling", "queued"),
        ("queued", "uploading"),
        ("uploading", "processing"),
    ]


def test_claim_is_atomic_across_connections(tmp_path: Path) -> None:
    first = Ledger(tmp_path / "l.db")
    for n in range(40):
        queued(first, f"/w/{n}.mp4", sha=str(n))
    claimed: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = Ledger(tmp_path / "l.db")
        while (job := mine.uploads.claim()) is not None:
            with lock:
                claimed.append(job.id)
        mine.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(claimed) == list(range(1, 41))  # each exactly once
    first.close()


def test_same_content_at_the_same_path_is_the_same_version(ledger: Ledger) -> None:
    job = queued(ledger, sha="same")
    assert job is not None
    touched = ledger.settling.add(job.path, "file", 10, 2)  # new mtime
    assert ledger.settling.settle(touched, "same") is None
    assert [j.id for j in ledger.jobs.active_and_recent(None)] == [job.id]
    assert ledger.get(job.id).mtime_ns == 2  # the known version takes the new mtime
    replaced = ledger.settling.add(job.path, "file", 11, 3)
    assert ledger.settling.settle(replaced, "different").state == S.QUEUED  # new content: new job


def test_due_jobs_are_claimed_oldest_first_and_backoff_is_respected(ledger: Ledger) -> None:
    first = queued(ledger, "/w/1.mp4", "1")
    second = queued(ledger, "/w/2.mp4", "2")
    ledger.update(first, next_attempt_at=9e12)  # far in the future
    assert ledger.uploads.claim().id == second.id
    assert ledger.uploads.claim() is None


def test_interrupted_uploads_are_requeued_without_an_attempt(ledger: Ledger) -> None:
    job = queued(ledger)
    claimed = ledger.uploads.claim()
    ledger.update(claimed, upload_started_at=123.0)
    (requeued,) = ledger.uploads.requeue_interrupted("crash")
    assert requeued.state == S.QUEUED and requeued.attempts == 0
    assert requeued.upload_started_at == 123.0  # so the next claim reconciles first
    assert job.id == requeued.id


def test_retry_goes_back_to_the_queue_or_to_finishing(ledger: Ledger) -> None:
    job = queued(ledger)
    job = ledger.uploads.claim()
    failed = ledger.move(job, S.FAILED, "refused", error="HTTP 422", attempts=3)
    again = ledger.jobs.retry(failed)
    assert again.state == S.QUEUED and again.attempts == 0 and again.error is None

    job = ledger.uploads.claim()
    job = ledger.move(job, S.PROCESSING, "up", hashed_id="h1", media_id=1)
    job = ledger.move(job, S.FINISHING, "ready")
    failed = ledger.move(job, S.FAILED, "captions refused", error="HTTP 400")
    assert ledger.jobs.retry(failed).state == S.FINISHING


def test_a_state_entered_twice_counts_from_the_last_time(ledger: Ledger) -> None:
    """The receipt's `uploaded_at` is the upload that stuck, not one Wistia failed."""
    queued(ledger)
    job = ledger.move(ledger.uploads.claim(), S.PROCESSING, "up", hashed_id="h1", media_id=1)
    ledger.jobs.retry(ledger.move(job, S.FAILED, "Wistia failed it"))
    ledger.move(ledger.uploads.claim(), S.PROCESSING, "up again", hashed_id="h2", media_id=2)
    entered = [e.at for e in ledger.jobs.events(job.id) if e.to_state == "processing"]
    assert len(entered) == 2 and entered[0] < entered[1]
    assert ledger.jobs.entered_at(job.id, S.PROCESSING) == entered[1]


def test_a_job_never_read_whole_is_retried_from_settling(ledger: Ledger) -> None:
    cut = ledger.settling.add("/w/cut.mp4", "file", 10, 1)
    cut = ledger.update(cut, incomplete_since=5.0, reason="incomplete MP4: ...")
    failed = ledger.move(cut, S.FAILED, "incomplete", error="incomplete MP4: ...")
    again = ledger.jobs.retry(failed)
    assert again.state == S.SETTLING and again.sha256 is None  # hashed before any upload
    assert again.skip_container_check == 1 and again.incomplete_since is None
    odd = ledger.settling.add("/w/odd.mp4", "file", 10, 1)  # failed for another reason
    odd = ledger.jobs.retry(ledger.move(odd, S.FAILED, "internal error", error="internal error"))
    assert odd.state == S.SETTLING and odd.skip_container_check == 0


def test_what_a_version_proves_partial_belongs_to_those_bytes(ledger: Ledger) -> None:
    from ingestd.config.settings import IngestSettings
    from ingestd.core.outcomes import Stage, decide
    from ingestd.ledger import SettledFile
    from ingestd.pipeline.loop import policy_for

    queued(ledger, "/w/p.mpg", "h")
    half = ledger.move(ledger.uploads.claim(), S.PROCESSING, "up", hashed_id="half", media_id=1)
    half = ledger.move(ledger.move(half, S.FINISHING, "ready"), S.DONE, "done")
    whole = ledger.settling.add("/w/p.mpg", "file", 20, 2)
    (whole,) = ledger.settling.settle_many([SettledFile(whole, "w", partial=half)])
    assert whole.replaces == half.id
    notes = [e.note for e in ledger.jobs.events(half.id)]
    assert any("partial copy" in (n or "") for n in notes)  # the partial's history says so
    # The file is then replaced by unrelated bytes while it waits: what it proved goes.
    changed = os.stat(__file__)
    sending = ledger.uploads.claim()
    policy = policy_for(IngestSettings())
    other = ledger.apply(sending, decide(sending, Stage.UPLOAD, FileChanged(changed), 1.0, policy))
    assert other.state == S.SETTLING and other.replaces is None
    assert ledger.settling.settle(other, "other").replaces is None


def test_a_settling_job_with_a_history_fails_instead_of_vanishing(ledger: Ledger) -> None:
    fresh = ledger.settling.add("/w/fresh.mp4", "file", 10, 1)
    ledger.settling.drop_candidate(fresh)
    assert ledger.get(fresh.id) is None  # found and gone: never a version
    queued(ledger, "/w/sent.mp4", "s")
    back = ledger.move(ledger.uploads.claim(), S.SETTLING, "file changed while it was being sent")
    ledger.settling.drop_candidate(back)
    kept = ledger.get(back.id)
    assert kept is not None and kept.state == S.FAILED
    assert "went away" in (kept.error or "") and len(ledger.jobs.events(back.id)) >= 4


def test_hold_has_one_probe_at_a_time(ledger: Ledger) -> None:
    assert ledger.hold.current() is None
    ledger.hold.start(HoldRequest("video_limit", "limit reached", first_probe_in=0.0))
    assert ledger.hold.take_probe("video_limit", next_interval=60.0) is True
    assert ledger.hold.take_probe("video_limit", next_interval=60.0) is False  # not due again yet
    ledger.hold.start(HoldRequest("video_limit", "still reached", first_probe_in=0.0))
    hold = ledger.hold.current()  # the same kind again keeps the probe schedule
    assert hold.kind == "video_limit" and hold.probe_interval == 60.0
    assert hold.reason == "still reached" and hold.next_probe_at > time.time() + 50
    assert ledger.hold.clear("auth") is False
    assert ledger.hold.clear("video_limit") is True and ledger.hold.current() is None


def test_find_by_id_path_or_hashed_id(ledger: Ledger) -> None:
    job = queued(ledger, "/w/find me.mp4")
    job = ledger.update(job, hashed_id="hid123")
    assert ledger.jobs.find(str(job.id)).id == job.id
    assert ledger.jobs.find("/w/find me.mp4").id == job.id
    assert ledger.jobs.find("hid123").id == job.id
    assert ledger.jobs.find("nothing") is None


def test_writes_wait_for_a_ledger_locked_by_another_connection(tmp_path: Path) -> None:
    import sqlite3

    ledger = Ledger(tmp_path / "locked.db", busy_timeout=0.05)
    other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.6, lambda: other.execute("ROLLBACK"))
    release.start()
    job = ledger.settling.add("/w/late.mp4", "file", 1, 1)  # retried until the lock goes
    release.join()
    assert ledger.get(job.id).state == S.SETTLING
    assert ledger.db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    other.close()
    ledger.close()


def test_a_full_disk_is_retried_and_leaves_the_ledger_whole(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes writes fail like a full disk; raising it again lets them through."""
    import subprocess
    import sys

    script = f"""
import resource, signal, sqlite3, threading
from ingestd.ledger import Ledger
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
ledger = Ledger({str(tmp_path / "full.db")!r})
size = (ledger.path.stat().st_size + 4096 * 64)
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
threading.Timer(1.0, lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))).start()
for n in range(400):
    ledger.settling.add("/w/" + "x" * 2000 + str(n), "file", n, n)
check = ledger.db.conn.execute("PRAGMA integrity_check").fetchone()[0]
print(len(ledger.jobs.active_and_recent(None)), check)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1].split() == ["400", "ok"]
    assert "ledger write failed; retrying" in result.stdout + result.stderr


def test_many_threads_opening_a_new_ledger_migrate_it_once(tmp_path: Path) -> None:
    errors: list[str] = []

    def open_it() -> None:
        try:
            Ledger(tmp_path / "new.db").close()
        except Exception as exc:  # the test reports them all
            errors.append(repr(exc))

    threads = [threading.Thread(target=open_it) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ledger = Ledger(tmp_path / "new.db")
    assert ledger.db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    ledger.close()


def test_an_older_ledger_is_migrated_and_keeps_its_jobs(tmp_path: Path) -> None:
    import sqlite3

    import sqlite_utils

    from ingestd.ledger import MIGRATIONS

    conn = sqlite3.connect(tmp_path / "old.db")
    db = sqlite_utils.Database(conn)
    for migration in MIGRATIONS[:2]:
        migration(conn)
    db.execute("PRAGMA user_version = 2")
    db.execute(
        "INSERT INTO jobs (path, state, created_at, updated_at) VALUES ('/w/a.mp4', 'done', 1, 1)"
    )
    conn.commit()
    conn.close()
    ledger = Ledger(tmp_path / "old.db")
    assert ledger.jobs.latest_for_path("/w/a.mp4").state == JobState.DONE
    assert ledger.db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    ledger.close()


def test_opening_another_connection_keeps_the_first_ones_locks(tmp_path: Path) -> None:
    # POSIX drops all of a process's locks on a file when any descriptor of it closes: only
    # SQLite may open the ledger once a connection exists, or another process closing its
    # connection believes itself the last and checkpoints the WAL away under ours.
    import subprocess
    import sys

    path = tmp_path / "l.db"
    first = Ledger(path)
    first.settling.add("/w/a.mp4", "file", 1, 1)
    Ledger(path).close()  # another thread's connection, as each stage has
    other = (
        f"import sqlite3; c = sqlite3.connect({str(path)!r}); "
        "c.execute('select count(*) from jobs').fetchone(); c.close()"
    )
    subprocess.run([sys.executable, "-c", other], check=True, timeout=30)
    assert Path(f"{path}-wal").exists()
    first.close()
