"""Settings: defaults, paths, the environment over the file, errors naming the key (never echoing
the token), the token sources, bandwidth and upload hours."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestd.config.settings import load_settings, resolve_token
from ingestd.core.errors import ConfigError
from tests.conftest import write_config


def config(tmp_path: Path, **values) -> Path:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    return write_config(tmp_path / "ingestd.toml", {"watch_dir": "inbox", **values})


def test_defaults_and_paths_relative_to_the_config_file(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, ledger="state/ledger.db"))
    assert settings.watch_dir == (tmp_path / "inbox").resolve()
    assert settings.ledger == tmp_path / "state" / "ledger.db"
    assert settings.wistia.requests_per_minute == 600
    assert settings.ingest.workers == 3 and settings.ingest.after_upload == "keep"
    assert settings.wistia.api_url == "https://api.wistia.com/v1/"


def test_urls_work_with_or_without_trailing_slash(tmp_path: Path) -> None:
    settings = load_settings(
        config(
            tmp_path,
            wistia={
                "api_url": "https://api.wistia.com/v1",
                "upload_url": "https://upload.wistia.com",
            },
        )
    )
    assert settings.wistia.api_url == "https://api.wistia.com/v1/"
    assert settings.wistia.upload_url == "https://upload.wistia.com/"


def test_environment_overrides_the_file_with_double_underscore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(tmp_path, wistia={"requests_per_minute": 100, "project_id": "p1"})
    monkeypatch.setenv("INGESTD_WISTIA__REQUESTS_PER_MINUTE", "50")
    monkeypatch.setenv("INGESTD_INGEST__WORKERS", "7")
    settings = load_settings(path)
    assert settings.wistia.requests_per_minute == 50
    assert settings.wistia.project_id == "p1"  # the rest of the section is kept
    assert settings.ingest.workers == 7


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"wistia": {"requests_per_minute": "lots"}}, "wistia.requests_per_minute"),
        ({"ingest": {"workers": 0}}, "ingest.workers"),
        ({"ingest": {"observer": "magic"}}, "ingest.observer"),
        ({"ingest": {"setle_seconds": 1}}, "ingest.setle_seconds"),
        ({"ingest": {"after_upload": "move"}}, "ingest.archive_dir"),
        ({"wistia": {"api_url": "http://api.wistia.com/v1/"}}, "wistia.api_url"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, values, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config(tmp_path, **values))
    assert key in str(caught.value)


def test_missing_watch_dir_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", {"ledger": "x.db"})
    with pytest.raises(ConfigError, match="watch_dir: required key is missing"):
        load_settings(path)


def test_plain_http_is_refused_for_other_hosts_but_allowed_on_loopback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="http://"):
        load_settings(config(tmp_path, wistia={"upload_url": "http://upload.wistia.com/"}))
    for host in ("127.0.0.1:8080", "localhost:9", "[::1]:80", "127.8.9.10"):
        load_settings(config(tmp_path, wistia={"upload_url": f"http://{host}/"}))


def test_bad_value_message_does_not_echo_the_token(tmp_path: Path) -> None:
    token = "supersecret-token-value"
    path = config(tmp_path, wistia={"api_token": token, "requests_per_minute": -1})
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert token not in str(caught.value)


def test_token_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token.txt").write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "wistia-token").write_text("from-credential")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert resolve_token(load_settings(config(tmp_path))) == "from-credential"
    with_file = load_settings(config(tmp_path, wistia={"api_token_file": "token.txt"}))
    assert resolve_token(with_file) == "from-file"
    direct = load_settings(config(tmp_path, wistia={"api_token": "direct"}))
    assert resolve_token(direct) == "direct"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match=r"wistia\.api_token"):
        resolve_token(load_settings(config(tmp_path)))


def test_example_config_loads_and_documents_every_key() -> None:
    import tomllib

    from ingestd.config.settings import Settings

    example = Path(__file__).parents[3] / "config.example.toml"
    settings = load_settings(example)
    assert settings.wistia.api_token_file is None
    written = tomllib.loads(example.read_text())
    for name, field in Settings.model_fields.items():
        assert name in written, f"{name} missing from config.example.toml"
        section = field.annotation
        if hasattr(section, "model_fields"):
            missing = set(section.model_fields) - set(written[name])
            assert not missing, f"[{name}] keys missing from config.example.toml: {missing}"


@pytest.mark.parametrize(
    ("text", "rate"),
    [("", None), ("500K", 500 * 1024), ("20M", 20 * 1024**2), ("1.5G", 1.5 * 1024**3),
     ("20 MiB/s", 20 * 1024**2), ("4096", 4096)],
)  # fmt: skip
def test_upload_bandwidth_is_bytes_per_second_in_powers_of_1024(text: str, rate) -> None:
    from ingestd.config.limits import parse_bandwidth

    assert parse_bandwidth(text) == rate


@pytest.mark.parametrize("text", ["fast", "20X", "-5M", "100"])
def test_a_bad_upload_bandwidth_names_the_key(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"ingest\.upload_bandwidth"):
        load_settings(config(tmp_path, ingest={"upload_bandwidth": text}))


@pytest.mark.parametrize("text", ["20Mb", "20 mb/s", "1Gib"])
def test_a_bandwidth_in_bits_is_refused_not_guessed(text: str) -> None:
    from ingestd.config.limits import parse_bandwidth

    with pytest.raises(ValueError, match="small b means bits"):
        parse_bandwidth(text)


def test_upload_hours_may_cross_midnight() -> None:
    from datetime import datetime

    from ingestd.config.limits import UploadHours

    night = UploadHours.parse("19:00-07:00")
    assert [night.open_at(datetime(2026, 1, 1, h, 30)) for h in (6, 7, 12, 18, 19, 23)] == [
        True, False, False, False, True, True
    ]  # fmt: skip
    assert night.next_opening(datetime(2026, 1, 1, 12, 0)) == datetime(2026, 1, 1, 19, 0)
    assert night.next_opening(datetime(2026, 1, 1, 20, 0)) == datetime(2026, 1, 2, 19, 0)
    day = UploadHours.parse("09:00-17:30")
    assert day.open_at(datetime(2026, 1, 1, 17, 29)) and not day.open_at(
        datetime(2026, 1, 1, 17, 30)
    )
    assert str(day) == "09:00-17:30" and UploadHours.parse("") is None


@pytest.mark.parametrize("text", ["7-9", "25:00-07:00", "10:00-10:00", "10:60-11:00"])
def test_bad_upload_hours_name_the_key(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"ingest\.upload_hours"):
        load_settings(config(tmp_path, ingest={"upload_hours": text}))
