"""Delivering notifications: a waiting notification's age and wait on the steady clock;
messages for people in digests, one per URL, each URL on its own (real json:// receivers on
loopback, the stage's own pass and lanes)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from ingestd.core.backoff import Backoff
from ingestd.core.jobs import JobState
from ingestd.telling.notify.deliver import RETRY, Notifier, Rests, outbox_for
from tests.receivers import HttpReceiver
from tests.unit.conftest import World, processing_job, queued_job

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


# --- messages for people: a digest per URL, each URL on its own ------------------------------


@pytest.fixture
def receivers() -> Iterator[tuple[HttpReceiver, HttpReceiver]]:
    taking, refusing = HttpReceiver(), HttpReceiver()
    refusing.status = 500
    yield taking, refusing
    taking.close()
    refusing.close()


def _account(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"name": "Acme", "url": "https://acme.wistia.com"})


def _done(world: World, name: str, hashed_id: str) -> None:
    job = processing_job(world.ledger, world.watch / name, hashed_id)
    world.ledger.move(world.ledger.move(job, S.FINISHING), S.DONE, "ready")


def _run_lanes(world: World, notifier: Notifier) -> float | None:
    """One pass of the notifications stage, then its lanes run to their end."""
    again = notifier._pass(world.ledger, world.clock.now(), threading.Event())
    for lane in list(notifier._lanes.values()):
        lane.join(20)
    return again


def test_a_batch_is_one_message_per_url_and_a_refusing_url_keeps_its_own(
    world: World, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    taking, refusing = receivers
    settings = world.settings
    settings.notify.urls = [SecretStr(taking.json_url()), SecretStr(refusing.json_url())]
    world.ledgers.outbox = outbox_for(settings.notify)
    world.wistia.answer = _account
    opened = world.clock.now()
    for n, name in enumerate(["launch.mp4", "teaser.mp4", "b-roll.mov"]):
        _done(world, name, f"hash{n}")
        world.clock.t += 10  # within the window the first one opened
    queued_job(world.ledger, world.watch / "empty.mp4", b"")
    world.ledger.move(world.ledger.uploads.claim(world.clock.now()), S.FAILED, error="empty")
    notifier = world.notifier(settings)
    assert _run_lanes(world, notifier) == opened + 60  # nothing told before it closes
    assert taking.messages == [] and refusing.refused == []
    world.clock.t = opened + 60
    _run_lanes(world, notifier)
    (digest,) = taking.messages
    assert digest["title"] == "3 videos ready, 1 failed"
    assert digest["message"].splitlines()[:4] == [
        "3 videos ready:",
        "- launch.mp4: https://acme.wistia.com/medias/hash0",
        "- teaser.mp4: https://acme.wistia.com/medias/hash1",
        "- b-roll.mov: https://acme.wistia.com/medias/hash2",
    ]
    assert "- empty.mp4: empty" in digest["message"]
    assert len(refusing.refused) == 1  # one message, refused: all four wait for its retry
    waiting = world.ledger.outbox.waiting()
    assert waiting["receivers"] == {"json": 4} and "error=500" in waiting["last_error"]
    assert refusing.json_url() not in (waiting["last_error"] or "")
    _done(world, "late.mp4", "hash9")  # arrives while json#2 waits for its retry
    refusing.status = 200
    world.clock.t += 600
    _run_lanes(world, notifier)
    (retried,) = refusing.messages
    assert retried["title"] == "4 videos ready, 1 failed"  # the retry took the late one along
    (late,) = taking.messages[1:]
    assert late["title"] == "late.mp4 is ready in Wistia"
    assert world.ledger.outbox.waiting()["waiting"] == 0


def test_without_digests_each_event_is_a_message_of_its_own(
    world: World, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    taking, _ = receivers
    settings = world.settings
    settings.notify.urls = [SecretStr(taking.json_url())]
    settings.notify.digest_seconds = 0
    world.ledgers.outbox = outbox_for(settings.notify)
    world.wistia.answer = _account
    _done(world, "a.mp4", "ha")
    _done(world, "b.mp4", "hb")
    _run_lanes(world, world.notifier(settings))
    assert [m["message"] for m in taking.messages] == [
        "a.mp4 is ready in Wistia: https://acme.wistia.com/medias/ha",
        "b.mp4 is ready in Wistia: https://acme.wistia.com/medias/hb",
    ]


# --- a lane that ends in an error of its own: its receiver waits, the stage never spins ------


@pytest.fixture
def hook() -> Iterator[HttpReceiver]:
    made = HttpReceiver()
    yield made
    made.close()


def _passes(world: World, notifier: Notifier, count: int = 5) -> float | None:
    """The stage's passes one after another, as fast as lanes ending wake it (each lane run
    to its end); when the last one says to look again."""
    for _ in range(count):
        again = _run_lanes(world, notifier)
    return again


def _failed_job_told_to(world: World, hook: HttpReceiver) -> Notifier:
    """A failed job whose notification waits for the webhook `hook`, and the stage."""
    settings = world.settings
    settings.notify.webhook_url = hook.http_url("/hook")
    settings.notify.events = ["failed"]
    world.ledgers.outbox = outbox_for(settings.notify)
    queued_job(world.ledger, world.watch / "clip.mp4")
    world.ledger.move(world.ledger.uploads.claim(world.clock.now()), S.FAILED, error="bad")
    return world.notifier(settings)


def test_a_notification_posted_but_not_forgotten_is_not_posted_again_before_a_backoff(
    world: World, hook: HttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ledger refuses to forget what the webhook took (a read-only ledger, say): the
    next passes open no lane for the webhook until its backoff, and say so once."""
    notifier = _failed_job_told_to(world, hook)
    world.ledger.db.conn.execute(
        """CREATE TRIGGER refuse_forgetting BEFORE DELETE ON notifications
           BEGIN SELECT RAISE(ABORT, 'attempt to write a readonly database'); END"""
    )
    started = world.clock.now()
    again = _passes(world, notifier)
    assert len(hook.messages) == 1, "posted again while its lane's error was fresh"
    assert again is not None and again >= started + RETRY.first  # the stage sleeps till then
    said = capsys.readouterr().out
    assert said.count("readonly database") == 1, said
    world.clock.t = again  # the backoff's first step is over: tried again, the next wait longer
    later = _passes(world, notifier)
    assert len(hook.messages) == 2
    assert later is not None and later >= again + 2 * RETRY.first
    world.ledger.db.conn.execute("DROP TRIGGER refuse_forgetting")
    world.clock.t = later
    _run_lanes(world, notifier)
    assert world.ledger.outbox.waiting()["waiting"] == 0
    assert hook.messages[0] == hook.messages[2]  # the very same body, its id for dropping repeats


