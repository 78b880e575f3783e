"""The commands in-process: one line and exit 2 for a bad config, status without a ledger, the
environment alone, a queued job outside the upload hours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ingestd.cli.main import main
from tests.conftest import write_config


def config(tmp_path: Path, **values) -> Path:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    return write_config(tmp_path / "ingestd.toml", {"watch_dir": "inbox", **values})


def test_cli_prints_one_line_and_exits_2_on_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, wistia={"requests_per_minute": "fast"})
    assert main(["--config", str(path), "run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ingestd: invalid config") and "wistia.requests_per_minute" in err
    assert "Traceback" not in err
    assert main(["--config", str(tmp_path / "nope.toml"), "status"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_invalid_toml_is_reported_with_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('watch_dir = "unterminated\n')
    assert main(["--config", str(bad), "status"]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_status_without_a_ledger_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, ledger="never/ledger.db")
    assert main(["--config", str(path), "status", "--json"]) == 0
    assert '"counts"' in capsys.readouterr().out
    assert not (tmp_path / "never" / "ledger.db").exists()  # status never creates one


def test_environment_alone_can_configure_the_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INGESTD_CONFIG", raising=False)
    assert main(["status"]) == 2
    assert "INGESTD_WATCH_DIR is not set" in capsys.readouterr().err
    (tmp_path / "inbox").mkdir()
    monkeypatch.setenv("INGESTD_WATCH_DIR", str(tmp_path / "inbox"))
    monkeypatch.setenv("INGESTD_LEDGER", str(tmp_path / "env.db"))
    assert main(["status", "--json"]) == 0
    assert str(tmp_path / "env.db") in capsys.readouterr().out


def test_a_retry_waiting_outside_the_upload_hours_says_both() -> None:
    from datetime import datetime

    from ingestd.config.limits import UploadHours
    from ingestd.core.jobs import Job, JobState
    from ingestd.telling.views import waiting_reason

    night = UploadHours.parse("19:00-07:00")
    noon = datetime(2026, 1, 1, 12, 0).timestamp()
    retry = Job(1, "/w/a.mp4", "video", JobState.QUEUED, reason="retrying after HTTP 503")
    assert waiting_reason(retry, 5, noon, night) == (
        "outside the upload hours (19:00-07:00): uploads start at 19:00; retrying after HTTP 503"
    )
    assert waiting_reason(retry, 5, noon + 8 * 3600, night) == "retrying after HTTP 503"
    fresh = retry._replace(reason=None)
    assert waiting_reason(fresh, 5, noon, night).endswith("uploads start at 19:00")


SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general"
PING_KEY = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"


def test_check_names_each_message_url_by_its_place_and_never_shows_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [SLACK, "slak://T1JJ3T3L2/hunter2secretvalue"]
    ping = f"https://hc-ping.com/{PING_KEY}"
    path = config(tmp_path, notify={"urls": urls, "heartbeat_url": ping})
    assert main(["--config", str(path), "check"]) == 1  # a bad URL (and no token) fail it
    out = capsys.readouterr().out
    assert "ok    notify.urls: URL 1 of 2 is slack#1 (Slack); Apprise can send to it" in out
    assert "FAIL  notify.urls: Apprise cannot send to URL 2 of 2 (slak://...;" in out
    assert "heartbeat: a GET to https://hc-ping.com/... every 300 s" in out
    for secret in ("T1JJ3T3L2", "TIiajkdnlazkcOXrIdevi7FQ", "hunter2secretvalue", PING_KEY):
        assert secret not in out


def test_status_never_imports_apprise(tmp_path: Path) -> None:
    """`ingestd status` stays quick: Apprise (a tenth of a second or more) is imported only
    where messages are sent, even with URLs in the config."""
    path = config(tmp_path, notify={"urls": [SLACK]})
    probe = (
        "import sys\n"
        "from ingestd.cli.main import main\n"
        f"code = main(['--config', {str(path)!r}, 'status', '--json'])\n"
        "print('apprise' in sys.modules, code)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "False 0", done.stderr
    imported = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import ingestd.cli.main"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "apprise" not in imported.stderr and "ingestd.cli.main" in imported.stderr
