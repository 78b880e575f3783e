"""The command line: parses arguments, calls the library, prints, returns exit codes.

    ingestd [--config PATH] run [--sandbox] [--log-format auto|json|console]
    ingestd [--config PATH] status [--json] [--all] [JOB]
    ingestd [--config PATH] retry (JOB... | --failed)
    ingestd [--config PATH] check
    ingestd sandbox [--port N] [fault options]

Errors the user can fix end as one line on stderr ("ingestd: ..."), never a traceback.
The read-only commands import only what they need (no pydantic, httpx or structlog): they
start in a few tens of milliseconds; each command imports the rest when it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingestd import __version__
from ingestd.configfile import StatusConfig, Unusual, find_config, read_for_status
from ingestd.errors import IngestdError, LedgerError, WistiaError
from ingestd.files import display
from ingestd.jobs import JobState
from ingestd.ledger import Ledger
from ingestd.redact import add_secret, redact
from ingestd.status import (
    UNKNOWN,
    as_json,
    health,
    history,
    render,
    render_history,
    snapshot,
    summary,
)

if TYPE_CHECKING:
    from ingestd.config import Settings

SANDBOX_WATCH_DIR = Path("inbox")
SANDBOX_LEDGER = Path(".ingestd/ledger.db")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.command(args))
    except IngestdError as exc:
        _complain(str(exc))
        return EXIT_USAGE if args.command is not cmd_sandbox else EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, never a traceback
        _complain(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}")
        return EXIT_FAILURE


def _say(text: str) -> None:
    """Everything a command prints goes out redacted (the token, URL credentials), and with
    control characters escaped, whatever field of a ledger they came from."""
    print("\n".join(display(line) for line in redact(text).split("\n")))


def _say_json(value: dict[str, Any], *, indent: int | None = None) -> None:
    """JSON out, redacted (status.as_json: the status page answers the very same text)."""
    print(as_json(value, indent=indent))


def _complain(text: str) -> None:
    print(f"ingestd: {redact(display(text))}", file=sys.stderr)


# --- argument parsing ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingestd", description="A watch folder that uploads finished videos to Wistia."
    )
    parser.add_argument("--version", action="version", version=f"ingestd {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $INGESTD_CONFIG, ./ingestd.toml, /etc/ingestd/config.toml)",
    )
    commands = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")

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
    run.set_defaults(command=cmd_run)

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
    status.set_defaults(command=cmd_status)

    completion = commands.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=["bash", "zsh", "fish"])
    completion.set_defaults(command=cmd_completion)

    retry = commands.add_parser("retry", help="move failed jobs back to the queue")
    retry.add_argument("jobs", nargs="*", metavar="JOB", help="job ids, paths or hashed ids")
    retry.add_argument("--failed", action="store_true", help="every failed job")
    retry.set_defaults(command=cmd_retry)

    check = commands.add_parser("check", help="check the config, folders, ledger and token")
    check.set_defaults(command=cmd_check)

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
    sandbox.set_defaults(command=cmd_sandbox)
    return parser


# --- settings --------------------------------------------------------------------------------


NO_CONFIG = IngestdError(
    "no config file found (looked for $INGESTD_CONFIG, ./ingestd.toml, "
    "/etc/ingestd/config.toml) and INGESTD_WATCH_DIR is not set",
    "pass --config PATH, or try `ingestd run --sandbox`",
)


def _settings(args: argparse.Namespace) -> tuple[Settings, Path | None]:
    """The settings from the config file, or from the environment alone when there is none."""
    from ingestd.config import load_settings

    path = find_config(args.config)
    if path is None and not os.environ.get("INGESTD_WATCH_DIR"):
        raise NO_CONFIG
    return load_settings(path), path


def _status_config(args: argparse.Namespace) -> StatusConfig:
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
        from ingestd.config import load_settings, resolve_token

        settings = load_settings(path)
        try:
            token: str | None = resolve_token(settings)
        except IngestdError:
            token = None
        ingest = settings.ingest
        return StatusConfig(settings.ledger, ingest.settle_seconds, ingest.hours, token)


# --- commands --------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from ingestd.config import load_settings, resolve_token
    from ingestd.daemon import Daemon

    if args.sandbox:
        return _run_with_sandbox(args)
    settings, path = _settings(args)
    _configure_logs(args, settings)
    token = resolve_token(settings)

    def reload() -> tuple[Settings, str]:
        fresh = load_settings(path)
        return fresh, resolve_token(fresh)

    return Daemon(settings, token, reload=reload).run()


def _run_with_sandbox(args: argparse.Namespace) -> int:
    from ingestd import logs
    from ingestd.config import load_settings
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
    _configure_logs(args, settings)
    settings.watch_dir.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(processing_seconds=args.processing_seconds).start()
    settings.wistia.upload_url = sandbox.upload_url
    settings.wistia.api_url = sandbox.api_url
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


def _configure_logs(args: argparse.Namespace, settings: Settings) -> None:
    from ingestd import logs

    settings.log.level = args.log_level or settings.log.level
    settings.log.format = args.log_format or settings.log.format
    logs.configure(
        level=settings.log.level,
        fmt=settings.log.format,
        under_journald=bool(os.environ.get("JOURNAL_STREAM")),
    )


def cmd_status(args: argparse.Namespace) -> int:
    if args.check:
        return _status_check(args)
    config = _status_config(args)
    ledger_path = config.ledger
    if config.token:
        add_secret(config.token)  # output is redacted even of text from before redaction
    settle = config.settle_seconds
    if args.watch and not args.job:
        return _watch(ledger_path, settle, config.hours, all_jobs=args.all)
    if not ledger_path.exists() and not args.job:
        view = _empty_view(ledger_path)
    else:
        with _reading(ledger_path) as ledger:
            if args.job:
                job = ledger.find(args.job)
                if job is None:
                    raise IngestdError(
                        f"no job matches {args.job!r}", "give a job id, a path or a hashed id"
                    )
                one = history(ledger, job, settle, config.hours)
                if args.json:
                    _say_json(one, indent=2)
                else:
                    _say(render_history(one))
                return EXIT_OK
            view = snapshot(ledger, all_jobs=args.all, settle_seconds=settle, hours=config.hours)
    if args.json:
        _say_json(view)
    else:
        _say(render(view))
    return EXIT_OK


def _watch(ledger_path: Path, settle: float | None, hours: Any, *, all_jobs: bool) -> int:
    from ingestd.live import watch  # rich is imported only when it is needed

    def read_view() -> dict[str, Any]:
        if not ledger_path.exists():
            return _empty_view(ledger_path)
        with _reading(ledger_path) as ledger:
            view = snapshot(ledger, all_jobs=all_jobs, settle_seconds=settle, hours=hours)
        return json.loads(as_json(view))  # redacted like every other output

    return watch(read_view)


def cmd_completion(args: argparse.Namespace) -> int:
    """A completion script generated from this very parser (shtab)."""
    import shtab

    print(shtab.complete(_parser(), shell=args.shell))
    return EXIT_OK


@contextmanager
def _reading(path: Path) -> Iterator[Ledger]:
    """The ledger, read-only: nothing is created or changed; trouble is one LedgerError."""
    ledger = Ledger(path, read_only=True)
    try:
        yield ledger
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"cannot read the ledger {path}: {exc}") from None
    finally:
        ledger.close()


def _status_check(args: argparse.Namespace) -> int:
    try:
        ledger_path = _status_config(args).ledger
        if ledger_path.exists():
            with _reading(ledger_path) as ledger:
                view = summary(ledger)
        else:
            view = _empty_view(ledger_path)
    except Exception as exc:
        _say(f"INGESTD UNKNOWN - {display(str(exc))}")
        return UNKNOWN
    code, line = health(view)
    _say(line)
    return code


def _empty_view(ledger_path: Path) -> dict[str, Any]:
    return {
        "counts": {state.value: 0 for state in JobState},
        "hold": None,
        "daemon": {"running": False, "pid": None, "since": None},
        "ledger": str(ledger_path),
        "notifications": {"waiting": 0, "last_error": None},
        "jobs": [],
    }


def cmd_retry(args: argparse.Namespace) -> int:
    if not args.jobs and not args.failed:
        raise IngestdError("say which jobs: `ingestd retry JOB...` or `ingestd retry --failed`")
    ledger_path = _status_config(args).ledger
    if not ledger_path.is_file():
        raise LedgerError(f"no ledger at {ledger_path}: nothing to retry")
    with _reading(ledger_path):
        pass  # a corrupt or foreign ledger: one line, and nothing changed
    ledger = Ledger(ledger_path)
    problems = 0
    try:
        if args.failed:
            targets = ledger.jobs_in(JobState.FAILED, limit=1_000_000)
        else:
            targets = []
            for ref in args.jobs:
                job = ledger.find(ref)
                if job is None:
                    _complain(f"no job matches {ref!r}")
                    problems += 1
                elif job.state != JobState.FAILED:
                    _complain(f"job {job.id} is {job.state}, not failed")
                    problems += 1
                else:
                    targets.append(job)
        for job in targets:
            moved = ledger.retry(job)
            _say(f"job {moved.id}: {moved.state} ({display(moved.path)})")
        if args.failed and not targets:
            _say("no failed jobs")
    finally:
        ledger.close()
    return EXIT_FAILURE if problems else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from ingestd.config import resolve_token

    results: list[tuple[bool, str, str | None]] = []

    def line(ok: bool, what: str, fix: str | None = None) -> None:
        results.append((ok, what, fix))
        mark = "ok  " if ok else "FAIL"
        _say(f"{mark}  {what}" + (f"\n      fix: {fix}" if fix and not ok else ""))

    try:
        settings, path = _settings(args)
    except IngestdError as exc:
        line(False, f"config: {exc.reason}", exc.hint)
        return EXIT_FAILURE
    line(True, f"config: {path or 'the environment (no config file)'} is valid")
    with suppress(IngestdError):  # the token check below says what is wrong
        add_secret(resolve_token(settings))
    if path is not None and settings.wistia.api_token.get_secret_value():
        _warn_if_others_read(path, "config", "holds the API token")
    if settings.wistia.api_token_file is not None:
        _warn_if_others_read(settings.wistia.api_token_file, "token file", "holds the API token")
    _check_folders(settings, line)
    _check_ledger(settings, line)
    _check_token(settings, line)
    return EXIT_OK if all(ok for ok, _, _ in results) else EXIT_FAILURE


def _warn_if_others_read(path: Path, what: str, why: str) -> None:
    """A warning (not a failure) when a file with the token is readable by others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # the token check reports a file it cannot read
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        _say(
            f"warn  {what}: {path} {why} and is readable by others"
            f"\n      fix: chmod 600 {path}, or give the token as a systemd credential"
        )


