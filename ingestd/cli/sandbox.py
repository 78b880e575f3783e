"""`ingestd sandbox [--port N] [fault options]`: the built-in Wistia sandbox alone, for trying
ingestd against it, or curl."""

from __future__ import annotations

import argparse
from typing import Any

from ingestd.cli.common import EXIT_OK, EXIT_USAGE, complain


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
    faults.add_argument(
        "--storage-limit",
        type=int,
        metavar="BYTES",
        help="refuse uploads that would take the account's stored bytes beyond BYTES",
    )
    faults.add_argument(
        "--forbidden",
        type=lambda text: tuple(n.strip() for n in text.split(",") if n.strip()),
        default=(),
        metavar="NAMES",
        help="answer these endpoints 403, a plan without the feature (comma-separated: "
        "captions, customizations, tags, still, swap, upload, media_update, ...)",
    )
    faults.add_argument(
        "--scope-denied",
        type=lambda text: tuple(n.strip() for n in text.split(",") if n.strip()),
        default=(),
        metavar="NAMES",
        help="answer these endpoints 401 unauthorized_scope (comma-separated)",
    )
    faults.add_argument(
        "--error-body",
        choices=["error", "code_detail", "nested"],
        default="error",
        help='JSON errors as {"error": ...}, {"code", "detail"}, or {"error": {"code", "detail"}}',
    )
    faults.add_argument(
        "--rate-limit-body",
        choices=["text", "json"],
        default="text",
        help="the 429's body: plain text (Wistia's) or JSON",
    )
    faults.add_argument(
        "--project-id-key",
        choices=["hashedId", "hashed_id"],
        default="hashedId",
        help="the key naming a project's hashed id in project objects",
    )
    faults.add_argument(
        "--media-project-id-key",
        choices=["hashed_id", "hashedId"],
        default="hashed_id",
        help="the key naming the project's hashed id inside a media",
    )
    faults.add_argument(
        "--no-video-limit-as",
        choices=["null", "absent", "zero"],
        default="null",
        help="account.json's videoLimit when there is no --video-limit",
    )
    faults.add_argument(
        "--archived-count",
        action="store_true",
        help="archived medias count toward the video limit and mediaCount",
    )
    faults.add_argument(
        "--upload-unknown-project",
        choices=["error", "not_found", "default_project"],
        default="error",
        help="an upload to a project that does not exist: 400, 404, or the day's Uploads_ project",
    )
    faults.add_argument(
        "--customizations-merge",
        choices=["deep", "shallow"],
        default="deep",
        help="how PUT customizations merges nested objects",
    )
    faults.add_argument(
        "--swap-seconds",
        type=float,
        default=None,
        metavar="S",
        help="how long a swap's background job takes (default: --processing-seconds)",
    )
    faults.add_argument(
        "--swap-fails", action="store_true", help="swaps' background jobs end failed"
    )
    faults.add_argument(
        "--swap-removes-replacement",
        action="store_true",
        help="a finished swap removes the replacement media",
    )
    faults.add_argument(
        "--swap-exchanges-files",
        action="store_true",
        help="a finished swap gives the replacement the original's old file",
    )
    faults.add_argument(
        "--no-swap-on-v1",
        action="store_true",
        help="serve swap only under /modern/, not under /v1/",
    )
    faults.add_argument("--seed", type=int, default=None, help="seed for the random faults")
    sandbox.set_defaults(command=run_sandbox)


def run_sandbox(args: argparse.Namespace) -> int:
    from ingestd.sandbox import Faults, Sandbox

    try:
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
            storage_limit=args.storage_limit,
            forbidden=args.forbidden,
            scope_denied=args.scope_denied,
            error_body=args.error_body,
            rate_limit_body=args.rate_limit_body,
            project_hashed_id_key=args.project_id_key,
            media_project_hashed_id_key=args.media_project_id_key,
            no_video_limit=args.no_video_limit_as,
            archived_count_toward_limit=args.archived_count,
            upload_unknown_project=args.upload_unknown_project,
            customizations_merge=args.customizations_merge,
            swap_seconds=args.swap_seconds,
            swap_job_fails=args.swap_fails,
            swap_keeps_replacement=not args.swap_removes_replacement,
            swap_exchanges_files=args.swap_exchanges_files,
            swap_on_v1=not args.no_swap_on_v1,
            seed=args.seed,
        )
    except ValueError as exc:  # a name --forbidden does not know, say
        complain(f"sandbox: {exc}")
        return EXIT_USAGE
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
    print(f'  swap_url = "{sandbox.modern_url}"', flush=True)
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
