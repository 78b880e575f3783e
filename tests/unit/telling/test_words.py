"""What a person reads: one event in a sentence (SPEC's own examples), a digest with every
name and link and the failures apart, names that cannot forge lines."""

from __future__ import annotations

import json

import pytest

from ingestd.core.errors import WistiaError
from ingestd.ledger import Notification
from ingestd.telling.notify.words import Told, message, told

ACCOUNT = "https://acme.wistia.com"


def _note(event: str, path: str, job_id: int = 1, **job: object) -> Notification:
    shown = {"id": job_id, "path": path, "state": event, "hashed_id": None, **job}
    return Notification(job_id, "uid", "slack#1", job_id, event, 0.0, json.dumps(shown), None, 0, 0)


def _link(hashed_id: str) -> str:
    return f"{ACCOUNT}/medias/{hashed_id}"


def test_one_event_reads_as_spec_says() -> None:
    ready = told(_note("done", "/srv/inbox/launch.mp4", hashed_id="r9nlbgy6fc"), _link)
    assert message([ready]) == (
        "launch.mp4 is ready in Wistia",
        f"launch.mp4 is ready in Wistia: {ACCOUNT}/medias/r9nlbgy6fc",
    )
    empty = told(_note("failed", "/srv/inbox/empty.mp4", error="empty file (0 bytes)"), _link)
    assert message([empty]) == (
        "empty.mp4 failed",
        "empty.mp4 failed: empty file (0 bytes). Fix the file and drop it again.",
    )
    reason = "clip.json: not valid JSON at line 1 (fix the sidecar; the job goes on)."
    held = told(_note("held", "/srv/inbox/show/clip.mp4", reason=reason), _link)
    title, body = message([held])
    assert title == "clip.mp4 is held"
    assert body == (
        "clip.mp4 is held: clip.json: not valid JSON at line 1 (fix the sidecar; the job goes "
        "on). It goes on by itself once that is fixed."
    )


def test_a_digest_names_every_video_with_its_link_and_lists_failures_apart() -> None:
    events = [
        told(_note("done", f"/srv/inbox/{name}", n, hashed_id=f"h{n}"), _link)
        for n, name in enumerate(["launch.mp4", "teaser.mp4", "b-roll.mov"], 1)
    ]
    events.append(told(_note("failed", "/srv/inbox/empty.mp4", 4, error="empty file"), _link))
    title, body = message(events)
    assert title == "3 videos ready, 1 failed"
    assert body == (
        "3 videos ready:\n"
        f"- launch.mp4: {ACCOUNT}/medias/h1\n"
        f"- teaser.mp4: {ACCOUNT}/medias/h2\n"
        f"- b-roll.mov: {ACCOUNT}/medias/h3\n"
        "\n"
        "1 failed; fix each and drop it again:\n"
        "- empty.mp4: empty file"
    )
    held = Told("held", "clip.mp4", None, "bad clip.srt")
    title, body = message([held, Told("held", "b.mp4", None, None)])
    assert title == "2 held"
    assert body.splitlines() == [
        "2 held; each goes on by itself once its problem is fixed:",
        "- clip.mp4: bad clip.srt",
        "- b.mp4",
    ]
    assert message([events[0], held])[0] == "1 video ready, 1 held"


def test_a_name_cannot_forge_lines_of_its_own() -> None:
    forged = "/srv/inbox/a.mp4\n- all good.mp4\x1b[2J"
    said = told(_note("failed", forged, error="empty\nfile"), _link)
    title, body = message([said])
    assert "\n" not in title + body and "\x1b" not in title + body
    assert title == "a.mp4\\n- all good.mp4\\x1b[2J failed"


def test_the_link_waits_for_the_account_url() -> None:
    def unknown(hashed_id: str) -> str:
        raise WistiaError("cannot reach Wistia")

    with pytest.raises(WistiaError):
        told(_note("done", "/srv/inbox/launch.mp4", hashed_id="h1"), unknown)
    # A failure has no link to wait for.
    assert told(_note("failed", "/srv/inbox/x.mp4", error="e"), unknown).link is None
