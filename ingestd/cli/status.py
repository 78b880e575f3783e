"""`ingestd status [--json] [--all] [--watch] [--check] [JOB]`: what the daemon has done and
is doing, from the ledger, read-only, whether or not the daemon runs. Quick: it imports no
pydantic, httpx or structlog (the config is read for the four values it needs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ingestd import logs
from ingestd.cli.common import EXIT_OK, reading, say, say_json, status_config
from ingestd.core.errors import IngestdError
from ingestd.core.names import display
from ingestd.telling.status import (
    UNKNOWN,
    as_json,
    empty_snapshot,
    health,
    history,
    render,
    render_history,
    snapshot,
    summary,
)


def add_parser(commands: Any) -> None:
    status = commands.add_parser("status", help="what the daemon has done and is doing")
    status.add_argument("job", nargs="?", metavar="JOB", help="a job id, path or hashed id")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.add_argument("--all", action="store_true", help="every job, not just the recent")
    status.add_argument(
        "--check",
        action="store_true",
        help="monitoring mode: one line; exit 0 ok, 1 warning, 2 critical",
    )
    status.add_argument(
        "--watch",
        action="store_true",
        help="redraw every second, with a progress bar per upload, until Ctrl-C",
    )
    status.set_defaults(command=show_status)


def show_status(args: argparse.Namespace) -> int:
    if args.check:
        return _check(args)
    config = status_config(args)
    ledger_path = config.ledger
    if config.token:
        logs.add_secret(config.token)  # output is redacted even of text from before redaction
    settle = config.settle_seconds
    if args.watch and not args.job:
        return _watch(ledger_path, settle, config.hours, all_jobs=args.all)
    if not ledger_path.exists() and not args.job:
        view = empty_snapshot(ledger_path)
    else:
        with reading(ledger_path) as ledger:
            if args.job:
                job = ledger.jobs.find(args.job)
                if job is None:
                    raise IngestdError(
                        f"no job matches {args.job!r}", "give a job id, a path or a hashed id"
                    )
                one = history(ledger, job, settle, config.hours)
                if args.json:
                    say_json(one, indent=2)
                else:
                    say(render_history(one))
                return EXIT_OK
            view = snapshot(ledger, all_jobs=args.all, settle_seconds=settle, hours=config.hours)
    if args.json:
        say_json(view)
    else:
        say(render(view))
    return EXIT_OK


def _watch(ledger_path: Path, settle: float | None, hours: Any, *, all_jobs: bool) -> int:
    from ingestd.telling.live import watch  # rich is imported only when it is needed

    def read_view() -> dict[str, Any]:
        if not ledger_path.exists():
            return empty_snapshot(ledger_path)
        with reading(ledger_path) as ledger:
            view = snapshot(ledger, all_jobs=all_jobs, settle_seconds=settle, hours=hours)
        return dict(json.loads(as_json(view)))  # redacted like every other output

    return watch(read_view)


def _check(args: argparse.Namespace) -> int:
    """Monitoring mode (Nagios plugin conventions): one line, and the exit code says it."""
    try:
        ledger_path = status_config(args).ledger
        if ledger_path.exists():
            with reading(ledger_path) as ledger:
                view = summary(ledger)
        else:
            view = empty_snapshot(ledger_path)
    except Exception as exc:
        say(f"INGESTD UNKNOWN - {display(str(exc))}")
        return UNKNOWN
    code, line = health(view)
    say(line)
    return code
