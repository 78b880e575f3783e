"""The swap step (finish/swap.py) at each recorded step, on a clock the test sets: an ask whose
outcome is unknown is never repeated while the original may still change, a newer version's
swap is never undone, and a refusal keeps the new media."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ingestd.core.jobs import Job, JobState
from ingestd.folder.sidecars import Metadata
from ingestd.pipeline import versions
from ingestd.pipeline.finish.swap import UNSURE_WAIT_SECONDS, Swaps
from tests.unit.conftest import World, finishing_job


class Account:
    """Wistia as the swap sees it: the original K (of another size than the new version until
    a swap is made), the replacement h1, one background job."""

    def __init__(self, world: World, job: Job) -> None:
        self.world = world
        self.size = job.size  # the new version's
        self.old_size = (job.size or 0) + 1000  # the original's before the swap
        self.original_updated = world.clock.wall() - 3600  # long before any swap
        self.job_status = "queued"
        self.swap_answer = 200
        self.swapped = False  # the original holds the new version's file
        self.original_gone = False
        self.replacement_gone = False
        self.delete_answer = 200
        # The swap asked before is made just as it is asked again, and the replacement
        # removed with it (one reading of Swap): the second ask is answered 404.
        self.made_while_asked_again = False
        world.wistia.answer = self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "PUT" and path.endswith("/swap"):
            if self.made_while_asked_again:
                self.swapped = self.replacement_gone = True
                return httpx.Response(404, json={"error": "Media not found"})
            if self.swap_answer != 200:
                return httpx.Response(self.swap_answer, json={"error": "Swap is not on your plan"})
            self.swapped = self.job_status == "finished"
            job = {"id": 7, "status": self.job_status}
            return httpx.Response(200, json={"message": "queued", "background_job_status": job})
        if path.endswith("background_job_status/7"):
            self.swapped = self.swapped or self.job_status == "finished"
            return httpx.Response(
                200, json={"background_job_status": {"id": 7, "status": self.job_status}}
            )
        if request.method == "GET" and path.endswith("/medias/K.json") and not self.original_gone:
            updated = datetime.fromtimestamp(self.original_updated, UTC).isoformat()
            size = self.size if self.swapped else self.old_size
            media = {
                "id": 9,
                "hashed_id": "K",
                "updated": updated,
                "assets": [{"type": "OriginalFile", "fileSize": size}],
            }
            return httpx.Response(200, json=media)
        if request.method == "GET" and path.endswith("/medias/h1.json"):
            if self.replacement_gone:
                return httpx.Response(404, json={"error": "not found"})
            media = {
                "id": 8,
                "hashed_id": "h1",
                "assets": [{"type": "OriginalFile", "fileSize": self.size}],
            }
            return httpx.Response(200, json=media)
        if request.method == "DELETE":
            if self.delete_answer != 200:
                return httpx.Response(self.delete_answer, json={"error": "not allowed"})
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


def asking(world: World, job: Job, wistia: Account) -> None:
    """As a process killed between recording the ask (with what both medias held) and
    Wistia's answer left it."""
    world.ledger.steps.record_swap(
        job,
        "requesting",
        replacement="h1",
        requested_at=world.clock.wall(),
        before_size=wistia.old_size,
        before_updated=wistia.original_updated,
        replacement_size=wistia.size,
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
    asking(world, job, wistia)
    assert swaps.carry_out(world.ledger, world.settings, job) is None
    assert wistia.asked("PUT", "/swap") == 0
    assert "whether Wistia took the swap" in world.ledger.get(job.id).reason
    world.clock.t += UNSURE_WAIT_SECONDS + 1
    assert swaps.carry_out(world.ledger, world.settings, world.ledger.get(job.id)) is None
    assert wistia.asked("PUT", "/swap") == 1
    assert world.ledger.steps.swap(job.id).stage == "requested"


def test_an_ask_cut_short_that_wistia_took_shows_on_the_original(world: World) -> None:
    swaps, job, wistia = chosen(world)
    asking(world, job, wistia)
    wistia.swapped = True  # the original holds the new version's file: swapped
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


def test_a_crash_before_the_ask_left_is_not_taken_for_a_swap(world: World) -> None:
    """The original changed recently for another reason (a re-sync), but still holds its own
    file: the swap was not made, and it is asked once the wait is over; nothing deleted."""
    swaps, job, wistia = chosen(world)
    asking(world, job, wistia)
    wistia.original_updated = world.clock.wall() - 120
    assert swaps.carry_out(world.ledger, world.settings, job) is None
    assert wistia.asked("DELETE", "") == 0
    world.clock.t += UNSURE_WAIT_SECONDS + 1
    swaps.carry_out(world.ledger, world.settings, world.ledger.get(job.id))
    assert wistia.asked("PUT", "/swap") == 1 and wistia.asked("DELETE", "") == 0


def test_asked_again_after_wistia_took_the_replacement_away_is_a_swap_made(world: World) -> None:
    """A swap made whose evidence was missed (the reading of Swap in which the replacement is
    removed): asked again, Wistia answers 404, and what it shows says the swap was made."""
    swaps, job, wistia = chosen(world)
    asking(world, job, wistia)
    wistia.made_while_asked_again = True
    world.clock.t += UNSURE_WAIT_SECONDS + 1  # nothing showed: it is asked again
    done = swaps.carry_out(world.ledger, world.settings, job)
    assert wistia.asked("PUT", "/swap") == 1
    assert done is not None and done.hashed_id == "K"
    assert world.ledger.steps.swap(job.id).stage == "cleaned"


def test_the_original_deleted_after_the_swap_keeps_the_new_media(world: World) -> None:
    swaps, job, wistia = chosen(world)
    assert swaps.carry_out(world.ledger, world.settings, job) is None
    wistia.job_status = "finished"
    wistia.original_gone = True
    kept = swaps.carry_out(world.ledger, world.settings, world.ledger.get(job.id))
    assert kept is not None and kept.hashed_id == "h1"
    swap = world.ledger.steps.swap(job.id)
    assert swap.stage == "refused" and "K was deleted in Wistia" in swap.reason
    assert wistia.asked("DELETE", "") == 0


def test_a_leftover_wistia_will_not_delete_leaves_the_swap_standing(world: World) -> None:
    swaps, job, wistia = chosen(world)
    wistia.job_status = "finished"
    wistia.delete_answer = 403
    done = swaps.carry_out(world.ledger, world.settings, job)
    assert done is not None and done.hashed_id == "K"
    assert world.ledger.steps.swap(job.id).stage == "cleaned"
    notes = [e.note or "" for e in world.ledger.jobs.events(job.id)]
    assert any("could not be deleted" in note for note in notes)


def test_an_older_version_waits_while_a_newer_one_is_swapping(world: World) -> None:
    swaps, older, wistia = chosen(world)
    _, newer = finishing_job(world, "clip2.mp4")
    world.ledger.steps.choose_swap(newer, "K", "path", None)
    world.ledger.steps.record_swap(newer, "requested")
    assert swaps.carry_out(world.ledger, world.settings, older) is None
    assert "a newer version, swapping into K" in world.ledger.get(older.id).reason
    # Refused: the older one swaps after all (its bytes are the newest that can be there).
    world.ledger.steps.record_swap(newer, "refused", reason="another media type")
    assert swaps.carry_out(world.ledger, world.settings, world.ledger.get(older.id)) is None
    assert wistia.asked("PUT", "/swap") == 1


def test_a_kill_while_yielding_still_deletes_the_leftover(world: World) -> None:
    """The yield is recorded as `finished` with its reason: a restart takes the original and
    deletes the leftover, as after a swap."""
    swaps, older, wistia = chosen(world)
    _, newer = finishing_job(world, "clip2.mp4")
    world.ledger.steps.choose_swap(newer, "K", "path", None)
    world.ledger.steps.record_swap(newer, "cleaned")
    world.ledger.steps.record_swap(older, "finished", reason="yielded", replacement="h1")
    # (killed here, before the ids were taken and the leftover deleted)
    kept = swaps.carry_out(world.ledger, world.settings, world.ledger.get(older.id))
    assert kept is not None and kept.hashed_id == "K"
    assert wistia.asked("DELETE", "/medias/h1.json") == 1


def test_a_version_chosen_while_the_earlier_swap_ends_replaces_the_kept_media(
    world: World,
) -> None:
    """The earlier version's swap is `finished` but it has not taken the original's ids yet
    (its hashed id is still its own upload, about to be deleted): the next version replaces
    the kept media, not that leftover."""
    _, earlier, _ = chosen(world)
    world.ledger.steps.record_swap(earlier, "requesting", replacement="h1")
    world.ledger.steps.record_swap(earlier, "finished")
    path = Path(earlier.path)
    path.write_bytes(b"newer bytes")
    stat = path.stat()
    newer = world.ledger.settling.add(str(path), "file", stat.st_size, stat.st_mtime_ns)
    newer = world.ledger.settling.settle(newer, "sha-newer")
    swap = versions.choose(world.ledger, world.settings, world.client, newer, Metadata())
    assert swap is not None and swap.original == "K"


def test_with_the_same_size_an_edit_before_the_ask_is_not_taken_for_a_swap(world: World) -> None:
    """The new version has the original's very size; a re-sync changed the original two
    minutes before the ask. Killed while asking: the original has not changed since the
    moment before the ask (Wistia's clock), so it was not swapped; nothing is deleted."""
    swaps, job, wistia = chosen(world)
    wistia.old_size = wistia.size
    wistia.original_updated = world.clock.wall() - 120
    asking(world, job, wistia)
    assert swaps.carry_out(world.ledger, world.settings, job) is None
    assert wistia.asked("DELETE", "") == 0 and wistia.asked("PUT", "/swap") == 0


def test_with_the_same_size_a_change_since_the_ask_is_the_swap_made(world: World) -> None:
    swaps, job, wistia = chosen(world)
    wistia.old_size = wistia.size
    asking(world, job, wistia)
    wistia.original_updated = world.clock.wall() + 5  # Wistia put the new file behind it
    done = swaps.carry_out(world.ledger, world.settings, job)
    assert done is not None and done.hashed_id == "K"
    assert wistia.asked("PUT", "/swap") == 0


def test_an_older_version_does_not_wait_for_a_newer_one_that_failed(world: World) -> None:
    swaps, older, wistia = chosen(world)
    _, newer = finishing_job(world, "clip2.mp4")
    world.ledger.steps.choose_swap(newer, "K", "path", None)
    world.ledger.steps.record_swap(newer, "requesting")
    world.ledger.move(newer, JobState.FAILED, "gave up", error="gave up")
    assert swaps.carry_out(world.ledger, world.settings, older) is None
    assert wistia.asked("PUT", "/swap") == 1  # it asked, rather than wait forever
