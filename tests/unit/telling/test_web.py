"""The status page's pure parts: who may listen where, the password file, basic auth, and
what a job card shows."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ingestd.config.settings import load_settings, read_web_password
from ingestd.core.errors import ConfigError
from ingestd.telling.web.page import PageSettings, _credentials_match, page_context
from tests.conftest import write_config


def _settings(tmp_path: Path, **web):
    (tmp_path / "inbox").mkdir(exist_ok=True)
    return load_settings(write_config(tmp_path / "c.toml", {"watch_dir": "inbox", "web": web}))


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"])
def test_loopback_addresses_need_no_password(tmp_path: Path, listen: str) -> None:
    assert _settings(tmp_path, listen=listen).web.listen == listen


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "192.0.2.10:8080", "[::]:8080"])
def test_other_addresses_need_a_password_file(tmp_path: Path, listen: str) -> None:
    with pytest.raises(ConfigError, match=r"is not a loopback address.*web\.password_file"):
        _settings(tmp_path, listen=listen)
    (tmp_path / "pw").write_text("secret\n")
    assert _settings(tmp_path, listen=listen, password_file="pw").web.loopback is False


def test_the_password_is_the_first_line_stripped(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("  two words  \nsecond line\n")
    settings = _settings(tmp_path, listen="127.0.0.1:1", password_file="pw")
    assert read_web_password(settings) == "two words"
    (tmp_path / "pw").write_text("\n")
    with pytest.raises(ConfigError, match="holds no password"):
        read_web_password(settings)


def _page(password: str = "pw") -> PageSettings:
    return PageSettings(Path("/l.db"), Path("/in"), 5.0, "", "viewer", password, "tok")


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_needs_both_user_and_password() -> None:
    page = _page()
    assert _credentials_match(_basic("viewer", "pw"), page)
    assert not _credentials_match(_basic("viewer", "pw2"), page)
    assert not _credentials_match(_basic("other", "pw"), page)
    assert not _credentials_match("Bearer abc", page)
    assert not _credentials_match("Basic !!!not-base64", page)
    assert not _credentials_match("Basic " + base64.b64encode(b"viewerpw").decode(), page)


def test_job_cards_show_folders_links_bars_and_escaped_names() -> None:
    base = {"attempts": 0, "media_id": None, "hashed_id": None, "size": None}
    base |= {"bytes_sent": None, "reason": None, "error": None, "updated_at": "t"}
    jobs = [
        {**base, "id": 1, "path": "/in/A/b/done.mp4", "state": "done", "hashed_id": "h1"},
        {
            **base,
            "id": 2,
            "path": "/in/up\x1b[2J.mp4",
            "state": "uploading",
            "size": 1000,
            "bytes_sent": 250,
            "speed": 50,
            "seconds_left": 15,
        },
        {**base, "id": 3, "path": "/in/A/bad.mp4", "state": "failed", "error": "empty file"},
    ]
    view = {
        "counts": {"uploading": 1, "done": 1, "failed": 1},
        "hold": {"kind": "video_limit", "reason": "Wistia: limit"},
        "daemon": {"running": False, "pid": None, "since": None},
        "notifications": {"waiting": 0, "last_error": None},
        "jobs": jobs,
    }
    context = page_context(view, _page(), "https://acme.wistia.com", "", "")
    done, failed = context["recent"]
    (uploading,) = context["active"]
    assert done["url"] == "https://acme.wistia.com/medias/h1" and done["folder"] == "A/b"
    assert uploading["name"] == "up\\x1b[2J.mp4" and uploading["folder"] == ""
    assert (
        uploading["bar"] == 25.0 and uploading["numbers"] == "250 B of 1.0 KB · 50 B/s · 15 s left"
    )
    assert failed["reason"] == "empty file" and "ingestd retry" in failed["todo"]
    assert "video limit" in context["hold"]["words"] and "not running" in context["daemon_line"]
    assert context["folders"] == ["", "A", "A/b"]  # "": the top folder ("/" in the filter)
    only_a = page_context(view, _page(), None, "A", "")
    assert [c["id"] for c in only_a["recent"]] == [1, 3] and only_a["recent"][0]["url"] is None
    assert [c["id"] for c in page_context(view, _page(), None, "", "failed")["recent"]] == [3]
    top = page_context(view, _page(), None, "/", "")
    assert [c["id"] for c in top["active"] + top["recent"]] == [2]


def test_without_a_password_only_a_loopback_host_is_served() -> None:
    from ingestd.telling.web import create_app

    client = create_app(_page(password="")).test_client()
    assert client.get("/api/jobs/1.json", headers={"Host": "evil.example"}).status_code == 421
    # Not the ledger's answer (none is there): a Host naming loopback gets past the check.
    for host in ("localhost:8080", "127.0.0.1:8080", "[::1]:8080"):
        answer = client.get("/api/jobs/99999999999999999999999.json", headers={"Host": host})
        assert answer.status_code == 404 and answer.is_json
