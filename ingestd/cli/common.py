"""What every command shares: printing (redacted, control characters escaped), complaining in
one line, exit codes, and finding the config and the ledger."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingestd import logs
from ingestd.config.file import StatusConfig, Unusual, find_config, read_for_status
from ingestd.core.errors import IngestdError, LedgerError
from ingestd.core.names import display
from ingestd.ledger import Ledger
from ingestd.telling.status import as_json

if TYPE_CHECKING:
    from ingestd.config.settings import Settings

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

# `run --sandbox` without a config file: the folder and ledger it uses (status finds them).
SANDBOX_WATCH_DIR = Path("inbox")
SANDBOX_LEDGER = Path(".ingestd/ledger.db")

NO_CONFIG = IngestdError(
    "no config file found (looked for $INGESTD_CONFIG, ./ingestd.toml, "
    "/etc/ingestd/config.toml) and INGESTD_WATCH_DIR is not set",
    "pass --config PATH, or try `ingestd run --sandbox`",
)


def say(text: str) -> None:
    """Everything a command prints goes out redacted (the token, URL credentials), and with
    control characters escaped, whatever field of a ledger they came from."""
    print("\n".join(display(line) for line in logs.redact(text).split("\n")))


def say_json(value: dict[str, Any], *, indent: int | None = None) -> None:
    """JSON out, redacted (status.as_json: the status page answers the very same text)."""
    print(as_json(value, indent=indent))


def complain(text: str) -> None:
    """One line on stderr; under journald, at error priority (`journalctl -p err` shows why
    a service failed to start)."""
    prefix = f"<{logs.PRIORITIES['error']}>" if logs.under_journald() else ""
    print(f"{prefix}ingestd: {logs.redact(display(text))}", file=sys.stderr)


def settings_of(args: argparse.Namespace) -> tuple[Settings, Path | None]:
    """The settings from the config file, or from the environment alone when there is none."""
    from ingestd.config.settings import load_settings

    path = find_config(args.config)
    if path is None and not os.environ.get("INGESTD_WATCH_DIR"):
        raise NO_CONFIG
    return load_settings(path), path


def status_config(args: argparse.Namespace) -> StatusConfig:
    """What `status` and `retry` need: the config's ledger, or the sandbox run's default.
    Read without loading every setting (quick), unless something needs full validation."""
    path = find_config(args.config)
    if path is None and not os.environ.get("INGESTD_WATCH_DIR"):
        if SANDBOX_LEDGER.exists():
            return StatusConfig(SANDBOX_LEDGER.absolute(), 5.0, None, None)
        raise NO_CONFIG
    try:
        return read_for_status(path)
    except Unusual:
        from ingestd.config.settings import load_settings, resolve_token

        settings = load_settings(path)
        try:
            token: str | None = resolve_token(settings)
        except IngestdError:
            token = None
        ingest = settings.ingest
        return StatusConfig(settings.ledger, ingest.settle_seconds, ingest.hours, token)


@contextmanager
def reading(path: Path) -> Iterator[Ledger]:
    """The ledger, read-only: nothing is created or changed; trouble is one LedgerError."""
    ledger = Ledger(path, read_only=True)
    try:
        yield ledger
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"cannot read the ledger {path}: {exc}") from None
    finally:
        ledger.close()


def configure_logs(args: argparse.Namespace, settings: Settings) -> None:
    settings.log.level = args.log_level or settings.log.level
    settings.log.format = args.log_format or settings.log.format
    logs.configure(
        level=settings.log.level,
        fmt=settings.log.format,
        under_journald=logs.under_journald(),
    )