def _check_folders(settings: Settings, line: Callable[..., None]) -> None:
    watch = settings.watch_dir
    needs_write = settings.ingest.after_upload != "keep"
    if not watch.is_dir():
        line(False, f"watch folder: {watch} does not exist", f"mkdir -p {watch}")
    elif not os.access(watch, os.R_OK | os.X_OK):
        line(False, f"watch folder: {watch} is not readable", "give the ingestd user read access")
    elif needs_write and not os.access(watch, os.W_OK):
        line(
            False,
            f"watch folder: {watch} is not writable (after_upload = "
            f"{settings.ingest.after_upload})",
            "give the ingestd user write access",
        )
    else:
        line(True, f"watch folder: {watch} is readable" + (" and writable" if needs_write else ""))
        from ingestd.watcher import choose_observer

        kind, why = choose_observer(settings.ingest.observer, watch)
        line(True, f"watching: {kind} ({why})")
    if settings.ingest.after_upload == "move":
        archive = Path(settings.ingest.archive_dir)
        if archive.is_dir() and os.access(archive, os.W_OK | os.X_OK):
            line(True, f"archive folder: {archive} is writable")
        else:
            line(
                False,
                f"archive folder: {archive} is missing or not writable",
                f"mkdir -p {archive} and give the ingestd user write access",
            )


