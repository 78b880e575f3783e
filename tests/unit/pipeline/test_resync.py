"""Re-sync: what the scan marks, by the moment the sidecars were read."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from ingestd.core.jobs import JobState
from tests.unit.conftest import World, processing_job

S = JobState


def test_the_scan_marks_a_sidecar_changed_after_it_was_read_though_before_done(
    world: World,
) -> None:
    """A clip.json edited while its job was finishing: after the finisher read it, before the
    job was done (and so before its `updated_at`). The scan compares with the moment the
    sidecars were read, not with the job's last change."""
    from ingestd.pipeline.resync import changed_unseen

    ledger, watch = world.ledger, world.watch
    job = processing_job(ledger, watch / "clip.mp4")
    job = ledger.move(job, S.FINISHING, "ready")
    sidecar = watch / "clip.json"
    sidecar.write_text("{}")
    read_at = time.time() - 60
    os.utime(sidecar, (read_at + 30, read_at + 30))  # edited 30 s after it was read
    world.clock.t = time.time()  # done now: after the edit
    done = ledger.move(job, S.DONE, "done", sidecars_read_at=read_at)
    assert done.updated_at > read_at + 30  # done later still
    assert changed_unseen(ledger, watch) == [job.id]
    ledger.update(done, sidecars_read_at=time.time() + 5)  # read after every change
    assert changed_unseen(ledger, watch) == []


def _done_with_a_changed_sidecar(world: World, sidecar_text: str) -> int:
    ledger, watch = world.ledger, world.watch
    job = ledger.move(processing_job(ledger, watch / "clip.mp4"), S.FINISHING, "ready")
    done = ledger.move(job, S.DONE, "done", sidecars_read_at=time.time() - 60)
    (watch / "clip.json").write_text(sidecar_text)
    world.clock.t = time.time() + 5  # the re-sync reads after the change
    ledger.resync.mark([done.id], world.clock.now(), world.clock.now())
    return done.id


@pytest.mark.parametrize("sidecar_text", ['{"name": "new name"}', "{not json"])
def test_a_resync_that_cannot_apply_is_not_marked_again_by_every_scan(
    world: World, sidecar_text: str
) -> None:
    """Review finding: a re-sync ending in a 404 (the media deleted in Wistia) or a bad
    sidecar cleared its mark but left the read time old, so every rescan marked it again (a
    request and a warning every 5 minutes, forever). The read time is stamped first."""
    from ingestd.pipeline.resync import changed_unseen

    world.wistia.answer = lambda request: httpx.Response(404, json={"error": "Media not found"})
    job_id = _done_with_a_changed_sidecar(world, sidecar_text)
    resync = world.resync()
    job = world.ledger.get(job_id)
    assert job is not None and changed_unseen(world.ledger, world.watch) == [job_id]
    resync.guard.run(world.ledger, job, resync.resync)
    after = world.ledger.get(job_id)
    assert after is not None and after.state == S.DONE and after.reason
    assert after.resync_due_at is None
    assert changed_unseen(world.ledger, world.watch) == []
