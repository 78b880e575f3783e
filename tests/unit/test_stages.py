"""Stages driven one step at a time: a real ledger and real files, Wistia as an
httpx.MockTransport, and a clock the test moves. No threads, no subprocess, no sleeping."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ingestd.config.settings import Settings
from ingestd.core import clock as ingestd_clock
from ingestd.core.errors import FileChanged
from ingestd.core.jobs import Job, JobState
from ingestd.folder.sidecars import FATE_STEP
from ingestd.ledger import Ledger
from ingestd.pipeline.finish.finisher import Finisher
from ingestd.pipeline.held import HeldJobs
from ingestd.pipeline.poll import Poller
from ingestd.pipeline.upload import Uploader
from ingestd.pipeline.watch.watcher import Watcher
from ingestd.wistia.client import RateLimiter, WistiaClient

S = JobState


class Clock(ingestd_clock.Clock):
    """A clock the test sets: `t` is both its steady and its wall time (until a test steps
    the wall clock alone: `wall_offset`)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.t = now
        self.wall_offset = 0.0
        super().__init__(wall=lambda: self.t + self.wall_offset, monotonic=lambda: self.t)


class Wistia:
    """Answers from a function of the request; remembers every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answer: Callable[[httpx.Request], httpx.Response] = lambda r: httpx.Response(500)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.answer(request)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict]:
    watch = tmp_path / "inbox"
    watch.mkdir()
    settings = Settings(
        watch_dir=watch,
        ledger=tmp_path / "ledger.db",
        wistia={"api_url": "http://127.0.0.1:9/v1/", "upload_url": "http://127.0.0.1:9/"},
        ingest={"settle_seconds": 1.0, "max_attempts": 3, "rescan_seconds": 300},
    )
    wistia = Wistia()
    stop = threading.Event()
    client = WistiaClient(
        settings.wistia,
        "tok",
        RateLimiter(600),
        stop,
        api_retries=1,
        transport=httpx.MockTransport(wistia),
    )
    clock = Clock()
    ledger = Ledger(settings.ledger, clock=clock)
    yield {
        "settings": settings,
        "watch": watch,
        "wistia": wistia,
        "client": client,
        "ledger": ledger,
        "stop": stop,
        "clock": clock,
    }
    ledger.close()
    client.close()


def queued_job(ledger: Ledger, path: Path, data: bytes = b"video bytes") -> Job:
    path.write_bytes(data)
    stat = path.stat()
    kind = "url" if path.suffix == ".url" else "file"
    job = ledger.add_settling(str(path), kind, stat.st_size, stat.st_mtime_ns)
    return ledger.settle(job, "sha")


def processing_job(ledger: Ledger, path: Path, hashed_id: str = "h1", since: float = 0.0) -> Job:
    queued_job(ledger, path, path.name.encode())
    job = ledger.claim_upload()
    return ledger.move(
        job,
        S.PROCESSING,
        "uploaded",
        hashed_id=hashed_id,
        media_id=1,
        processing_since=since,
        next_poll_at=since,
        poll_interval=5.0,
        media_name=path.name,
    )


def media(status: str = "ready", hashed_id: str = "h1", updated: float | None = None) -> dict:
    from datetime import UTC, datetime

    answer = {"id": 1, "hashed_id": hashed_id, "name": "clip.mp4", "status": status}
    if updated is not None:
        answer["updated"] = datetime.fromtimestamp(updated, UTC).isoformat()
    return answer


# --- poller ---------------------------------------------------------------------------------------


def test_poll_404_fails_the_job_and_500_polls_later(world: dict) -> None:
    ledger, clock = world["ledger"], world["clock"]
    poller = Poller(world["settings"], ledger.path, world["client"], world["stop"], clock)
    job = processing_job(ledger, world["watch"] / "clip.mp4")
    clock.t = 100.0

    world["wistia"].answer = lambda r: httpx.Response(500, json={"error": "boom"})
    poller.guard.run(ledger, job, poller.poll)
    later = ledger.get(job.id)
    assert later.state == S.PROCESSING and later.attempts == 0
    assert later.next_poll_at == 100.0 + 7.5 and "HTTP 500" in later.reason

    world["wistia"].answer = lambda r: httpx.Response(404, json={"error": "not found"})
    poller.guard.run(ledger, later, poller.poll)
    assert ledger.get(job.id).state == S.FAILED
    assert "deleted in Wistia (404)" in ledger.get(job.id).error


def test_poll_ready_moves_to_finishing(world: dict) -> None:
    ledger = world["ledger"]
    poller = Poller(world["settings"], ledger.path, world["client"], world["stop"], world["clock"])
    job = processing_job(ledger, world["watch"] / "clip.mp4")
    world["wistia"].answer = lambda r: httpx.Response(200, json=media("ready"))
    poller.guard.run(ledger, job, poller.poll)
    assert ledger.get(job.id).state == S.FINISHING


def test_one_list_answers_for_every_media_it_shows(world: dict) -> None:
    ledger, watch, clock = world["ledger"], world["watch"], world["clock"]
    poller = Poller(world["settings"], ledger.path, world["client"], world["stop"], clock)
    for n in range(3):
        processing_job(ledger, watch / f"c{n}.mp4", hashed_id=f"h{n}", since=clock.t)
    listed = [media("ready", "h0"), media("processing", "h1"), media("failed", "h2")]
    world["wistia"].answer = lambda r: httpx.Response(200, json=listed)
    poller.sweep(ledger, ledger.due_polls(clock.t))
    (request,) = world["wistia"].requests  # one request for the three of them
    assert request.url.path == "/v1/medias.json"
    assert dict(request.url.params) == {
        "sort_by": "updated", "sort_direction": "0", "per_page": "100", "page": "1"
    }  # fmt: skip
    states = [ledger.latest_for_path(str(watch / f"c{n}.mp4")).state for n in range(3)]
    assert states == [S.FINISHING, S.PROCESSING, S.FAILED]
    assert ledger.latest_for_path(str(watch / "c1.mp4")).next_poll_at == clock.t + 7.5


def test_pages_are_read_while_they_may_hold_a_due_media_then_it_is_asked_alone(
    world: dict,
) -> None:
    ledger, watch, clock = world["ledger"], world["watch"], world["clock"]
    poller = Poller(world["settings"], ledger.path, world["client"], world["stop"], clock)
    clock.t = 10_000.0
    job = processing_job(ledger, watch / "x.mp4", hashed_id="hx", since=clock.t)
    newer = [media("ready", f"n{n}", updated=20_000) for n in range(100)]  # changed since
    older = [media("ready", f"o{n}", updated=5_000) for n in range(100)]  # before any upload

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/medias.json":
            page = int(request.url.params["page"])
            return httpx.Response(200, json=newer if page == 1 else older)
        return httpx.Response(200, json=media("processing", "hx"))

    world["wistia"].answer = answer
    poller.sweep(ledger, ledger.due_polls(clock.t))
    asked = [(r.url.path, r.url.params.get("page")) for r in world["wistia"].requests]
    assert asked == [
        ("/v1/medias.json", "1"),  # full, and changed after the upload began: read on
        ("/v1/medias.json", "2"),  # changed before it: no later page can hold it
        ("/v1/medias/hx.json", None),  # so it is asked about on its own
    ]
    assert ledger.get(job.id).state == S.PROCESSING


def test_a_failed_list_is_every_due_jobs_outcome(world: dict) -> None:
    ledger, watch, clock = world["ledger"], world["watch"], world["clock"]
    poller = Poller(world["settings"], ledger.path, world["client"], world["stop"], clock)
    jobs = [processing_job(ledger, watch / f"c{n}.mp4", f"h{n}", clock.t) for n in range(2)]
    world["wistia"].answer = lambda r: httpx.Response(401, content=b"")
    poller.sweep(ledger, ledger.due_polls(clock.t))
    assert ledger.hold().kind == "auth"
    assert [ledger.get(j.id).state for j in jobs] == [S.PROCESSING, S.PROCESSING]


def test_without_batch_polling_each_media_is_asked_alone(world: dict) -> None:
    ledger, watch, clock = world["ledger"], world["watch"], world["clock"]
    settings = world["settings"].model_copy(
        update={"ingest": world["settings"].ingest.model_copy(update={"batch_polling": False})}
    )
    poller = Poller(settings, ledger.path, world["client"], world["stop"], clock)
    for n in range(2):
        processing_job(ledger, watch / f"c{n}.mp4", f"h{n}", clock.t)
    world["wistia"].answer = lambda r: httpx.Response(
        200, json=media("ready", r.url.path.split("/")[-1].removesuffix(".json"))
    )
    poller.sweep(ledger, ledger.due_polls(clock.t))
    assert sorted(r.url.path for r in world["wistia"].requests) == [
        "/v1/medias/h0.json",
        "/v1/medias/h1.json",
    ]


def test_polls_take_at_most_their_share_of_the_budget() -> None:
    from ingestd.wistia.client import POLL_SHARE

    client = WistiaClient(
        Settings(watch_dir=Path("/w")).wistia, "t", RateLimiter(600), threading.Event(),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=[])),
    )  # fmt: skip
    assert client.poll_budget.per_minute == 600 * POLL_SHARE == 150
    client.close()


# --- uploader -------------------------------------------------------------------------------------


def test_upload_video_limit_requeues_and_holds_the_account(world: dict) -> None:
    ledger = world["ledger"]
    uploader = Uploader(
        world["settings"], ledger.path, world["client"], world["stop"], world["clock"]
    )
    queued_job(ledger, world["watch"] / "clip.mp4")
    job = ledger.claim_upload()
    limit = {"error": "This account has exceeded its video limit. Please upgrade."}
    world["wistia"].answer = lambda r: httpx.Response(400, json=limit)
    uploader.guard.run(ledger, job, uploader._process)
    after = ledger.get(job.id)
    assert after.state == S.QUEUED and after.attempts == 0
    assert ledger.hold().kind == "video_limit"
    (sent,) = world["wistia"].requests
    assert sent.headers["Authorization"] == "Bearer tok" and b"video bytes" in sent.content


def test_upload_of_a_fifo_is_held_without_reading_it(world: dict) -> None:
    ledger = world["ledger"]
    uploader = Uploader(
        world["settings"], ledger.path, world["client"], world["stop"], world["clock"]
    )
    path = world["watch"] / "clip.mp4"
    queued_job(ledger, path)
    path.unlink()
    os.mkfifo(path)  # a writer never comes: opening it for reading must not wait for one
    job = ledger.claim_upload()
    uploader.guard.run(ledger, job, uploader._process)
    held = ledger.get(job.id)
    assert held.state == S.HELD and "FIFO" in held.reason
    assert world["wistia"].requests == []


def test_a_file_changed_before_upload_settles_again(world: dict) -> None:
    ledger = world["ledger"]
    uploader = Uploader(
        world["settings"], ledger.path, world["client"], world["stop"], world["clock"]
    )
    path = world["watch"] / "clip.mp4"
    queued_job(ledger, path)
    path.write_bytes(b"other, longer video bytes")
    job = ledger.claim_upload()
    uploader.guard.run(ledger, job, uploader._process)
    after = ledger.get(job.id)
    assert after.state == S.SETTLING and after.size == len(b"other, longer video bytes")
    assert world["wistia"].requests == []


# --- finisher -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sidecar", "words"),
    [
        ('{"customizations": {"playerColor": NaN}}', "NaN"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than the 32 levels"),
    ],
    ids=["nan", "deep"],
)
def test_a_poisoned_clip_json_holds_only_its_job(world: dict, sidecar: str, words: str) -> None:
    ledger, watch = world["ledger"], world["watch"]
    finisher = Finisher(
        world["settings"], ledger.path, world["client"], world["stop"], world["clock"]
    )
    bad = processing_job(ledger, watch / "bad.mp4")
    (watch / "bad.json").write_text(sidecar)
    bad = ledger.move(bad, S.FINISHING)
    finisher.guard.run(ledger, bad, finisher.finish)
    held = ledger.get(bad.id)
    assert held.state == S.HELD and words in held.reason and "bad.json" in held.reason
    assert world["wistia"].requests == []


def test_an_unexpected_error_fails_one_job_and_the_next_one_goes_on(world: dict) -> None:
    ledger, watch = world["ledger"], world["watch"]
    finisher = Finisher(
        world["settings"], ledger.path, world["client"], world["stop"], world["clock"]
    )
    first = ledger.move(processing_job(ledger, watch / "a.mp4"), S.FINISHING)

    def broken(ledger: Ledger, job: Job) -> None:
        raise KeyError("surprise")

    finisher.guard.run(ledger, first, broken)
    failed = ledger.get(first.id)
    assert failed.state == S.FAILED and failed.error == "internal error: KeyError: 'surprise'"


# --- held jobs ------------------------------------------------------------------------------------


def test_held_job_recheck_writes_nothing_until_fixed_then_resumes(world: dict) -> None:
    ledger, watch, clock = world["ledger"], world["watch"], world["clock"]
    uploader = Uploader(world["settings"], ledger.path, world["client"], world["stop"], clock)
    held_jobs = HeldJobs(
        world["settings"], ledger.path, world["stop"], {S.QUEUED: uploader.preflight}, clock
    )
    path = watch / "clip.url"
    queued = queued_job(ledger, path, b"ftp://example.com/clip.mp4\n")
    job = ledger.claim_upload()
    uploader.guard.run(ledger, job, uploader._process)
    held = ledger.get(queued.id)
    assert held.state == S.HELD and "ftp://" in held.reason
    events = len(ledger.events(held.id))

    for _ in range(5):  # nothing changed: rechecks at growing intervals, and no writes
        for due in held_jobs.due(ledger, clock.now()):
            held_jobs.guard.run(ledger, due, held_jobs.recheck)
        clock.t += 1000
    assert len(ledger.events(held.id)) == events and ledger.get(held.id) == held
    assert held_jobs.due(ledger, clock.now()) == [held]  # the interval is long, but it was due

    path.write_text("https://example.com/clip.mp4\n")
    held_jobs.nudge(watch)  # the watcher saw the folder change: look at once
    (due,) = held_jobs.due(ledger, clock.now())
    held_jobs.guard.run(ledger, due, held_jobs.recheck)
    assert ledger.get(held.id).state == S.QUEUED
    assert ledger.events(held.id)[-1].note == "problem fixed"
    assert uploader.prepare(ledger.get(held.id)).url == "https://example.com/clip.mp4"


def test_held_job_rechecks_grow_and_a_nudge_starts_them_over(world: dict) -> None:
    ledger, watch, clock = world["ledger"], world["watch"], world["clock"]
    checks: list[float] = []

    def still_bad(ledger: Ledger, job: Job) -> None:
        from ingestd.core.errors import JobInputError

        checks.append(clock.t)
        raise JobInputError("clip.json: bad")

    held_jobs = HeldJobs(
        world["settings"], ledger.path, world["stop"], {S.QUEUED: still_bad}, clock
    )
    job = queued_job(ledger, watch / "clip.mp4")
    ledger.move(ledger.claim_upload(), S.HELD, reason="clip.json: bad")
    held_at = clock.t
    for _ in range(400):  # 200 s in half-second steps
        for due in held_jobs.due(ledger, clock.now()):
            held_jobs.guard.run(ledger, due, held_jobs.recheck)
        clock.t += 0.5
    gaps = [b - a for a, b in itertools.pairwise([held_at, *checks])]
    assert gaps[:6] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0] and max(gaps) == 60.0
    before = len(checks)
    held_jobs.nudge(watch / "sub")  # another folder: not this job's
    assert held_jobs.due(ledger, clock.now()) == []
    held_jobs.nudge(watch)
    assert held_jobs.due(ledger, clock.now()) == [ledger.get(job.id)]
    assert len(checks) == before


# --- watcher --------------------------------------------------------------------------------------


def test_the_periodic_rescan_finds_what_no_event_announced(world: dict) -> None:
    settings, ledger, clock = world["settings"], world["ledger"], world["clock"]
    watcher = Watcher(settings, settings.ledger, world["stop"], clock=clock)
    watcher.ledger = ledger
    watcher.tick()  # the start-up scan (no observer here: no events at all)
    quiet = world["watch"] / "quiet" / "missed.mp4"
    quiet.parent.mkdir()
    quiet.write_bytes(b"never announced")
    watcher.tick()
    assert ledger.latest_for_path(str(quiet)) is None  # the rescan is not due yet
    clock.t += settings.ingest.rescan_seconds
    watcher.tick()
    assert ledger.latest_for_path(str(quiet)).state == S.SETTLING


def test_a_name_that_is_not_utf8_is_a_job_kept_exactly(world: dict) -> None:
    settings, ledger, clock = world["settings"], world["ledger"], world["clock"]
    watcher = Watcher(settings, settings.ledger, world["stop"], clock=clock)
    watcher.ledger = ledger
    raw = os.fsencode(world["watch"]) + b"/caf\xe9.mp4"
    with open(raw, "wb") as handle:
        handle.write(b"bytes")
    watcher.tick()
    clock.t += 2
    watcher.tick()
    (job,) = ledger.active_and_recent(None)
    assert os.fsencode(job.path) == raw and job.state == S.QUEUED
    assert ledger.latest_for_path(os.fsdecode(raw)) == job


def test_a_255_byte_name_settles_and_its_sidecars_are_looked_for(world: dict) -> None:
    settings, ledger = world["settings"], world["ledger"]
    path = world["watch"] / ("x" * 251 + ".mp4")
    queued_job(ledger, path)
    uploader = Uploader(settings, ledger.path, world["client"], world["stop"], world["clock"])
    upload = uploader.prepare(ledger.claim_upload())
    upload.close()
    assert upload.fields["name"] == path.name


def test_observer_choice_follows_the_setting_and_the_mount() -> None:
    from ingestd.pipeline.watch.watcher import choose_observer

    mounts = (
        "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /srv/share rw - nfs4 server:/export rw\n"
        "41 22 0:51 / /srv/my\\040sshfs rw - fuse.sshfs me@host: rw\n"
    )
    folder = Path("/srv/share/inbox")
    assert choose_observer("auto", folder, mounts)[0] == "polling"
    assert "nfs4" in choose_observer("auto", folder, mounts)[1]
    assert choose_observer("auto", Path("/srv/my sshfs/x"), mounts)[0] == "polling"
    assert choose_observer("auto", Path("/home/me"), mounts)[0] == "inotify"
    assert choose_observer("native", folder, mounts)[0] == "inotify"
    assert choose_observer("polling", Path("/home/me"), mounts)[0] == "polling"


def test_json_sidecar_limits_are_checked_before_parsing(tmp_path: Path) -> None:
    from ingestd.folder.sidecars import SidecarError, read_metadata

    (tmp_path / "clip.json").write_text(json.dumps({"name": "x" * (1024 * 1024)}))
    with pytest.raises(SidecarError, match="larger than the 1 MiB"):
        read_metadata(tmp_path / "clip.mp4", tmp_path)
    (tmp_path / "clip.json").write_text('{"a": ' * 33 + "1" + "}" * 33)
    with pytest.raises(SidecarError, match="line 1: nested deeper than the 32"):
        read_metadata(tmp_path / "clip.mp4", tmp_path)
    (tmp_path / "clip.json").write_text(
        '{"a": ' * 31 + '"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["' + "}" * 31
    )
    assert read_metadata(tmp_path / "clip.mp4", tmp_path).name is None  # brackets in strings


def test_a_job_held_again_right_after_release_cycles_ever_more_slowly(world: dict) -> None:
    ledger, watch, clock = world["ledger"], world["watch"], world["clock"]

    def looks_fine(ledger: Ledger, job: Job) -> None:
        pass  # the recheck sees nothing wrong; only the stage itself meets the problem

    held_jobs = HeldJobs(
        world["settings"], ledger.path, world["stop"], {S.QUEUED: looks_fine}, clock
    )
    queued_job(ledger, watch / "clip.mp4")
    ledger.move(ledger.claim_upload(), S.HELD, reason="cannot move the file")
    releases = []
    for _ in range(1200):  # 10 minutes in half-second steps
        for due in held_jobs.due(ledger, clock.now()):
            held_jobs.guard.run(ledger, due, held_jobs.recheck)
            releases.append(clock.t)
            again = ledger.claim_upload(clock.t)  # the stage meets the problem again at once
            ledger.move(again, S.HELD, reason="cannot move the file")
        clock.t += 0.5
    gaps = [b - a for a, b in itertools.pairwise(releases)]
    assert gaps[:4] == [4.0, 8.0, 16.0, 32.0] and min(gaps) >= 4.0
    assert len(releases) <= 15  # in ten minutes: not several a second, at most one a minute


def finishing_job(world: dict, name: str = "clip.mp4", **settings: object) -> tuple:
    base = world["settings"]
    if settings:
        base = base.model_copy(update={"ingest": base.ingest.model_copy(update=settings)})
    finisher = Finisher(base, world["ledger"].path, world["client"], world["stop"], world["clock"])
    job = world["ledger"].move(processing_job(world["ledger"], world["watch"] / name), S.FINISHING)
    return finisher, job


def test_a_sidecar_dated_in_the_future_does_not_keep_finishing_waiting(world: dict) -> None:
    ledger, watch = world["ledger"], world["watch"]
    finisher, job = finishing_job(world)
    (watch / "clip.json").write_text('{"description": "from the future"}')
    os.utime(watch / "clip.json", (4_000_000_000, 4_000_000_000))  # the year 2096
    world["clock"].t = 2_000_000_000.0
    world["wistia"].answer = lambda r: httpx.Response(200, json=media("ready"))
    finisher.guard.run(ledger, job, finisher.finish)
    assert ledger.get(job.id).state == S.DONE
    assert b"from+the+future" in world["wistia"].requests[0].content


def test_after_a_crash_mid_move_the_sidecars_are_not_sent_again(world: dict, tmp_path) -> None:
    ledger, watch = world["ledger"], world["watch"]
    archive = tmp_path / "archive"
    finisher, job = finishing_job(world, after_upload="move", archive_dir=str(archive))
    (watch / "clip.json").write_text('{"name": "Launch", "customizations": {"autoPlay": true}}')
    world["wistia"].answer = lambda r: httpx.Response(200, json=media("ready"))
    # A first pass sent the sidecars, recorded the move target, moved clip.json, and died.
    for step, fingerprint, send in finisher._steps(job, finisher.preflight(ledger, job), ledger):
        send()
        ledger.record_sidecar(job.id, step, fingerprint)
    target = archive / "clip.mp4"
    ledger.record_sidecar(job.id, FATE_STEP, os.fsencode(target).hex())
    archive.mkdir()
    os.rename(watch / "clip.json", archive / "clip.json")  # moved; then the kill -9
    sent = len(world["wistia"].requests)
    finisher.guard.run(ledger, job, finisher.finish)  # the restart
    assert ledger.get(job.id).state == S.DONE
    assert len(world["wistia"].requests) == sent  # nothing re-sent without its clip.json
    assert target.exists() and not (watch / "clip.mp4").exists()


def test_an_archive_that_is_a_file_holds_the_job_before_anything_is_sent(
    world: dict, tmp_path
) -> None:
    (tmp_path / "archive").write_text("not a folder")
    finisher, job = finishing_job(world, after_upload="move", archive_dir=str(tmp_path / "archive"))
    finisher.guard.run(world["ledger"], job, finisher.finish)
    held = world["ledger"].get(job.id)
    assert held.state == S.HELD and "archive is not a folder" in held.reason
    assert world["wistia"].requests == []


def test_a_touch_after_a_timed_out_upload_still_reconciles(world: dict) -> None:
    ledger, watch, clock = world["ledger"], world["watch"], world["clock"]
    uploader = Uploader(world["settings"], ledger.path, world["client"], world["stop"], clock)
    path = watch / "clip.mp4"
    queued = queued_job(ledger, path)

    def timeout_then_touch(request: httpx.Request) -> httpx.Response:
        os.utime(path, ns=(5, 5))  # touched while Wistia was (slowly) creating the media
        raise httpx.ReadTimeout("no answer", request=request)

    world["wistia"].answer = timeout_then_touch
    uploader.guard.run(ledger, ledger.claim_upload(clock.t), uploader._process)
    settling = ledger.get(queued.id)
    assert settling.state == S.SETTLING and settling.attempts == 0
    assert settling.upload_started_at is not None and settling.media_name == "clip.mp4"
    requeued = ledger.settle(ledger.update(settling, mtime_ns=5), "sha")  # same bytes again
    assert requeued.attempted  # the next claim asks Wistia before sending anything
    assert not ledger.settle(
        ledger.move(ledger.claim_upload(clock.t), S.SETTLING), "other"
    ).attempted  # new bytes: the old attempt is not theirs


def test_bytes_rewritten_in_place_with_the_mtime_put_back_are_not_uploaded(world: dict) -> None:
    settings, ledger, clock = world["settings"], world["ledger"], world["clock"]
    watcher = Watcher(settings, settings.ledger, world["stop"], clock=clock)
    watcher.ledger = ledger
    path = world["watch"] / "clip.mp4"
    path.write_bytes(b"the bytes that are hashed")
    watcher.tick()
    clock.t += 2
    watcher.tick()
    (job,) = ledger.active_and_recent(None)
    assert job.state == S.QUEUED and job.ctime_ns is not None
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.write(b"THE BYTES THAT ARE HASHED")  # same size, in place
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the mtime put back
    uploader = Uploader(settings, ledger.path, world["client"], world["stop"], clock)
    with pytest.raises(FileChanged):
        uploader.prepare(ledger.claim_upload(clock.t))


def test_a_255_byte_name_moves_into_an_archive_where_it_is_taken(world: dict, tmp_path) -> None:
    ledger, watch = world["ledger"], world["watch"]
    archive = tmp_path / "archive"
    name = "n" * 251 + ".mp4"
    finisher, job = finishing_job(world, name, after_upload="move", archive_dir=str(archive))
    archive.mkdir()
    (archive / name).write_text("an earlier file of the same name")
    world["wistia"].answer = lambda r: httpx.Response(200, json=media("ready"))
    finisher.guard.run(ledger, job, finisher.finish)
    done = ledger.get(job.id)
    assert done.state == S.DONE, done.reason
    (moved,) = [p for p in archive.iterdir() if p.name != name]
    assert moved.name.endswith(" (1).mp4") and len(os.fsencode(moved.name)) <= 255
    assert (archive / name).read_text() == "an earlier file of the same name"
    assert not (watch / name).exists()


def test_a_helper_thread_beats_the_stage_heartbeat_it_was_lent() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ingestd.core import liveness

    heartbeat = liveness.Heartbeat("watcher")
    with liveness.attached(heartbeat), ThreadPoolExecutor(1) as pool:
        lent = liveness.current()
        heartbeat._last -= 1000  # long silent
        assert heartbeat.overdue() > 0

        def hash_a_chunk() -> liveness.Heartbeat | None:
            with liveness.lent(lent):
                liveness.beat()
                return liveness.current()

        assert pool.submit(hash_a_chunk).result() is heartbeat
        assert heartbeat.overdue() == 0  # the helper's beat reached the stage
        assert pool.submit(liveness.current).result() is None  # and was given back after


# --- re-sync: what the scan finds -----------------------------------------------------------


def test_the_scan_marks_a_sidecar_changed_after_it_was_read_though_before_done(
    world: dict,
) -> None:
    """A clip.json edited while its job was finishing: after the finisher read it, before the
    job was done (and so before its `updated_at`). The scan compares with the moment the
    sidecars were read, not with the job's last change."""
    from ingestd.pipeline.resync import changed_unseen

    ledger, watch = world["ledger"], world["watch"]
    job = processing_job(ledger, watch / "clip.mp4")
    job = ledger.move(job, S.FINISHING, "ready")
    sidecar = watch / "clip.json"
    sidecar.write_text("{}")
    read_at = time.time() - 60
    os.utime(sidecar, (read_at + 30, read_at + 30))  # edited 30 s after it was read
    world["clock"].t = time.time()  # done now: after the edit
    done = ledger.move(job, S.DONE, "done", sidecars_read_at=read_at)
    assert done.updated_at > read_at + 30  # done later still
    assert changed_unseen(ledger, watch) == [job.id]
    ledger.update(done, sidecars_read_at=time.time() + 5)  # read after every change
    assert changed_unseen(ledger, watch) == []