def _check_ledger(settings: Settings, line: Callable[..., None]) -> None:
    """Read-only: a check creates no ledger and upgrades none."""
    path = settings.ledger
    if not os.path.lexists(path):
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
            line(True, f"ledger: {path} does not exist yet; the daemon creates it")
        else:
            line(
                False,
                f"ledger: {path} cannot be created ({folder} is not a writable folder)",
                "set ledger to a path in a folder the ingestd user may write to",
            )
        return
    try:
        with _reading(path) as ledger:
            counts = ledger.counts()
    except LedgerError as exc:
        line(False, f"ledger: {exc.reason}", exc.hint or "check the ledger path")
        return
    line(True, f"ledger: {path} opens ({sum(counts.values())} jobs)")


def _check_token(settings: Settings, line: Callable[..., None]) -> None:
    import threading

    from ingestd.config import resolve_token
    from ingestd.wistia import RateLimiter, WistiaClient

    try:
        token = resolve_token(settings)
    except IngestdError as exc:
        line(False, f"token: {exc.reason}", exc.hint)
        return
    stop = threading.Event()
    client = WistiaClient(settings.wistia, token, RateLimiter(10), stop, api_retries=2)
    try:
        account = client.account()
    except WistiaError as exc:
        line(False, f"token: {exc.reason}", exc.hint or "check the network and the api_url")
        return
    finally:
        client.close()
    line(True, f"token: accepted by Wistia (account: {account.get('name', '?')})")


def cmd_sandbox(args: argparse.Namespace) -> int:
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
        _complain(f"sandbox: {exc}")
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
    print(f'  swap (the newer API) at "{sandbox.modern_url}"', flush=True)
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
