"""The command line: parses arguments, calls the library, prints, returns exit codes.

    ingestd [--config PATH] run [--sandbox] [--log-format auto|json|console]
    ingestd [--config PATH] status [--json] [--all] [--watch] [--check] [JOB]
    ingestd [--config PATH] retry (JOB... | --failed)
    ingestd [--config PATH] check
    ingestd completion bash|zsh|fish
    ingestd sandbox [--port N] [fault options]

One module per command, each adding its own subparser. Errors the user can fix end as one line
on stderr ("ingestd: ..."), never a traceback. The read-only commands import only what they
need (no pydantic, httpx or structlog): they start in a few tens of milliseconds; each command
imports the rest when it runs.
"""

from __future__ import annotations

import argparse

from ingestd import __version__
from ingestd.cli import check, completion, retry, run, sandbox, status
from ingestd.cli.common import EXIT_FAILURE, EXIT_USAGE, complain
from ingestd.core.errors import IngestdError


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(
        prog="ingestd", description="A watch folder that uploads finished videos to Wistia."
    )
    made.add_argument("--version", action="version", version=f"ingestd {__version__}")
    made.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $INGESTD_CONFIG, ./ingestd.toml, /etc/ingestd/config.toml)",
    )
    commands = made.add_subparsers(dest="name", required=True, metavar="COMMAND")
    for command in (run, status, completion, retry, check, sandbox):
        command.add_parser(commands)
    return made


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.command(args))
    except IngestdError as exc:
        complain(str(exc))
        return EXIT_USAGE if args.command is not sandbox.run_sandbox else EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, never a traceback
        complain(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}")
        return EXIT_FAILURE
