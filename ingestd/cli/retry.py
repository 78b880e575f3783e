"""`ingestd retry (JOB... | --failed)`: failed jobs back to where they go on (ledger.jobs.retry
decides: the queue, finishing, or settling for a file never read whole)."""

from __future__ import annotations

import argparse
from typing import Any

from ingestd.cli.common import EXIT_FAILURE, EXIT_OK, complain, reading, say, status_config
from ingestd.core.errors import IngestdError, LedgerError
from ingestd.core.jobs import JobState
from ingestd.core.names import display
from ingestd.ledger import Ledger


def add_parser(commands: Any) -> None:
    retry = commands.add_parser("retry", help="move failed jobs back to the queue")
    retry.add_argument("jobs", nargs="*", metavar="JOB", help="job ids, paths or hashed ids")
    retry.add_argument("--failed", action="store_true", help="every failed job")
    retry.set_defaults(command=retry_jobs)


def retry_jobs(args: argparse.Namespace) -> int:
    if not args.jobs and not args.failed:
        raise IngestdError("say which jobs: `ingestd retry JOB...` or `ingestd retry --failed`")
    ledger_path = status_config(args).ledger
    if not ledger_path.is_file():
        raise LedgerError(f"no ledger at {ledger_path}: nothing to retry")
    with reading(ledger_path):
        pass  # a corrupt or foreign ledger: one line, and nothing changed
    ledger = Ledger(ledger_path)
    problems = 0
    try:
        if args.failed:
            targets = ledger.jobs.in_state(JobState.FAILED, limit=1_000_000)
        else:
            targets = []
            for ref in args.jobs:
                job = ledger.jobs.find(ref)
                if job is None:
                    complain(f"no job matches {ref!r}")
                    problems += 1
                elif job.state != JobState.FAILED:
                    complain(f"job {job.id} is {job.state}, not failed")
                    problems += 1
                else:
                    targets.append(job)
        for job in targets:
            moved = ledger.jobs.retry(job)
            say(f"job {moved.id}: {moved.state} ({display(moved.path)})")
        if args.failed and not targets:
            say("no failed jobs")
    finally:
        ledger.close()
    return EXIT_FAILURE if problems else EXIT_OK