# --- the system clock steps (NTP, a person, a resumed VM): waits keep their length ---------

DAY = 86_400.0


@pytest.mark.parametrize("step", [-DAY, +DAY])
def test_a_retry_is_due_after_its_wait_whichever_way_the_wall_clock_steps(
    world: dict, step: float
) -> None:
    ledger, clock = world["ledger"], world["clock"]
    uploader = Uploader(world["settings"], ledger.path, world["client"], world["stop"], clock)
    queued_job(ledger, world["watch"] / "clip.mp4")
    world["wistia"].answer = lambda r: httpx.Response(500, json={"error": "boom"})
    job = ledger.claim_upload(clock.now())
    uploader.guard.run(ledger, job, uploader._process)
    waiting = ledger.get(job.id)
    assert waiting.state == S.QUEUED and waiting.next_attempt_at is not None
    clock.wall_offset = step  # the system clock steps; the steady one goes on
    assert ledger.claim_upload(clock.now()) is None  # not due yet: a step brings nothing near
    clock.t = waiting.next_attempt_at + 0.01
    assert ledger.claim_upload(clock.now()).id == job.id  # due after its wait, no later


def test_a_media_processing_is_not_timed_out_by_a_wall_clock_step_forward(world: dict) -> None:
    ledger, clock = world["ledger"], world["clock"]
    poller = Poller(world["settings"], ledger.path, world["client"], world["stop"], clock)
    job = processing_job(ledger, world["watch"] / "clip.mp4", since=clock.now())
    clock.wall_offset = 10 * 3600.0  # beyond processing_timeout_seconds (6 h)
    clock.t += 1.0
    world["wistia"].answer = lambda r: httpx.Response(200, json=media("processing"))
    poller.guard.run(ledger, job, poller.poll)
    assert ledger.get(job.id).state == S.PROCESSING


