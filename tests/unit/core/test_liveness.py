"""Heartbeats: a helper thread beats the stage it works for."""

from __future__ import annotations

from ingestd.core.jobs import JobState

S = JobState


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
