"""`ingestd check`'s diagnostics: will the daemon run as configured? Each finding says what
was looked at, whether it is fine, and how to fix it when not. Read-only: a check creates no
ledger and upgrades none, and sends Wistia one cheap request (`GET /v1/account.json`). Each
Apprise URL of `notify.urls` is read by Apprise (nothing is sent) and named by its place and
its receiver's name, never shown: URLs hold secrets."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from ingestd import logs
from ingestd.config.settings import Settings, resolve_token
from ingestd.core.errors import IngestdError, LedgerError, WistiaError
from ingestd.ledger import Ledger

if TYPE_CHECKING:
    from ingestd.wistia.models import Account


# `check` warns when the account holds this share of its media limit.
ROOM_WARNING_SHARE = 0.9


@dataclass(frozen=True)
class Finding:
    level: Literal["ok", "warn", "fail"]
    what: str
    fix: str | None = None


def diagnose(settings: Settings, config_path: Path | None) -> Iterator[Finding]:
    """Every finding, in order (as each is made: the token's takes a request)."""
    yield Finding("ok", f"config: {config_path or 'the environment (no config file)'} is valid")
    with suppress(IngestdError):  # the token's own finding says what is wrong
        logs.add_secret(resolve_token(settings))
    from ingestd.telling.notify.heartbeat import secrets as heartbeat_secrets

    for secret in heartbeat_secrets(settings.notify.heartbeat_url.get_secret_value()):
        logs.add_secret(secret)
    if config_path is not None and settings.wistia.api_token.get_secret_value():
        yield from _readable_by_others(config_path, "config")
    if settings.wistia.api_token_file is not None:
        yield from _readable_by_others(settings.wistia.api_token_file, "token file")
    yield from _folders(settings)
    yield from _ledger(settings)
    yield from _messages(settings)
    yield from _token(settings)


def _readable_by_others(path: Path, what: str) -> Iterator[Finding]:
    """A warning (not a failure) when a file with the token is readable by others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # the token's finding reports a file it cannot read
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        yield Finding(
            "warn",
            f"{what}: {path} holds the API token and is readable by others",
            f"chmod 600 {path}, or give the token as a systemd credential",
        )


def _folders(settings: Settings) -> Iterator[Finding]:
    watch = settings.watch_dir
    needs_write = settings.ingest.after_upload != "keep"
    if not watch.is_dir():
        yield Finding("fail", f"watch folder: {watch} does not exist", f"mkdir -p {watch}")
    elif not os.access(watch, os.R_OK | os.X_OK):
        yield Finding(
            "fail", f"watch folder: {watch} is not readable", "give the ingestd user read access"
        )
    elif needs_write and not os.access(watch, os.W_OK):
        yield Finding(
            "fail",
            f"watch folder: {watch} is not writable (after_upload = "
            f"{settings.ingest.after_upload})",
            "give the ingestd user write access",
        )
    else:
        writable = " and writable" if needs_write else ""
        yield Finding("ok", f"watch folder: {watch} is readable{writable}")
        from ingestd.pipeline.watch.observer import choose_observer

        kind, why = choose_observer(settings.ingest.observer, watch)
        yield Finding("ok", f"watching: {kind} ({why})")
    if settings.ingest.after_upload == "move":
        archive = Path(settings.ingest.archive_dir)
        if archive.is_dir() and os.access(archive, os.W_OK | os.X_OK):
            yield Finding("ok", f"archive folder: {archive} is writable")
        else:
            yield Finding(
                "fail",
                f"archive folder: {archive} is missing or not writable",
                f"mkdir -p {archive} and give the ingestd user write access",
            )


def _ledger(settings: Settings) -> Iterator[Finding]:
    path = settings.ledger
    if not os.path.lexists(path):
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
            yield Finding("ok", f"ledger: {path} does not exist yet; the daemon creates it")
        else:
            yield Finding(
                "fail",
                f"ledger: {path} cannot be created ({folder} is not a writable folder)",
                "set ledger to a path in a folder the ingestd user may write to",
            )
        return
    try:
        ledger = Ledger(path, read_only=True)
        try:
            counts = ledger.jobs.counts()
        finally:
            ledger.close()
    except LedgerError as exc:
        yield Finding("fail", f"ledger: {exc.reason}", exc.hint or "check the ledger path")
        return
    yield Finding("ok", f"ledger: {path} opens ({sum(counts.values())} jobs)")


def _messages(settings: Settings) -> Iterator[Finding]:
    """A finding per Apprise URL (Apprise imported only when there are any), and the
    heartbeat's: where it goes, by scheme and host only (its path may be its key)."""
    notify = settings.notify
    if notify.urls:
        from ingestd.telling.notify import people

        urls = [url.get_secret_value() for url in notify.urls]
        for url in urls:
            for secret in people.secrets(url):
                logs.add_secret(secret)
        receivers, unreadable = people.read(urls)
        for receiver in receivers:
            yield Finding(
                "ok",
                f"notify.urls: URL {receiver.number} of {len(urls)} is {receiver.label} "
                f"({receiver.service}); Apprise can send to it",
            )
        for bad in unreadable:
            yield Finding(
                "fail",
                people.describe(bad, len(urls)),
                "see https://appriseit.com/services/ for the URL of each service",
            )
    heartbeat = notify.heartbeat_url.get_secret_value()
    if heartbeat:
        parts = urlsplit(heartbeat)
        yield Finding(
            "ok",
            f"heartbeat: a GET to {parts.scheme}://{parts.hostname}/... every "
            f"{notify.heartbeat_seconds:g} s while the daemon is well",
        )


def _token(settings: Settings) -> Iterator[Finding]:
    from ingestd.wistia.client import WistiaClient
    from ingestd.wistia.limiter import RateLimiter

    try:
        token = resolve_token(settings)
    except IngestdError as exc:
        yield Finding("fail", f"token: {exc.reason}", exc.hint)
        return
    client = WistiaClient(settings.wistia, token, RateLimiter(10), threading.Event(), api_retries=2)
    try:
        account = client.account_media()
    except WistiaError as exc:
        yield Finding(
            "fail", f"token: {exc.reason}", exc.hint or "check the network and the api_url"
        )
        return
    finally:
        client.close()
    yield Finding("ok", f"token: accepted by Wistia (account: {account.name or '?'})")
    yield from _room(account)


def _room(account: Account) -> Iterator[Finding]:
    """The account's media count against its limit, where Wistia gives one."""
    if account.limit is None or account.media_count is None:
        yield Finding("ok", "account: no media limit given by Wistia")
        return
    shown = f"account: media {account.media_count} of {account.limit}"
    if account.media_count >= account.limit:
        yield Finding(
            "warn",
            f"{shown}: full, uploads wait under the video-limit hold",
            "delete or archive media in Wistia, or upgrade the plan",
        )
    elif account.media_count >= ROOM_WARNING_SHARE * account.limit:
        yield Finding(
            "warn",
            f"{shown}: over {ROOM_WARNING_SHARE:.0%} full",
            "make room in Wistia (delete or archive media) or upgrade the plan before uploads stop",
        )
    else:
        yield Finding("ok", shown)
