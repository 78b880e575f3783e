"""The swap step (finish/swap.py) at each recorded step, on a clock the test sets: an ask whose
outcome is unknown is never repeated while the original may still change, a newer version's
swap is never undone, and a refusal keeps the new media."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx

from ingestd.core.jobs import Job
from ingestd.pipeline.finish.swap import UNSURE_WAIT_SECONDS, Swaps
from tests.unit.conftest import World, finishing_job


class Account:
    """Wistia as the swap sees it: the original K, the replacement h1, one background job."""

    def __init__(self, world: World, job: Job) -> None:
        self.world = world
        self.size = job.size
        self.original_updated = world.clock.wall() - 3600  # long before any swap
        self.job_status = "queued"
        self.swap_answer = 200
        world.wistia.answer = self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "PUT" and path.endswith("/swap"):
            if self.swap_answer != 200:
                return httpx.Response(self.swap_answer, json={"error": "Swap is not on your plan"})
            job = {"id": 7, "status": self.job_status}
            return httpx.Response(200, json={"message": "queued", "background_job_status": job})
        if path.endswith("background_job_status/7"):
            return httpx.Response(
                200, json={"background_job_status": {"id": 7, "status": self.job_status}}
            )
        if request.method == "GET" and path.endswith("/medias/K.json"):
            updated = datetime.fromtimestamp(self.original_updated, UTC).isoformat()
            media = {
                "id": 9,
                "hashed_id": "K",
                "updated": updated,
                "assets": [{"type": "OriginalFile", "fileSize": self.size}],
            }
            return httpx.Response(200, json=media)
        if request.method == "DELETE":
            return httpx.Response(200, json={})
        return httpx.Response(404, json={"error": "not found"})

    def asked(self, method: str, ending: str) -> int:
        return len(
            [
                r
                for r in self.world.wistia.requests
                if r.method == method and r.url.path.endswith(ending)
            ]
        )


def asking(world: World, job: Job) -> None:
    """As a process killed between recording the ask and Wistia's answer left it."""
    world.ledger.steps.record_swap(
        job, "requesting", replacement="h1", requested_at=world.clock.wall()
    )


def chosen(world: World) -> tuple[Swaps, Job, Account]:
    _, job = finishing_job(world)
    world.ledger.steps.choose_swap(job, "K", "path", None)
    return Swaps(world.client, world.clock), job, Account(world, job)


def test_asked_then_followed_until_finished_then_the_leftover_deleted(world: World) -> None:
    swaps, job, wistia = chosen(world)
    assert swaps.carry_out(world.ledger, world.settings, job) is None  # Wistia works
    swap = world.ledger.steps.swap(job.id)
    assert swap.stage == "requested" and swap.background_job == "7" and swap.api == "modern"
    wistia.job_status = "finished"
    done = swaps.carry_out(world.ledger, world.settings, world.ledger.get(job.id))
    assert done is not None and done.hashed_id == "K" and done.media_id == 9
    assert world.ledger.steps.swap(job.id).stage == "cleaned"
    assert wistia.asked("PUT", "/swap") == 1 and wistia.asked("DELETE", "/medias/h1.json") == 1
    sent = json.loads(next(r for r in world.wistia.requests if r.method == "PUT").content)
    assert sent == {"replacement_media_id": "h1"}


def test_an_ask_cut_short_is_not_repeated_while_the_original_may_still_change(
    world: World,
) -> None:
    """kill -9 between recording `requesting` and Wistia's answer: nobody knows whether the
    swap was taken. The original is watched; only after UNSURE_WAIT_SECONDS unchanged is the
    swap asked again."""
    swaps, job, wistia = chosen(world)
    world.ledger.steps.record_swap(
        job, "requesting", replacement="h1", requested_at=world.clock.wall()
    )
    assert swaps.carry_out(world.ledger, world.settings, job) is None
    assert wistia.asked("PUT", "/swap") == 0
    assert "whether Wistia took the swap" in world.ledger.get(job.id).reason
    world.clock.t += UNSURE_WAIT_SECONDS + 1
    assert swaps.carry_out(world.ledger, world.settings, world.ledger.get(job.id)) is None
    assert wistia.asked("PUT", "/swap") == 1
    assert world.ledger.steps.swap(job.id).stage == "requested"


def test_an_ask_cut_short_that_wistia_took_shows_on_the_original(world: World) -> None:
    swaps, job, wistia = chosen(world)
    world.ledger.steps.record_swap(
        job, "requesting", replacement="h1", requested_at=world.clock.wall()
    )
    wistia.original_updated = world.clock.wall() + 5  # the original changed since: swapped
    done = swaps.carry_out(world.ledger, world.settings, job)
    assert done is not None and done.hashed_id == "K"
    assert wistia.asked("PUT", "/swap") == 0
    assert world.ledger.steps.swap(job.id).stage == "cleaned"


def test_a_refused_swap_keeps_the_new_media(world: World) -> None:
    swaps, job, wistia = chosen(world)
    wistia.swap_answer = 403
    kept = swaps.carry_out(world.ledger, world.settings, job)
    assert kept is not None and kept.hashed_id == "h1"
    swap = world.ledger.steps.swap(job.id)
    assert swap.stage == "refused" and "Swap is not on your plan" in swap.reason
    assert wistia.asked("DELETE", "") == 0


def test_an_older_version_never_swaps_back_behind_a_newer_one(world: World) -> None:
    swaps, older, wistia = chosen(world)
    _, newer = finishing_job(world, "clip2.mp4")
    world.ledger.steps.choose_swap(newer, "K", "path", None)
    world.ledger.steps.record_swap(newer, "finished")
    kept = swaps.carry_out(world.ledger, world.settings, older)
    assert kept is not None and kept.hashed_id == "K"
    assert wistia.asked("PUT", "/swap") == 0
    assert wistia.asked("DELETE", "/medias/h1.json") == 1  # its upload was a leftover
    assert "a newer version, replaced K already" in world.ledger.steps.swap(older.id).reason