def test_a_lane_that_cannot_open_the_ledger_rests_its_receiver_instead_of_spinning(
    world: World, hook: HttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stage's own connection works, a lane's new one cannot be made (the ledger's file
    moved away, a directory in its place: "unable to open database file", a LedgerError):
    one lane, one log line, then the receiver waits; delivered once the ledger is back."""
    notifier = _failed_job_told_to(world, hook)
    path = world.ledger.path
    moved = path.with_name("moved.db")
    path.rename(moved)
    path.mkdir()
    started = world.clock.now()
    again = _passes(world, notifier)
    assert again is not None and again >= started + RETRY.first
    said = capsys.readouterr().out
    assert said.count("unable to open database file") == 1, said
    assert hook.messages == []
    path.rmdir()
    moved.rename(path)
    world.clock.t = again
    _run_lanes(world, notifier)
    assert len(hook.messages) == 1
    assert world.ledger.outbox.waiting()["waiting"] == 0


def test_rests_grow_with_each_error_in_a_row_and_end_with_a_lane_that_ends_well() -> None:
    rests = Rests(Backoff(first=5.0, cap=600.0))
    assert rests.failed("webhook", 100.0) == 5.0
    assert rests.failed("webhook", 105.0) == 10.0
    assert rests.resting(110.0) == {"webhook": 115.0}
    assert rests.resting(115.0) == {}  # over: a lane may open
    rests.ended("webhook")
    assert rests.failed("webhook", 200.0) == 5.0  # a new run of errors starts again
