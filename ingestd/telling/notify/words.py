"""What a person reads (messages for people, `notify.urls`): a title and a plain-text body
for one event, or for a digest of several.

    launch.mp4 is ready in Wistia: https://acme.wistia.com/medias/r9nlbgy6fc
    empty.mp4 failed: empty file (0 bytes). Fix the file and drop it again.
    clip.mp4 is held: clip.json: not valid JSON (fix it). It goes on by itself once that is
    fixed.

A digest says how many of each, then every name: the ready ones with their links, the failed
and the held ones apart, each with its reason. Names are the files' names as they were
dropped, on one line (control characters escaped: a name must not forge lines of its own).
Each service escapes its own markup (Apprise gets the text as text).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ingestd.core.names import display
from ingestd.ledger import Notification

FIX_THE_FILE = "Fix the file and drop it again."
GOES_ON = "It goes on by itself once that is fixed."


@dataclass(frozen=True)
class Told:
    """One event as a person hears of it."""

    event: str  # done | failed | held
    name: str  # the file's name, shown on one line
    link: str | None  # the media's page in Wistia (done)
    why: str | None  # the error (failed) or what to fix (held)


def told(notification: Notification, media_url: Callable[[str], str]) -> Told:
    """The event of `notification`, with its media's link (asked of `media_url`, which may
    raise WistiaError while the account's url is not known yet)."""
    job = json.loads(notification.job)
    name = display(posixpath.basename(job.get("path") or "")) or f"job {notification.job_id}"
    link = None
    if notification.event == "done" and job.get("hashed_id"):
        link = media_url(job["hashed_id"])
    why = job.get("error") if notification.event == "failed" else job.get("reason")
    return Told(notification.event, name, link, display(why) if why else None)


def message(events: Sequence[Told]) -> tuple[str, str]:
    """The title and body that tell `events`: one event in a sentence, several as a digest."""
    if len(events) == 1:
        return _one(events[0])
    done = [e for e in events if e.event == "done"]
    failed = [e for e in events if e.event == "failed"]
    held = [e for e in events if e.event == "held"]
    counts = []
    sections = []
    if done:
        counts.append(f"{_videos(len(done))} ready")
        lines = [f"- {e.name}: {e.link}" if e.link else f"- {e.name}" for e in done]
        sections.append("\n".join([f"{_videos(len(done))} ready:", *lines]))
    if failed:
        counts.append(f"{len(failed)} failed")
        lines = [_listed(e) for e in failed]
        sections.append("\n".join([f"{len(failed)} failed; fix each and drop it again:", *lines]))
    if held:
        counts.append(f"{len(held)} held")
        lines = [_listed(e) for e in held]
        waiting = f"{len(held)} held; each goes on by itself once its problem is fixed:"
        sections.append("\n".join([waiting, *lines]))
    return ", ".join(counts), "\n\n".join(sections)


def _one(event: Told) -> tuple[str, str]:
    if event.event == "done":
        title = f"{event.name} is ready in Wistia"
        return title, f"{title}: {event.link}" if event.link else f"{title}."
    if event.event == "failed":
        title = f"{event.name} failed"
        return title, f"{title}{_because(event.why)} {FIX_THE_FILE}"
    title = f"{event.name} is held"
    return title, f"{title}{_because(event.why)} {GOES_ON}"


def _because(why: str | None) -> str:
    return f": {why.rstrip('.')}." if why else "."


def _listed(event: Told) -> str:
    return f"- {event.name}: {event.why}" if event.why else f"- {event.name}"


def _videos(n: int) -> str:
    return "1 video" if n == 1 else f"{n} videos"
