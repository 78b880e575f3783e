"""Stages driven one step at a time: a real ledger and real files, Wistia as an
httpx.MockTransport, and a clock the test moves. No threads, no subprocess, no sleeping."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingestd.config.settings import Settings
from ingestd.core import clock as core_clock
from ingestd.core.jobs import Job, JobState
from ingestd.ledger import Ledger, Ledgers
from ingestd.pipeline.finish import Finisher
from ingestd.pipeline.held import HeldJobs, Preflight
from ingestd.pipeline.poll import Poller
from ingestd.pipeline.resync import Resync
from ingestd.pipeline.upload import Uploader
from ingestd.pipeline.watch.watcher import Watcher
from ingestd.telling.notify.deliver import Notifier
from ingestd.wistia.client import WistiaClient
from ingestd.wistia.limiter import RateLimiter


class Clock(core_clock.Clock):
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


@dataclass
class World:
    """What a stage needs, made real: settings, a watch folder, the ledger (through the same
    Ledgers a daemon shares), a Wistia client answering from `wistia`, the stop, the clock."""

    settings: Settings
    watch: Path
    wistia: Wistia
    client: WistiaClient
    ledgers: Ledgers
    ledger: Ledger
    stop: threading.Event
    clock: Clock

    def with_ingest(self, **changes: Any) -> Settings:
        """The settings with some `[ingest]` keys changed."""
        ingest = self.settings.ingest.model_copy(update=changes)
        return self.settings.model_copy(update={"ingest": ingest})

    def poller(self, settings: Settings | None = None) -> Poller:
        return Poller(settings or self.settings, self.ledgers, self.client, self.stop)

    def uploader(self, settings: Settings | None = None) -> Uploader:
        return Uploader(settings or self.settings, self.ledgers, self.client, self.stop)

    def finisher(self, settings: Settings | None = None) -> Finisher:
        return Finisher(settings or self.settings, self.ledgers, self.client, self.stop)

    def resync(self, settings: Settings | None = None) -> Resync:
        return Resync(settings or self.settings, self.ledgers, self.client, self.stop)

    def held_jobs(self, preflights: Mapping[JobState, Preflight]) -> HeldJobs:
        return HeldJobs(self.settings, self.ledgers, self.stop, preflights)

    def notifier(self, settings: Settings | None = None) -> Notifier:
        return Notifier(settings or self.settings, self.ledgers, self.client, self.stop)

    def watcher(self, settings: Settings | None = None) -> Watcher:
        """A watcher on this world's ledger, as its thread would have it (no observer)."""
        made = Watcher(settings or self.settings, self.ledgers, self.stop)
        made.ledger = made.settler.ledger = self.ledger
        return made


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A fresh ledger on real SQLite, closed after the test."""
    opened = Ledger(tmp_path / "ledger.db")
    yield opened
    opened.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
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
    ledgers = Ledgers(settings.ledger, clock=clock)
    ledger = ledgers.open()
    yield World(settings, watch, wistia, client, ledgers, ledger, stop, clock)
    ledger.close()
    client.close()


def queued_job(ledger: Ledger, path: Path, data: bytes = b"video bytes") -> Job:
    path.write_bytes(data)
    stat = path.stat()
    kind = "url" if path.suffix == ".url" else "file"
    job = ledger.settling.add(str(path), kind, stat.st_size, stat.st_mtime_ns)
    settled = ledger.settling.settle(job, "sha")
    assert settled is not None
    return settled


def processing_job(ledger: Ledger, path: Path, hashed_id: str = "h1", since: float = 0.0) -> Job:
    queued_job(ledger, path, path.name.encode())
    job = ledger.uploads.claim()
    assert job is not None
    return ledger.move(
        job,
        JobState.PROCESSING,
        "uploaded",
        hashed_id=hashed_id,
        media_id=1,
        processing_since=since,
        next_poll_at=since,
        poll_interval=5.0,
        media_name=path.name,
    )


def finishing_job(world: World, name: str = "clip.mp4", **ingest: Any) -> tuple[Finisher, Job]:
    finisher = world.finisher(world.with_ingest(**ingest) if ingest else None)
    job = world.ledger.move(processing_job(world.ledger, world.watch / name), JobState.FINISHING)
    return finisher, job


def media(status: str = "ready", hashed_id: str = "h1", updated: float | None = None) -> dict:
    answer: dict[str, Any] = {"id": 1, "hashed_id": hashed_id, "name": "clip.mp4"}
    answer["status"] = status
    if updated is not None:
        answer["updated"] = datetime.fromtimestamp(updated, UTC).isoformat()
    return answer
