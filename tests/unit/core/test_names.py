"""Names: shown escaped, stored exactly, sent with undecodable bytes replaced, kept within 255
bytes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingestd import logs
from ingestd.core.names import NAME_MAX, as_text, display, fits, sibling, wistia_name

TOKEN = "tq8Vb2ZmR4xN7cLp0eWkH3sJ9uYaG6dF1iOzXyQwE5rT-kM8nBvC2xZ4lP7oA0sD"


@pytest.fixture(autouse=True)
def the_token() -> None:
    logs.add_secret(TOKEN)


# --- names -------------------------------------------------------------------------------------


def test_names_that_are_not_utf8_are_shown_escaped_and_sent_replaced() -> None:
    name = os.fsdecode(b"caf\xe9 \xff.mp4")
    assert display(name) == "caf\\xe9 \\xff.mp4"
    assert as_text(name) == "caf\\xe9 \\xff.mp4"
    assert wistia_name(name) == "caf\ufffd \ufffd.mp4"
    assert os.fsencode(name) == b"caf\xe9 \xff.mp4"  # and nothing was lost


def test_control_characters_and_escape_sequences_are_shown_escaped() -> None:
    assert display("new\nline.mp4") == "new\\nline.mp4"
    assert display("\x1b[31mred\x1b[0m.mp4") == "\\x1b[31mred\\x1b[0m.mp4"
    assert display("tab\there") == "tab\\there"
    assert display("ünïcödé – 日本語.mp4") == "ünïcödé – 日本語.mp4"
    assert as_text("new\nline.mp4") == "new\nline.mp4"  # JSON escapes it itself


def test_sidecar_names_that_cannot_exist_are_none() -> None:
    media = Path("/w") / ("x" * (NAME_MAX - 4) + ".mp4")
    assert fits(media.name)
    assert sibling(media, media.stem + ".srt") == media.with_name(media.stem + ".srt")
    assert sibling(media, media.stem + ".json") is None  # 256 bytes
    assert not fits("é" * 128)  # 256 bytes in UTF-8, though 128 characters