@pytest.mark.parametrize("step", [-DAY, +2 * DAY])
def test_a_waiting_notification_is_neither_dropped_nor_stalled_by_a_step(
    world: dict, tmp_path: Path, step: float
) -> None:
    from ingestd.ledger import configure_outbox
    from ingestd.telling.notify.deliver import Notifier

    ledger, clock, settings = world["ledger"], world["clock"], world["settings"]
    told = tmp_path / "told"
    settings.notify.command = ["/bin/sh", "-c", f"touch '{told}'"]
    configure_outbox(["failed"], ["command"])
    try:
        job = queued_job(ledger, world["watch"] / "clip.mp4")
        ledger.move(ledger.claim_upload(clock.now()), S.FAILED, "no", error="no")
        (notification,) = ledger.due_notifications(clock.now())
        ledger.notification_failed(notification, "refused", retry_at=clock.now() + 5.0)
        clock.wall_offset = step  # 2 days ahead: beyond max_age_hours (24)
        clock.t += 5.01
        notifier = Notifier(settings, ledger.path, world["client"], world["stop"], clock)
        (due,) = ledger.due_notifications(clock.now())
        assert notifier.deliver(ledger, due)
        assert told.exists(), "dropped as too old instead of delivered"
        assert job.id == due.job_id
    finally:
        configure_outbox([], [])


