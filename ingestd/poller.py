"""Wait for processing: poll each uploaded media until Wistia says `ready` or `failed`.

One thread. Each job is polled at a growing interval (from `ingest.poll_min_seconds`, times
1.5, up to `ingest.poll_max_seconds`), so a long processing queue costs few requests.
`ready` -> finishing. Everything else (Wistia's `failed`, a 404 for a media deleted in Wistia,
processing longer than `ingest.processing_timeout_seconds`, network trouble) ends in the job's
state through the guard and the outcome policy. Polling goes on under a video-limit hold;
under an auth hold nothing is sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from ingestd import logs
from ingestd.config import Settings
from ingestd.errors import MediaFailed
from ingestd.jobs import Job, JobState
from ingestd.ledger import Ledger
from ingestd.outcomes import Policy, Stage
from ingestd.stageloop import Guard, work_through_jobs
from ingestd.wistia import WistiaClient

log = logs.get("ingestd.poller")


class Poller:
    def __init__(
        self,
        settings: Settings,
        ledger_path: Path,
        client: WistiaClient,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ledger_path = ledger_path
        self.client = client
        self.stop = stop
        self.guard = Guard(Stage.POLL, settings, clock)

    def run(self) -> None:
        work_through_jobs(self.ledger_path, self.stop, Ledger.due_polls, self.guard, self.poll)

    def poll(self, ledger: Ledger, job: Job) -> None:
        assert job.hashed_id is not None
        media = self.client.media(job.hashed_id)
        now = self.guard.clock()
        if media.state == "ready":
            log.info("processed by Wistia")
            ledger.move(job, JobState.FINISHING, "ready in Wistia", next_poll_at=None)
            return
        if media.state == "failed":
            raise MediaFailed("Wistia could not process the media (status failed)")
        limit = self.settings.ingest.processing_timeout_seconds
        if now - (job.processing_since or now) > limit:
            raise MediaFailed(f"still {media.state} in Wistia after {limit:.0f} s; giving up")
        interval = Policy.from_settings(self.settings.ingest).poll.after(job.poll_interval)
        ledger.update(
            job,
            next_poll_at=now + interval,
            poll_interval=interval,
            reason=f"Wistia is processing it ({media.state})",
        )
