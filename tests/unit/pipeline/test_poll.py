"""The poller, one sweep at a time: one list answers for many medias, a media no list shows is
asked alone, and Wistia's answers end in the job's state."""

from __future__ import annotations

import httpx

from ingestd.core.jobs import JobState
from tests.unit.conftest import World, media, processing_job

S = JobState


def test_poll_404_fails_the_job_and_500_polls_later(world: World) -> None:
    ledger, clock = world.ledger, world.clock
    poller = world.poller()
    job = processing_job(ledger, world.watch / "clip.mp4")
    clock.t = 100.0

    world.wistia.answer = lambda r: httpx.Response(500, json={"error": "boom"})
    poller.guard.run(ledger, job, poller.poll)
    later = ledger.get(job.id)
    assert later.state == S.PROCESSING and later.attempts == 0
    assert later.next_poll_at == 100.0 + 7.5 and "HTTP 500" in later.reason

    world.wistia.answer = lambda r: httpx.Response(404, json={"error": "not found"})
    poller.guard.run(ledger, later, poller.poll)
    assert ledger.get(job.id).state == S.FAILED
    assert "deleted in Wistia (404)" in ledger.get(job.id).error


def test_poll_ready_moves_to_finishing(world: World) -> None:
    ledger = world.ledger
    poller = world.poller()
    job = processing_job(ledger, world.watch / "clip.mp4")
    world.wistia.answer = lambda r: httpx.Response(200, json=media("ready"))
    poller.guard.run(ledger, job, poller.poll)
    assert ledger.get(job.id).state == S.FINISHING


def test_one_list_answers_for_every_media_it_shows(world: World) -> None:
    ledger, watch, clock = world.ledger, world.watch, world.clock
    poller = world.poller()
    for n in range(3):
        processing_job(ledger, watch / f"c{n}.mp4", hashed_id=f"h{n}", since=clock.t)
    listed = [media("ready", "h0"), media("processing", "h1"), media("failed", "h2")]
    world.wistia.answer = lambda r: httpx.Response(200, json=listed)
    poller.sweep(ledger, ledger.jobs.due_polls(clock.t))
    (request,) = world.wistia.requests  # one request for the three of them
    assert request.url.path == "/v1/medias.json"
    assert dict(request.url.params) == {
        "sort_by": "updated", "sort_direction": "0", "per_page": "100", "page": "1"
    }  # fmt: skip
    states = [ledger.jobs.latest_for_path(str(watch / f"c{n}.mp4")).state for n in range(3)]
    assert states == [S.FINISHING, S.PROCESSING, S.FAILED]
    assert ledger.jobs.latest_for_path(str(watch / "c1.mp4")).next_poll_at == clock.t + 7.5


def test_pages_are_read_while_they_may_hold_a_due_media_then_it_is_asked_alone(
    world: World,
) -> None:
    ledger, watch, clock = world.ledger, world.watch, world.clock
    poller = world.poller()
    clock.t = 10_000.0
    job = processing_job(ledger, watch / "x.mp4", hashed_id="hx", since=clock.t)
    newer = [media("ready", f"n{n}", updated=20_000) for n in range(100)]  # changed since
    older = [media("ready", f"o{n}", updated=5_000) for n in range(100)]  # before any upload

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/medias.json":
            page = int(request.url.params["page"])
            return httpx.Response(200, json=newer if page == 1 else older)
        return httpx.Response(200, json=media("processing", "hx"))

    world.wistia.answer = answer
    poller.sweep(ledger, ledger.jobs.due_polls(clock.t))
    asked = [(r.url.path, r.url.params.get("page")) for r in world.wistia.requests]
    assert asked == [
        ("/v1/medias.json", "1"),  # full, and changed after the upload began: read on
        ("/v1/medias.json", "2"),  # changed before it: no later page can hold it
        ("/v1/medias/hx.json", None),  # so it is asked about on its own
    ]
    assert ledger.get(job.id).state == S.PROCESSING


def test_a_failed_list_is_every_due_jobs_outcome(world: World) -> None:
    ledger, watch, clock = world.ledger, world.watch, world.clock
    poller = world.poller()
    jobs = [processing_job(ledger, watch / f"c{n}.mp4", f"h{n}", clock.t) for n in range(2)]
    world.wistia.answer = lambda r: httpx.Response(401, content=b"")
    poller.sweep(ledger, ledger.jobs.due_polls(clock.t))
    assert ledger.hold.current().kind == "auth"
    assert [ledger.get(j.id).state for j in jobs] == [S.PROCESSING, S.PROCESSING]


def test_without_batch_polling_each_media_is_asked_alone(world: World) -> None:
    ledger, watch, clock = world.ledger, world.watch, world.clock
    settings = world.settings.model_copy(
        update={"ingest": world.settings.ingest.model_copy(update={"batch_polling": False})}
    )
    poller = world.poller(settings)
    for n in range(2):
        processing_job(ledger, watch / f"c{n}.mp4", f"h{n}", clock.t)
    world.wistia.answer = lambda r: httpx.Response(
        200, json=media("ready", r.url.path.split("/")[-1].removesuffix(".json"))
    )
    poller.sweep(ledger, ledger.jobs.due_polls(clock.t))
    assert sorted(r.url.path for r in world.wistia.requests) == [
        "/v1/medias/h0.json",
        "/v1/medias/h1.json",
    ]


def test_a_media_processing_is_not_timed_out_by_a_wall_clock_step_forward(world: World) -> None:
    ledger, clock = world.ledger, world.clock
    poller = world.poller()
    job = processing_job(ledger, world.watch / "clip.mp4", since=clock.now())
    clock.wall_offset = 10 * 3600.0  # beyond processing_timeout_seconds (6 h)
    clock.t += 1.0
    world.wistia.answer = lambda r: httpx.Response(200, json=media("processing"))
    poller.guard.run(ledger, job, poller.poll)
    assert ledger.get(job.id).state == S.PROCESSING
