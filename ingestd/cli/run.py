"""`ingestd run [--sandbox]`: the daemon in the foreground (systemd runs this)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from ingestd import logs
from ingestd.cli.common import (
    SANDBOX_LEDGER,
    SANDBOX_WATCH_DIR,
    configure_logs,
    settings_of,
)
from ingestd.config.file import find_config

if TYPE_CHECKING:
    from ingestd.config.settings import Settings


def add_parser(commands: Any) -> None:
    run = commands.add_parser("run", help="run the daemon in the foreground")
    run.add_argument(
        "--sandbox",
        action="store_true",
        help="upload to the built-in Wistia sandbox on loopback (no account needed)",
    )
    run.add_argument(
        "--processing-seconds",
        type=float,
        default=5.0,
        help="with --sandbox: how long the sandbox takes to process a media",
    )
    run.add_argument("--log-format", choices=["auto", "json", "console"], default=None)
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None)
    run.set_defaults(command=run_daemon)


def run_daemon(args: argparse.Namespace) -> int:
    from ingestd.config.settings import load_settings, resolve_token
    from ingestd.daemon import Daemon

    if args.sandbox:
        return _with_sandbox(args)
    settings, path = settings_of(args)
    configure_logs(args, settings)
    token = resolve_token(settings)

    def reload_config() -> tuple[Settings, str]:
        fresh = load_settings(path)
        return fresh, resolve_token(fresh)

    return Daemon(settings, token, reload_config=reload_config).run()


def _with_sandbox(args: argparse.Namespace) -> int:
    """The daemon against the built-in sandbox, on loopback: no account, no config needed."""
    from ingestd.config.settings import load_settings
    from ingestd.daemon import Daemon
    from ingestd.sandbox import Sandbox

    path = find_config(args.config)
    defaults: dict[str, Any] = {}
    if path is None:  # the environment may still name them
        if not os.environ.get("INGESTD_WATCH_DIR"):
            defaults["watch_dir"] = SANDBOX_WATCH_DIR
        if not os.environ.get("INGESTD_LEDGER"):
            defaults["ledger"] = SANDBOX_LEDGER
    settings = load_settings(path, **defaults)
    configure_logs(args, settings)
    settings.watch_dir.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(processing_seconds=args.processing_seconds).start()
    settings.wistia.upload_url = sandbox.upload_url
    settings.wistia.api_url = sandbox.api_url
    settings.wistia.swap_url = sandbox.modern_url
    settings.wistia.project_id = ""
    # Polling a sandbox on this machine costs nothing: show results sooner.
    settings.ingest.poll_min_seconds = min(settings.ingest.poll_min_seconds, 1.0)
    logs.get().info(
        "sandbox started: nothing leaves this machine",
        url=sandbox.url,
        watch_dir=str(settings.watch_dir),
    )
    try:
        return Daemon(settings, sandbox.token).run()
    finally:
        sandbox.stop()