def test_the_holds_probe_comes_after_its_interval_though_the_clock_stepped_back(
    world: dict,
) -> None:
    from ingestd.core.jobs import HoldRequest

    ledger, clock = world["ledger"], world["clock"]
    ledger.start_hold(HoldRequest("video_limit", "limit", first_probe_in=60.0))
    clock.wall_offset = -DAY
    assert not ledger.take_probe("video_limit", 120.0)
    clock.t += 60.01
    assert ledger.take_probe("video_limit", 120.0)


def test_due_times_stored_far_ahead_by_an_earlier_process_are_due_at_start_up(
    world: dict,
) -> None:
    """The daemon stopped; the system clock was set back a day; it starts again. What the
    last process stored a day ahead is due now, and what began "in the future" begins now."""
    ledger, clock = world["ledger"], world["clock"]
    queued = queued_job(ledger, world["watch"] / "a.mp4")
    ledger.update(queued, next_attempt_at=clock.now() + DAY + 30)
    polled = processing_job(ledger, world["watch"] / "b.mp4", "hb", since=clock.now() + DAY)
    ledger.update(polled, next_poll_at=clock.now() + DAY)
    soon = queued_job(ledger, world["watch"] / "c.mp4")
    ledger.update(soon, next_attempt_at=clock.now() + 30)  # a plausible wait: kept
    assert ledger.bring_times_within(clock.now()) == 3
    assert ledger.get(queued.id).next_attempt_at == clock.now()
    assert ledger.get(polled.id).processing_since == clock.now()
    assert ledger.get(polled.id).next_poll_at == clock.now()
    assert ledger.get(soon.id).next_attempt_at == clock.now() + 30
    assert ledger.claim_upload(clock.now()).id == queued.id


def test_a_settle_begun_in_the_future_by_another_process_begins_now(world: dict) -> None:
    """`ingestd retry` writes the settle's start on its own wall clock; the daemon's steady
    clock may be a day behind it: the file settles after settle_seconds, not a day."""
    from ingestd.pipeline.watch.watcher import Watcher

    ledger, clock, watch = world["ledger"], world["clock"], world["watch"]
    clip = watch / "clip.mp4"
    clip.write_bytes(b"some bytes")
    stat = clip.stat()
    job = ledger.add_settling(str(clip), "file", stat.st_size, stat.st_mtime_ns, clock.now())
    job = ledger.update(job, settle_since=clock.now() + DAY)
    watcher = Watcher(world["settings"], ledger.path, world["stop"], clock=clock)
    watcher.ledger = ledger
    still: list = []
    watcher._check(ledger, job, still=still)
    assert ledger.get(job.id).settle_since == clock.now()  # begins now
    clock.t += world["settings"].ingest.settle_seconds
    watcher._check(ledger, ledger.get(job.id), still=still)
    assert [j.id for j, _ in still] == [job.id]
