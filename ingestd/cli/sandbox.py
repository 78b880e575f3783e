"""`ingestd sandbox [--port N] [fault options]`: the built-in Wistia sandbox alone, for trying
ingestd against it, or curl."""

from __future__ import annotations

import argparse
from typing import Any

from ingestd.cli.common import EXIT_OK


def add_parser(commands: Any) -> None:
    sandbox = commands.add_parser("sandbox", help="run the built-in Wistia sandbox alone")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument(
        "--token", default=None, help="the only token to accept (default: any Bearer token)"
    )
    sandbox.add_argument("--processing-seconds", type=float, default=5.0)
    faults = sandbox.add_argument_group("fault options")
    faults.add_argument(
        "--rate-limit", type=int, metavar="N", help="answer 429 beyond N requests per minute"
    )
    faults.add_argument(
        "--rate-limit-status",
        type=int,
        choices=[429, 503],
        default=429,
        help="the status for the rate limit (503 is Wistia's older answer)",
    )
    faults.add_argument(
        "--retry-after-date",
        action="store_true",
        help="send Retry-After as an HTTP date instead of seconds",
    )
    faults.add_argument(
        "--video-limit",
        type=int,
        metavar="N",
        help="refuse uploads once the account holds N medias",
    )
    faults.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="answer this fraction of requests with 500/502/503",
    )
    faults.add_argument(
        "--drop-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="drop this fraction of connections mid-request",
    )
    faults.add_argument(
        "--latency", type=float, default=0.0, metavar="S", help="seconds added before every answer"
    )
    faults.add_argument(
        "--slow-upload",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds an upload's answer is held back (trips client timeouts)",
    )
    faults.add_argument(
        "--slow",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds every other answer is held back",
    )
    faults.add_argument(
        "--rate-window",
        type=float,
        default=60.0,
        metavar="S",
        help="the window --rate-limit counts in (Wistia's is 60 s)",
    )
    faults.add_argument("--auth-fail", action="store_true", help="answer every request 401")
    faults.add_argument(
        "--list-lag",
        type=float,
        default=0.0,
        metavar="S",
        help="media lists show a media only S seconds after it was created",
    )
    faults.add_argument("--seed", type=int, default=None, help="seed for the random faults")
    sandbox.set_defaults(command=run_sandbox)


def run_sandbox(args: argparse.Namespace) -> int:
    from ingestd.sandbox import Faults, Sandbox

    faults = Faults(
        rate_limit_per_minute=args.rate_limit,
        rate_limit_status=args.rate_limit_status,
        retry_after_as_date=args.retry_after_date,
        video_limit=args.video_limit,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        latency=args.latency,
        slow_upload_seconds=args.slow_upload,
        slow_seconds=args.slow,
        rate_window_seconds=args.rate_window,
        auth_fail=args.auth_fail,
        list_lag_seconds=args.list_lag,
        seed=args.seed,
    )
    sandbox = Sandbox(
        host=args.host,
        port=args.port,
        token=args.token,
        any_token=args.token is None,
        processing_seconds=args.processing_seconds,
        faults=faults,
    )
    print(f"ingestd sandbox listening on {sandbox.url}", flush=True)
    print(f'  upload_url = "{sandbox.upload_url}"\n  api_url = "{sandbox.api_url}"', flush=True)
    if args.token is None:
        print("  token: any Bearer token is accepted (--token T to require one)", flush=True)
    else:
        print(f"  token: {sandbox.token}", flush=True)
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return EXIT_OK
