"""The daemon's supervisor, without a subprocess: health from heartbeats, restarts of dead
stages with growing pauses, and the worker count on reload."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest

from ingestd.config.settings import Settings
from ingestd.core.liveness import DEFAULT_ALLOW_SECONDS
from ingestd.daemon.wiring import WORKER_PREFIX, Daemon, _Stage
from ingestd.ledger import wake_all
from tests.conftest import wait_until


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    settings = Settings(watch_dir=tmp_path, ledger=tmp_path / "ledger.db", ingest={"workers": 3})
    made = Daemon(settings, "tok")
    yield made
    made.stop.set()
    wake_all()  # as the daemon's own shutdown does: idle stages see the stop at once
    for stage in made.stages:
        if stage.thread is not None:
            stage.thread.join(timeout=5)
    made.client.close()


def test_a_stage_that_stops_beating_stops_the_watchdog_pings(daemon: Daemon) -> None:
    gate = threading.Event()
    stuck = _Stage("stuck", lambda: gate.wait(10))
    daemon.stages = [stuck]
    stuck.start()
    now = stuck.started_at
    assert daemon._supervise(now + 1) is True
    assert daemon._supervise(now + DEFAULT_ALLOW_SECONDS + 1) is False  # silent too long
    stuck.heartbeat.beat()
    assert daemon._supervise(stuck.started_at) is True  # beating again: healthy again
    gate.set()


def test_a_dead_stage_is_restarted_after_growing_pauses(daemon: Daemon) -> None:
    def crash() -> None:
        raise RuntimeError("boom")

    stage = _Stage("crashy", crash)
    daemon.stages = [stage]
    stage.start()
    thread = stage.thread
    thread.join(timeout=5)
    now, restarts = stage.started_at, []
    for _ in range(700):  # 70 s of supervision, a look every 0.1 s
        now += 0.1
        assert daemon._supervise(now) is False  # a dead stage is never healthy
        if stage.thread is not thread:
            restarts.append(now)
            thread = stage.thread
            thread.join(timeout=5)  # it crashes again at once
    pauses = [round(b - a) for a, b in itertools.pairwise(restarts)]
    # Noticed a tenth after each crash, restarted 1, 2, 4 ... s later: the pauses grow.
    assert pauses == [2, 4, 8, 16, 32]


def workers(daemon: Daemon) -> list[_Stage]:
    return [s for s in daemon.stages if s.name.startswith(WORKER_PREFIX)]


def test_scaling_3_1_3_keeps_exactly_the_configured_workers(daemon: Daemon) -> None:
    for stage in workers(daemon):
        stage.start()
    threads = {s.name: s.thread for s in workers(daemon)}
    daemon._set_workers(1)
    retiring = [s for s in workers(daemon) if s.retire.is_set()]
    assert [s.name for s in retiring] == ["upload-2", "upload-3"]
    daemon._set_workers(3)  # before they ended: they are taken back, none is added
    assert [s.name for s in workers(daemon)] == ["upload-1", "upload-2", "upload-3"]
    assert {s.name: s.thread for s in workers(daemon)} == threads
    assert not any(s.retire.is_set() for s in workers(daemon))

    daemon._set_workers(1)
    wait_until(lambda: not any(s.alive() for s in workers(daemon)[1:]), timeout=5)
    daemon._supervise(0.0)  # forgets the workers that finished
    assert [s.name for s in workers(daemon)] == ["upload-1"]
    daemon._set_workers(3)
    assert sorted(s.name for s in workers(daemon)) == ["upload-1", "upload-2", "upload-3"]
    assert sum(s.alive() for s in workers(daemon)) == 3


def test_an_unhealthy_stage_does_not_make_the_main_loop_spin(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s, were all healthy

    def crash() -> None:
        raise RuntimeError("boom")

    class Counting(Daemon):
        passes = 0

        def _supervise(self, now: float) -> bool:
            Counting.passes += 1
            return super()._supervise(now)

    counting = Counting(daemon.settings, "tok")
    counting.stages = [_Stage("crashy", crash)]
    counting.stages[0].start()
    loop = threading.Thread(target=counting._main_loop)
    loop.start()
    threading.Event().wait(1.5)  # the loop's own pace is what is measured
    counting.stop.set()
    counting._attention.set()
    loop.join(timeout=5)
    counting.client.close()
    assert 1 <= Counting.passes <= 20  # ticks and ping times, not a busy loop
