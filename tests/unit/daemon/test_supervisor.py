"""The supervisor, directly: health from heartbeats, restarts of dead stages with growing
pauses, the worker count on reload; and the daemon's main loop not spinning on a dead one."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestd.config.settings import Settings
from ingestd.core.liveness import DEFAULT_ALLOW_SECONDS
from ingestd.daemon import Daemon
from ingestd.daemon.supervisor import SupervisedStage, Supervisor
from tests.conftest import wait_until


def crash() -> None:
    raise RuntimeError("boom")


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    stop = threading.Event()

    def worker(name: str) -> SupervisedStage:
        retire = threading.Event()

        def work() -> None:  # an upload worker's life: until the stop, or retired
            while not stop.is_set() and not retire.is_set():
                retire.wait(0.02)

        return SupervisedStage(name, work, retire)

    made = Supervisor([worker(f"upload-{n}") for n in (1, 2, 3)], worker, stop)
    yield made
    stop.set()
    made.join(deadline=time.monotonic() + 10)


def test_a_stage_that_stops_beating_stops_the_watchdog_pings(supervisor: Supervisor) -> None:
    gate = threading.Event()
    stuck = SupervisedStage("stuck", lambda: gate.wait(10))
    supervisor.stages = [stuck]
    stuck.start()
    now = stuck.started_at
    assert supervisor.supervise(now + 1) is True
    assert supervisor.supervise(now + DEFAULT_ALLOW_SECONDS + 1) is False  # silent too long
    stuck.heartbeat.beat()
    assert supervisor.supervise(stuck.started_at) is True  # beating again: healthy again
    gate.set()


def test_a_dead_stage_is_restarted_after_growing_pauses(supervisor: Supervisor) -> None:
    stage = SupervisedStage("crashy", crash)
    supervisor.stages = [stage]
    stage.start()
    thread = stage.thread
    thread.join(timeout=5)
    now, restarts = stage.started_at, []
    for _ in range(700):  # 70 s of supervision, a look every 0.1 s
        now += 0.1
        assert supervisor.supervise(now) is False  # a dead stage is never healthy
        if stage.thread is not thread:
            restarts.append(now)
            thread = stage.thread
            thread.join(timeout=5)  # it crashes again at once
    pauses = [round(b - a) for a, b in itertools.pairwise(restarts)]
    # Noticed a tenth after each crash, restarted 1, 2, 4 ... s later: the pauses grow.
    assert pauses == [2, 4, 8, 16, 32]


def test_scaling_3_1_3_keeps_exactly_the_configured_workers(supervisor: Supervisor) -> None:
    supervisor.start()
    threads = {s.name: s.thread for s in supervisor.workers()}
    supervisor.set_workers(1)
    retiring = [s for s in supervisor.workers() if s.retire.is_set()]
    assert [s.name for s in retiring] == ["upload-2", "upload-3"]
    supervisor.set_workers(3)  # before they ended: they are taken back, none is added
    assert [s.name for s in supervisor.workers()] == ["upload-1", "upload-2", "upload-3"]
    assert {s.name: s.thread for s in supervisor.workers()} == threads
    assert not any(s.retire.is_set() for s in supervisor.workers())

    supervisor.set_workers(1)
    wait_until(lambda: not any(s.alive() for s in supervisor.workers()[1:]), timeout=5)
    supervisor.supervise(0.0)  # forgets the workers that finished
    assert [s.name for s in supervisor.workers()] == ["upload-1"]
    supervisor.set_workers(3)
    assert [s.name for s in supervisor.workers()] == ["upload-1", "upload-2", "upload-3"]
    assert sum(s.alive() for s in supervisor.workers()) == 3


def test_an_unhealthy_stage_does_not_make_the_main_loop_spin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s, were all healthy
    settings = Settings(watch_dir=tmp_path, ledger=tmp_path / "ledger.db")
    daemon = Daemon(settings, "tok")
    daemon.supervisor = Supervisor([SupervisedStage("crashy", crash)], SupervisedStage, daemon.stop)
    passes = []
    supervise = daemon.supervisor.supervise
    daemon.supervisor.supervise = lambda now: passes.append(now) or supervise(now)  # type: ignore[method-assign]
    daemon.supervisor.start()
    loop = threading.Thread(target=daemon._main_loop)
    loop.start()
    threading.Event().wait(1.5)  # the loop's own pace is what is measured
    daemon.stop.set()
    daemon._attention.set()
    loop.join(timeout=5)
    daemon.client.close()
    assert 1 <= len(passes) <= 20  # ticks and ping times, not a busy loop
