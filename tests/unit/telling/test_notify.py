"""Notifications: the keys, the signature, one notification per receiver written with its move,
none without receivers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from ingestd.config.settings import load_settings
from ingestd.core.errors import ConfigError
from ingestd.core.jobs import JobState
from ingestd.ledger import Ledger, Outbox
from ingestd.telling.notify.deliver import receivers, secrets
from ingestd.telling.notify.webhook import signature
from ingestd.telling.views import job_view_text
from tests.conftest import write_config


def _settings(tmp_path: Path, **values):
    (tmp_path / "inbox").mkdir(exist_ok=True)
    return load_settings(write_config(tmp_path / "c.toml", {"watch_dir": "inbox", **values}))


def test_notify_and_metrics_keys_have_the_documented_defaults(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.notify.events == ["done", "failed"]
    assert settings.notify.max_age_hours == 24 and settings.notify.command == []
    assert settings.metrics.listen == "" and settings.ingest.receipts is False
    assert receivers(settings.notify) == []


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"notify": {"webhook_url": "ftp://example.com/"}}, "notify.webhook_url"),
        ({"notify": {"events": ["done", "uploaded"]}}, "notify.events"),
        ({"notify": {"max_age_hours": 0}}, "notify.max_age_hours"),
        ({"metrics": {"listen": "9464"}}, "metrics.listen"),
        ({"metrics": {"listen": "127.0.0.1:99999"}}, "metrics.listen"),
    ],
)
def test_bad_notify_and_metrics_keys_are_named(tmp_path: Path, values, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _settings(tmp_path, **values)


def test_messages_and_heartbeat_keys_have_the_documented_defaults(tmp_path: Path) -> None:
    notify = _settings(tmp_path).notify
    assert notify.urls == [] and notify.digest_seconds == 60
    assert notify.heartbeat_url.get_secret_value() == "" and notify.heartbeat_seconds == 300


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        ({"urls": ["slack://T1/B1/XXXXsecretXXXX", "hunter2secret"]}, "URL 2 of 2"),
        ({"urls": ["://nothing-before-it"]}, "URL 1 of 1"),
        ({"heartbeat_url": "ftp://hc.example/pingkey-hunter2secret"}, "notify.heartbeat_url"),
        ({"digest_seconds": -1}, "notify.digest_seconds"),
        ({"digest_seconds": 7200}, "notify.digest_seconds"),
        ({"heartbeat_seconds": 0}, "notify.heartbeat_seconds"),
    ],
)
def test_a_bad_url_is_named_by_its_place_never_shown(tmp_path: Path, notify, expected) -> None:
    with pytest.raises(ConfigError) as raised:
        _settings(tmp_path, notify=notify)
    message = str(raised.value)
    assert expected in message
    assert "secret" not in message.replace("secrets", "")  # no URL, nor a piece of one


def test_urls_are_kept_as_secrets_out_of_every_repr(tmp_path: Path) -> None:
    url = "mailto://ops:hunter2secret@smtp.example.com"
    ping = "https://hc-ping.com/hunter2secret"
    notify = _settings(tmp_path, notify={"urls": [f"  {url} "], "heartbeat_url": ping}).notify
    assert [u.get_secret_value() for u in notify.urls] == [url]  # surrounding spaces dropped
    assert "hunter2secret" not in repr(notify) and "hunter2secret" not in str(notify)


def test_a_plain_http_webhook_is_allowed_anywhere(tmp_path: Path) -> None:
    settings = _settings(tmp_path, notify={"webhook_url": "http://cms.example.com/hook"})
    assert receivers(settings.notify) == ["webhook"]


def test_the_password_in_a_webhook_url_and_its_credentials_are_secrets(tmp_path: Path) -> None:
    url = "https://ingest:Hunter2%2Fxyz@cms.example.com/hook"
    settings = _settings(tmp_path, notify={"webhook_url": url})
    credentials = base64.b64encode(b"ingest:Hunter2/xyz").decode()
    assert {"Hunter2/xyz", credentials} <= set(secrets(settings.notify))


def test_the_signature_is_the_hex_hmac_sha256_of_the_body() -> None:
    body = b'{"id": "x"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature("s3cret", body) == f"sha256={expected}"


def test_a_move_writes_one_notification_per_receiver_in_its_transaction(tmp_path: Path) -> None:
    outbox = Outbox(frozenset({"done", "held"}), ("webhook", "command"), job_view_text)
    ledger = Ledger(tmp_path / "ledger.db", outbox=outbox)
    try:
        job = ledger.settling.add(str(tmp_path / "a.mp4"), "file", 10, 1)
        job = ledger.move(job, JobState.QUEUED)
        assert ledger.outbox.due() == []  # queued is not an event
        job = ledger.move(job, JobState.UPLOADING)
        job = ledger.move(job, JobState.HELD, "a bad sidecar", reason="fix clip.json")
        rows = ledger.outbox.due()
        assert [r.receiver for r in rows] == ["webhook", "command"]
        assert len({r.uid for r in rows}) == 1 and rows[0].event == "held"
        shown = json.loads(rows[0].job)
        assert shown["state"] == "held" and shown["reason"] == "fix clip.json"
        ledger.outbox.fix_body(rows[0], "first")
        ledger.outbox.fix_body(rows[1], "second")  # the first one fixed wins for both
        assert ledger.outbox.body(rows[1]) == "first"
        ledger.outbox.failed(rows[0], "HTTP 500", retry_at=2e9)
        # One notification to two receivers waits as one.
        assert ledger.outbox.waiting() == {
            "waiting": 1,
            "last_error": "HTTP 500",
            "receivers": {"command": 1, "webhook": 1},
        }
        ledger.outbox.forget(rows[1])
        assert [r.id for r in ledger.outbox.due()] == []  # the other waits till 2e9
        # Released by a recheck and held again at once for the same problem: told once.
        job = ledger.move(job, JobState.QUEUED, "problem fixed")
        job = ledger.move(job, JobState.UPLOADING)
        job = ledger.move(job, JobState.HELD, "a bad sidecar", reason="fix clip.json")
        assert ledger.outbox.waiting()["waiting"] == 1  # the first, still waiting
        job = ledger.move(job, JobState.QUEUED, "problem fixed")
        job = ledger.move(job, JobState.UPLOADING)
        ledger.move(job, JobState.HELD, "another problem", reason="fix clip.srt")
        assert ledger.outbox.waiting()["waiting"] == 2
    finally:
        ledger.close()


def test_without_receivers_no_notification_is_written(tmp_path: Path) -> None:
    outbox = Outbox(frozenset({"done", "failed"}), (), job_view_text)
    ledger = Ledger(tmp_path / "ledger.db", outbox=outbox)
    try:
        job = ledger.settling.add(str(tmp_path / "a.mp4"), "file", 10, 1)
        ledger.move(job, JobState.FAILED, "empty", error="empty file")
        assert ledger.outbox.waiting()["waiting"] == 0
    finally:
        ledger.close()
