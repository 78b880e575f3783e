"""Finish: what happens once Wistia has processed the media, then the job is done.

One thread takes jobs in `finishing` and moves them to `done`.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ingestd import logs
from ingestd.config import Settings
from ingestd.errors import Cancelled
from ingestd.jobs import Job, JobState
from ingestd.ledger import Ledger
from ingestd.wistia import WistiaClient

log = logs.get("ingestd.finisher")

IDLE_WAIT_SECONDS = 0.2


class Finisher:
    def __init__(
        self, settings: Settings, ledger_path: Path, client: WistiaClient, stop: threading.Event
    ) -> None:
        self.settings = settings
        self.ledger_path = ledger_path
        self.client = client
        self.stop = stop

    def run(self) -> None:
        ledger = Ledger(self.ledger_path)
        try:
            while not self.stop.is_set():
                hold = ledger.hold()
                jobs = (
                    []
                    if hold is not None and hold.kind == "auth"
                    else (ledger.jobs_in(JobState.FINISHING, limit=50))
                )
                for job in jobs:
                    if self.stop.is_set():
                        break
                    with logs.job_context(job):
                        self.finish(ledger, job)
                if not jobs:
                    self.stop.wait(IDLE_WAIT_SECONDS)
        except Cancelled:
            pass
        finally:
            ledger.close()

    def finish(self, ledger: Ledger, job: Job) -> None:
        ledger.move(job, JobState.DONE, "done", error=None)
        log.info("done")
