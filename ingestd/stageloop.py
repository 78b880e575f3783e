"""The loop of a stage that works through due jobs: the poller's and the finisher's.

Each pass asks the stage for its due jobs and handles them one by one with the job's log
context bound. Under an auth hold nothing is sent, so no jobs are taken. The loop ends when
the daemon stops, and the thread's own ledger connection is closed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ingestd import logs
from ingestd.errors import Cancelled
from ingestd.jobs import Job
from ingestd.ledger import Ledger

IDLE_WAIT_SECONDS = 0.2


def work_through_jobs(
    ledger_path: Path,
    stop: threading.Event,
    due: Callable[[Ledger], list[Job]],
    handle: Callable[[Ledger, Job], None],
    before_each_pass: Callable[[Ledger], None] | None = None,
) -> None:
    ledger = Ledger(ledger_path)
    try:
        while not stop.is_set():
            if before_each_pass is not None:
                before_each_pass(ledger)
            hold = ledger.hold()
            jobs = [] if hold is not None and hold.kind == "auth" else due(ledger)
            for job in jobs:
                if stop.is_set():
                    break
                with logs.job_context(job):
                    handle(ledger, job)
            if not jobs:
                stop.wait(IDLE_WAIT_SECONDS)
    except Cancelled:
        pass
    finally:
        ledger.close()
