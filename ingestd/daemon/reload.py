"""What a reload (SIGHUP, `systemctl reload ingestd`) changes, and what needs a restart: the
one place that says so.

    live      the token (config, token file or credential); [wistia] requests_per_minute,
              timeouts and project_id; all of [ingest] (workers, extensions and ignore
              patterns, timings, bandwidth and upload hours, the policies); [captions];
              [notify] (receivers, events, secret, timeouts, urls, digest_seconds,
              heartbeat_url, heartbeat_seconds: a new heartbeat URL is pinged at once)
    restart   watch_dir and ledger; [wistia] upload_url, api_url, swap_url, api_version;
              [metrics]; [web]; [log]

A config that does not load (or names an Apprise URL Apprise cannot send to) is rejected with
a log line and the running one is kept. One that loads becomes the running config with its
restart-only keys kept as they are (a warning names those that changed), and every component
is handed it: each takes `reload(fresh)` and reads its settings from there on (the stages,
the Wistia client, the outbox, the heartbeat).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ingestd.config.settings import Settings

# Keys (section, or section.key) that change only when the daemon restarts.
RESTART_ONLY = (
    "watch_dir",
    "ledger",
    "wistia.upload_url",
    "wistia.api_url",
    "wistia.swap_url",
    "wistia.api_version",
    "metrics",
    "web",
    "log",
)


class Reloadable(Protocol):
    def reload(self, fresh: Settings) -> None: ...


@dataclass(frozen=True)
class Reload:
    settings: Settings  # the config to run with from now on
    needs_restart: list[str]  # restart-only keys that the new file changes


def plan(current: Settings, fresh: Settings) -> Reload:
    """The running config after a reload to `fresh`: fresh, but for the restart-only keys."""
    kept: dict[str, Any] = {}
    partly: dict[str, dict[str, Any]] = {}  # section -> its restart-only keys
    changed = []
    for key in RESTART_ONLY:
        section, _, name = key.partition(".")
        old = getattr(current, section)
        new = getattr(fresh, section)
        if name:
            old, new = getattr(old, name), getattr(new, name)
            partly.setdefault(section, {})[name] = old
        else:
            kept[section] = old
        if old != new:
            changed.append(key)
    for section, values in partly.items():
        kept[section] = getattr(fresh, section).model_copy(update=values)
    return Reload(fresh.model_copy(update=kept), changed)
