"""The hold's probes (pipeline/probe.py): a full account costs a look, never an upload; room
lets the smallest waiting file go at once; with nothing to probe with, the look lifts it."""

from __future__ import annotations

import httpx

from ingestd.core.jobs import HoldRequest
from tests.unit.conftest import World, queued_job

FULL = {"name": "A", "url": "https://a.wistia.com", "mediaCount": 50, "videoLimit": 50}
ROOM = {**FULL, "mediaCount": 49}


def answering(world: World, account: dict) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/account.json"):
            return httpx.Response(200, json=account)
        return httpx.Response(500)  # an upload would be refused, loudly

    world.wistia.answer = answer


def held(world: World) -> None:
    world.ledger.hold.start(HoldRequest("video_limit", "out of room", 60.0, 0.0))


def test_a_full_account_costs_one_look_and_no_upload(world: World) -> None:
    uploader = world.uploader()
    for name, size in (("big.mp4", 3000), ("small.mp4", 10)):
        queued_job(world.ledger, world.watch / name, b"x" * size)
    held(world)
    answering(world, FULL)
    assert uploader._next_job(world.ledger) is None
    assert uploader._next_job(world.ledger) is None  # the next look is 10 s away
    assert [r.url.path for r in world.wistia.requests] == ["/v1/account.json"]
    hold = world.ledger.hold.current()
    assert hold is not None and hold.full and hold.next_check_at is not None
    media = world.ledger.facts.account_media()
    assert media is not None and media.shown() == "media 50 of 50"

    # Room appears; the next look (made due, as SIGHUP does) lets the smallest file go.
    answering(world, ROOM)
    world.ledger.hold.probe_now()
    claimed = uploader._next_job(world.ledger)
    assert claimed is not None
    job, probe = claimed
    assert probe and job.path.endswith("small.mp4")
    assert world.ledger.hold.current() is not None  # lifted only by the probe's success


def test_a_claim_under_a_hold_is_refused_unless_it_is_the_probe(world: World) -> None:
    queued_job(world.ledger, world.watch / "a.mp4")
    held(world)
    assert world.ledger.uploads.claim() is None
    assert world.ledger.uploads.claim(probe=True) is not None


def test_with_nothing_to_probe_with_a_look_showing_room_lifts_the_hold(world: World) -> None:
    uploader = world.uploader()
    held(world)
    answering(world, FULL)
    assert uploader._next_job(world.ledger) is None
    assert world.ledger.hold.current() is not None
    answering(world, {**FULL, "videoLimit": None})  # no limit given: cannot tell
    world.ledger.hold.probe_now()
    assert uploader._next_job(world.ledger) is None
    assert world.ledger.hold.current() is None  # a waiting thumbnail may try again
