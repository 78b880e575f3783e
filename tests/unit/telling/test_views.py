"""What people and programs see: receipts never taken for sidecars, hostile names as text in status
--watch, redacted JSON still JSON."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from ingestd.config.settings import load_settings
from ingestd.folder.sidecars import is_receipt, own_sidecar_names
from ingestd.pipeline.finish.receipt import receipt_name
from ingestd.telling.live import Uploads, frame
from tests.conftest import write_config


def _settings(tmp_path: Path, **values):
    (tmp_path / "inbox").mkdir(exist_ok=True)
    return load_settings(write_config(tmp_path / "c.toml", {"watch_dir": "inbox", **values}))


def test_receipts_are_never_sidecars() -> None:
    assert receipt_name("clip.mp4") == "clip.mp4.wistia.json"
    assert is_receipt("clip.mp4.wistia.json") and is_receipt("X.MP4.WISTIA.JSON")
    assert not is_receipt("clip.json")
    assert not is_receipt("clip.wistia.json")  # the clip.json of clip.wistia.mp4
    # The media `clip.mp4.wistia.mov` would take `clip.mp4.wistia.json` as its clip.json.
    names = ["clip.mp4.wistia.json", "clip.mp4.wistia.srt"]
    assert own_sidecar_names("clip.mp4.wistia.mov", names) == ["clip.mp4.wistia.srt"]


def test_a_watch_frame_shows_hostile_names_as_text_not_markup() -> None:
    console = Console(width=80, record=True, force_terminal=True, color_system=None)
    bars = Uploads(console)
    hostile = "/inbox/[bold red]x\x1b[2J.mp4"
    job = {
        "id": 1,
        "path": hostile,
        "state": "uploading",
        "size": 1000,
        "bytes_sent": 500,
        "attempts": 1,
        "progress": 0.5,
        "reason": "[link=http://evil]click[/link]",
        "error": None,
        "next_retry_at": None,
        "hashed_id": None,
        "updated_at": None,
    }
    view = {
        "daemon": {"running": True, "pid": 1, "since": None},
        "ledger": "/l.db",
        "counts": {"uploading": 1},
        "hold": {
            "kind": "auth",
            "reason": "[red]token[/red]",
            "since": None,
            "next_probe_at": None,
        },
        "notifications": {"waiting": 2, "last_error": "webhook answered HTTP 500"},
        "jobs": [job],
    }
    bars.update(view["jobs"])
    console.print(frame(view, bars))
    text = console.export_text()
    assert "[bold red]x" in text  # shown as typed, not applied
    assert "[link=http://evil]click[/link]" in text
    assert "\x1b[2J" not in text and "\\x1b[2J" in text
    assert text.index("ON HOLD") < text.index("notification(s) waiting") < text.index("ACTIVE")
    assert max(len(line) for line in text.splitlines()) <= 80


def test_redacting_json_text_keeps_it_json() -> None:
    from ingestd.logs import redact

    text = json.dumps({"reason": 'fetching "https://h/x?token=abc": 404'})
    assert json.loads(redact(text)) == {"reason": 'fetching "https://h/x?[redacted]": 404'}


def test_status_says_what_waits_for_each_kind_of_receiver() -> None:
    from ingestd.telling.status import empty_snapshot, render, waiting_words

    waiting = {
        "waiting": 3,
        "last_error": "JSON: error=500.",
        "receivers": {"slack": 2, "webhook": 1},
    }
    assert waiting_words(waiting) == (
        "3 notification(s) waiting to be delivered (2 for slack, 1 for webhook)"
    )
    # A status --json from before the counts (a page open across an upgrade): no counts.
    assert waiting_words({"waiting": 1, "last_error": None}).endswith("delivered")
    view = {**empty_snapshot(Path("/l.db")), "notifications": waiting}
    text = render(view)
    assert "notify: 3 notification(s) waiting to be delivered (2 for slack, 1 for webhook)" in text
    assert "last delivery error: JSON: error=500." in text
    assert empty_snapshot(Path("/l.db"))["notifications"]["receivers"] == {}
