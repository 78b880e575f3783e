"""The commands in-process: one line and exit 2 for a bad config, status without a ledger, the
environment alone, a queued job outside the upload hours."""

from __future__ import annotations

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
