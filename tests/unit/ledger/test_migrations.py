"""A ledger made by main as it landed (schema 8: tests/fixtures/ledger-schema-8.db) opens with
today's code, migrates forward, keeps every job and fact, and works."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ingestd.core.jobs import JobState
from ingestd.ledger import SCHEMA_VERSION, Fate, Ledger

FIXTURE = Path(__file__).parents[2] / "fixtures" / "ledger-schema-8.db"
WATCH = "/srv/wistia-inbox"


@pytest.fixture
def old(tmp_path: Path) -> Ledger:
    path = tmp_path / "ledger.db"
    shutil.copyfile(FIXTURE, path)
    ledger = Ledger(path)
    yield ledger
    ledger.close()


def test_the_schema_8_ledger_is_carried_forward_whole(old: Ledger) -> None:
    assert old.db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert old.jobs.counts() == {"done": 6, "failed": 1, "held": 1, "queued": 1, "settling": 1}
    assert old.hold.current().kind == "video_limit"
    assert old.projects.named("Team") == "projprojp1"
    assert old.facts.get("account_url") == "https://example.wistia.com"
    assert old.db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    tables = {row[0] for row in old.db.conn.execute("SELECT name FROM sqlite_master")}
    assert "sidecars" not in tables  # its rows moved to typed tables
    assert "notifications_by_receiver" in tables  # a digest reads one receiver's waiting
    # The ledger was made when its first job was (adoption looks only at older files).
    first = old.db.conn.execute("SELECT min(created_at) FROM jobs").fetchone()[0]
    assert old.adoption.created_at() == first


def test_what_finishing_recorded_becomes_typed_records(old: Ledger) -> None:
    launch = old.jobs.latest_for_path(f"{WATCH}/launch.mp4")
    assert set(old.steps.sent(launch.id)) == {
        "metadata",
        "customizations",
        "captions:eng",
        "captions:fra",
    }
    thumbnail = old.steps.thumbnail(launch.id)
    assert thumbnail.sending.began_at == 1_700_000_300.5
    assert thumbnail.uploaded.hashed_id == thumbnail.still.hashed_id == "imgimgimg1"
    assert old.steps.image_known("imgimgimg1") and not old.steps.image_known("nothing")
    moved = old.jobs.latest_for_path(f"{WATCH}/caf\udce9.mp4")  # a name that is not UTF-8
    fate = old.steps.fate(moved.id)
    assert fate == Fate("move", Path("/srv/archive/caf\udce9.mp4"))
    assert os.fsencode(fate.target) == b"/srv/archive/caf\xe9.mp4"  # its exact bytes
    gone = old.jobs.latest_for_path(f"{WATCH}/gone.mp4")
    assert old.steps.fate(gone.id) == Fate("delete")
    thumb = old.jobs.latest_for_path(f"{WATCH}/thumb.mp4")
    failed = old.steps.thumbnail(thumb.id)
    assert failed.failed.digest == "88" * 32 and failed.uploaded.hashed_id == "imgimgimg2"
    whole = old.jobs.latest_for_path(f"{WATCH}/cut.mp4")
    assert old.steps.replaced(whole.id)


def test_the_migrated_ledger_works(old: Ledger) -> None:
    waiting = old.outbox.waiting()
    assert waiting["waiting"] > 0  # the notifications it held still wait
    (due, *_) = old.outbox.due(now=2e9)
    assert due.queued_at == due.at  # their age counted from when they were queued
    assert old.uploads.claim(now=2e9) is None  # its video-limit hold holds
    assert old.hold.clear("video_limit")
    queued = old.uploads.claim(now=2e9)
    assert queued is not None and queued.path == f"{WATCH}/later.mp4" and queued.attempts == 2
    processing = old.move(queued, JobState.PROCESSING, "uploaded", hashed_id="newmedia01")
    assert old.jobs.find("newmedia01").id == processing.id
    old.steps.record_sent(processing.id, "metadata", "ab" * 32)
    assert old.steps.sent(processing.id) == {"metadata": "ab" * 32}


def test_odd_rows_from_an_older_ingestd_do_not_stop_the_migration(tmp_path: Path) -> None:
    """Review finding: a row migration 11 could not parse (an unreadable start time, an
    unknown record name, an uploaded image without its hashed id) aborted every start-up."""
    import sqlite3

    path = tmp_path / "ledger.db"
    shutil.copyfile(FIXTURE, path)
    raw = sqlite3.connect(path)
    job_id = raw.execute("SELECT min(id) FROM jobs WHERE state = 'done'").fetchone()[0]
    raw.execute("DELETE FROM sidecars WHERE job_id = ? AND name LIKE 'thumbnail%'", (job_id,))
    raw.executemany(
        "INSERT INTO sidecars (job_id, name, digest, applied_at) VALUES (?, ?, ?, 5.0)",
        [
            (job_id, "thumbnail-sending", "abc not-a-number"),
            (job_id, "thumbnail-upload", "abc"),
            (job_id, "thumbnail-someday", "abc xyz"),
        ],
    )
    raw.commit()
    raw.close()
    ledger = Ledger(path)
    try:
        assert ledger.db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        stages = ledger.db.conn.execute(
            "SELECT stage, began_at FROM thumbnails WHERE job_id = ?", (job_id,)
        ).fetchall()
        assert [tuple(row) for row in stages] == [("sending", 5.0)]
    finally:
        ledger.close()
