"""`ingestd check`: a line per finding (daemon.check), `ok`, `warn` or `FAIL` with how to fix
it; the exit status is non-zero when anything failed."""

from __future__ import annotations

import argparse
from typing import Any

from ingestd.cli.common import EXIT_FAILURE, EXIT_OK, say, settings_of
from ingestd.core.errors import IngestdError

MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def add_parser(commands: Any) -> None:
    check = commands.add_parser("check", help="check the config, folders, ledger and token")
    check.set_defaults(command=check_setup)


def check_setup(args: argparse.Namespace) -> int:
    from ingestd.daemon.check import Finding, diagnose

    def show(finding: Finding) -> None:
        fix = f"\n      fix: {finding.fix}" if finding.fix and finding.level != "ok" else ""
        say(f"{MARKS[finding.level]}  {finding.what}{fix}")

    try:
        settings, path = settings_of(args)
    except IngestdError as exc:
        show(Finding("fail", f"config: {exc.reason}", exc.hint))
        return EXIT_FAILURE
    failed = False
    for finding in diagnose(settings, path):
        show(finding)
        failed |= finding.level == "fail"
    return EXIT_FAILURE if failed else EXIT_OK
