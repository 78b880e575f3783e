"""Redaction: the token and any 16 characters of it, URL credentials and query strings, out of
every log line, the ledger and output."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from ingestd import logs
from ingestd.ledger import Ledger
from ingestd.redact import REDACTED

TOKEN = "tq8Vb2ZmR4xN7cLp0eWkH3sJ9uYaG6dF1iOzXyQwE5rT-kM8nBvC2xZ4lP7oA0sD"


@pytest.fixture(autouse=True)
def the_token() -> None:
    logs.add_secret(TOKEN)


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"token={TOKEN}", f"token={REDACTED}"),
        (f"clip.srt, line 1: found '{TOKEN[10:26]}'", f"clip.srt, line 1: found '{REDACTED}'"),
        (f"a{TOKEN[3:23]}b", f"a{REDACTED}b"),  # 20 characters: one span, no tail shown
        (f"{TOKEN[:16]} and {TOKEN[40:60]}", f"{REDACTED} and {REDACTED}"),
        (f"only {TOKEN[:15]} of it", f"only {TOKEN[:15]} of it"),  # 15 characters say nothing
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_the_token_and_any_16_characters_of_it_are_removed(text: str, shown: str) -> None:
    assert logs.redact(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "importing https://bucket.s3.amazonaws.com/v.mp4?X-Amz-Signature=abc&X-Amz-Expires=1",
            f"importing https://bucket.s3.amazonaws.com/v.mp4?{REDACTED}",
        ),
        ("from https://me:hunter2@example.com/v.mp4", f"from https://{REDACTED}@example.com/v.mp4"),
        ('{"url": "http://u:p@h/x?a=1"}', f'{{"url": "http://{REDACTED}@h/x?{REDACTED}"}}'),
        ("https://example.com/clip.mp4 is fine", "https://example.com/clip.mp4 is fine"),
        ("ftp://x.org/a?b#frag", f"ftp://x.org/a?{REDACTED}#frag"),
        ("https://u:p@ss@h.com/v.mp4", f"https://{REDACTED}@h.com/v.mp4"),
    ],
)
def test_url_credentials_and_query_strings_are_removed(text: str, shown: str) -> None:
    assert logs.redact(text) == shown


def test_a_secret_shorter_than_the_window_is_removed_whole() -> None:
    logs.add_secret("short-secret")
    assert logs.redact("x short-secret y") == f"x {REDACTED} y"
    assert logs.redact("x short- y") == "x short- y"


def test_log_lines_are_redacted_values_and_tracebacks_alike() -> None:
    stream = io.StringIO()
    logs.configure(level="debug", fmt="json")
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)  # type: ignore[attr-defined]
    log = logs.get("test")
    log.info("sent", url="https://h/v.mp4?sig=abc", detail={"nested": [TOKEN[5:30]]})
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError as exc:
        log.error("failed", exc_info=exc)
    log.info("headers", authorization="Bearer abc")
    text = stream.getvalue()
    assert TOKEN[5:21] not in text and TOKEN[20:36] not in text and "sig=abc" not in text
    assert "Bearer abc" not in text and text.count(REDACTED) >= 4
    assert '"locals"' not in text  # tracebacks without the frames' variables


def test_the_ledger_stores_reasons_notes_and_the_hold_redacted(tmp_path: Path) -> None:
    from ingestd.core.jobs import HoldRequest, JobState

    ledger = Ledger(tmp_path / "l.db")
    job = ledger.settling.add("/w/a.url", "url", 1, 1)
    ledger.move(job, JobState.HELD, f"saw {TOKEN}", reason="https://u:p@h/x?s=1")
    ledger.hold.start(HoldRequest("auth", f"refused {TOKEN[:20]}", 1.0))
    ledger.close()
    for suffix in ("", "-wal"):
        stored = Path(f"{tmp_path / 'l.db'}{suffix}")
        if stored.exists():
            data = stored.read_bytes()
            assert TOKEN[:16].encode() not in data and b"u:p@" not in data and b"s=1" not in data
