"""Re-sync: what the scan marks, by the moment the sidecars were read."""

from __future__ import annotations

import os
import time

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
