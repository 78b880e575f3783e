"""Messages for people and the heartbeat, against the real daemon and real receivers on
loopback (nothing of Apprise mocked): a json:// receiver hears one message per event with the
media's link, a batch as one digest, a refused message once it is taken, and a message left
waiting by a kill -9; a mail server gets a readable email; the heartbeat comes at its interval
and stops while a hold has lasted over an hour; no secret of a URL reaches any output."""

from __future__ import annotations

import base64
import itertools
import signal
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ingestd.core.jobs import JobState
from tests.conftest import TOKEN, DaemonProcess, wait_until, write_config, write_media
from tests.receivers import HttpReceiver, SmtpReceiver

MEDIAS = "https://sandbox.wistia.test/medias"
PING_KEY = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    made = HttpReceiver()
    yield made
    made.close()


def _told(daemon_factory: Any, *urls: str, **notify: Any) -> DaemonProcess:
    settings = {"urls": list(urls), "events": ["done", "failed", "held"], **notify}
    return daemon_factory(notify=settings).start()


def _all_delivered(daemon: DaemonProcess, timeout: float = 20) -> None:
    wait_until(
        lambda: daemon.status_json()["notifications"]["waiting"] == 0,
        timeout=timeout,
        what="every message delivered\n" + daemon.logs()[-3000:],
    )


def test_one_message_per_event_with_the_media_link(
    daemon_factory: Any, receiver: HttpReceiver
) -> None:
    daemon = _told(daemon_factory, receiver.json_url(), digest_seconds=0)
    clip = daemon.watch / "launch.mp4"
    write_media(clip, seed=1)
    (daemon.watch / "empty.mp4").write_bytes(b"")
    done = daemon.wait_state(clip, JobState.DONE, timeout=30)
    daemon.wait_state(daemon.watch / "empty.mp4", JobState.FAILED, timeout=30)
    _all_delivered(daemon)
    said = {m["title"]: m["message"] for m in receiver.messages}
    assert said == {
        "launch.mp4 is ready in Wistia": (
            f"launch.mp4 is ready in Wistia: {MEDIAS}/{done.hashed_id}"
        ),
        "empty.mp4 failed": (
            "empty.mp4 failed: empty file (0 bytes). Fix the file and drop it again."
        ),
    }
    assert "message delivered" in daemon.logs() and "json#1" in daemon.logs()


def test_a_batch_is_one_message_and_the_webhook_still_hears_each_event(
    daemon_factory: Any, receiver: HttpReceiver
) -> None:
    webhook = HttpReceiver()
    try:
        daemon = _told(
            daemon_factory, receiver.json_url(), digest_seconds=4, webhook_url=webhook.http_url("/")
        )
        clips = [daemon.watch / name for name in ("a-launch.mp4", "b-teaser.mp4", "c-roll.mov")]
        for n, clip in enumerate(clips):
            write_media(clip, 60_000, seed=10 + n)
        jobs = [daemon.wait_state(clip, JobState.DONE, timeout=30) for clip in clips]
        _all_delivered(daemon)
        (digest,) = receiver.messages
        assert digest["title"] == "3 videos ready"
        lines = digest["message"].splitlines()
        assert lines[0] == "3 videos ready:"
        named = zip(clips, jobs, strict=True)
        assert sorted(lines[1:]) == sorted(f"- {c.name}: {MEDIAS}/{j.hashed_id}" for c, j in named)
        assert len(webhook.messages) == 3  # programs: one notification per event, as before
    finally:
        webhook.close()


def test_a_receiver_answering_500_then_200_gets_the_message_once(
    daemon_factory: Any, receiver: HttpReceiver
) -> None:
    receiver.status = 500
    daemon = _told(daemon_factory, receiver.json_url(), digest_seconds=0)
    clip = daemon.watch / "retry.mp4"
    write_media(clip, seed=2)
    daemon.wait_state(clip, JobState.DONE, timeout=30)
    wait_until(lambda: receiver.refused, what="a refused attempt")
    waiting = daemon.status_json()["notifications"]
    assert waiting["waiting"] == 1 and waiting["receivers"] == {"json": 1}
    assert "error=500" in waiting["last_error"]
    assert "1 notification(s) waiting to be delivered (1 for json)" in daemon.cli("status").stdout
    receiver.status = 200
    _all_delivered(daemon, timeout=30)
    (taken,) = receiver.messages
    assert taken["title"] == "retry.mp4 is ready in Wistia"


def test_a_kill_between_the_move_and_the_delivery_still_delivers_once(
    daemon_factory: Any, receiver: HttpReceiver
) -> None:
    daemon = _told(daemon_factory, receiver.json_url(), digest_seconds=4)
    clip = daemon.watch / "crash.mp4"
    write_media(clip, seed=3)
    daemon.wait_state(clip, JobState.DONE, timeout=30)
    assert receiver.messages == []  # its window is still open
    daemon.kill()
    assert daemon.ledger.outbox.waiting()["receivers"] == {"json": 1}
    daemon.start()
    _all_delivered(daemon, timeout=30)
    (message,) = receiver.messages
    assert message["title"] == "crash.mp4 is ready in Wistia"
    time.sleep(1)  # nothing more comes (a repeat would come at once)
    assert len(receiver.messages) == 1


def test_an_email_reaches_a_mail_server_readable(daemon_factory: Any) -> None:
    password = "Sup3r-S3cret-Mail-Pw"
    mail = SmtpReceiver("ingest", password)
    try:
        url = mail.url("ingest", password, to="team@example.com", sender="ingestd@example.com")
        daemon = _told(daemon_factory, url, digest_seconds=0)
        clip = daemon.watch / "launch.mp4"
        write_media(clip, seed=4)
        job = daemon.wait_state(clip, JobState.DONE, timeout=30)
        wait_until(lambda: mail.mails, what="an email\n" + daemon.logs()[-3000:])
        (email,) = mail.mails
        assert email["Subject"] == "launch.mp4 is ready in Wistia"
        assert email["To"] == "team@example.com" and "ingestd@example.com" in email["From"]
        assert email.get_content_type() == "text/plain"
        body = email.get_content().strip()
        assert body == f"launch.mp4 is ready in Wistia: {MEDIAS}/{job.hashed_id}"
        _all_delivered(daemon)
        assert password not in daemon.logs() and password not in daemon.cli("status").stdout
    finally:
        mail.close()


def _pings_apart(receiver: HttpReceiver) -> list[float]:
    at = [ping["at"] for ping in receiver.pings]
    return [later - earlier for earlier, later in itertools.pairwise(at)]


def test_the_heartbeat_comes_at_its_interval_and_stops_while_a_hold_lasts_over_an_hour(
    daemon_factory: Any, receiver: HttpReceiver
) -> None:
    daemon = daemon_factory(
        notify={"heartbeat_url": receiver.http_url(f"/ping/{PING_KEY}"), "heartbeat_seconds": 1}
    ).start()
    wait_until(lambda: len(receiver.pings) >= 4, timeout=10, what="four pings")
    assert all(0.8 < apart < 1.6 for apart in _pings_apart(receiver)), _pings_apart(receiver)
    assert {ping["path"] for ping in receiver.pings} == {f"/ping/{PING_KEY}"}
    assert all("Authorization" not in ping["headers"] for ping in receiver.pings)
    # Uploads held (the video limit) since two hours ago: someone must look. (The account is
    # full indeed: the daemon's own look at it keeps the hold.)
    daemon.sandbox.faults.update(video_limit=1)
    daemon.sandbox.add_media("already there.mp4", size=1000)
    with sqlite3.connect(daemon.ledger_path) as db:
        db.execute(
            "INSERT INTO hold (id, kind, reason, since, next_probe_at, probe_interval) "
            "VALUES (1, 'video_limit', 'the account is full', ?, ?, 3600)",
            (time.time() - 7200, time.time() + 3600),
        )
    wait_until(lambda: "heartbeat paused" in daemon.logs(), timeout=5, what="paused")
    paused = len(receiver.pings)
    time.sleep(3)  # three intervals
    assert len(receiver.pings) == paused
    with sqlite3.connect(daemon.ledger_path) as db:
        db.execute("DELETE FROM hold")
    wait_until(lambda: len(receiver.pings) > paused, timeout=5, what="pings again")
    assert "heartbeat resumed" in daemon.logs()


def test_no_url_secret_or_token_in_any_log_reason_or_status(
    daemon_factory: Any, receiver: HttpReceiver
) -> None:
    """Receivers that refuse, each URL with its secrets: a password and a header key in a
    json:// URL, a mail server that refuses the password (and takes longer than an attempt
    may), a heartbeat key, a webhook and a heartbeat behind Basic auth that quote the
    credentials they got: none of them, nor the token, in the logs, the ledger's reasons and
    receivers, `status`, `status --json` or `check`."""
    receiver.status = 500
    mail = SmtpReceiver("ingest", "the-right-password")
    json_password, header_key, mail_password = "Js0nPassw0rdXyz", "HeaderKeyAbc123", "Wr0ngMailPw77"
    urls = [
        f"json://ops:{json_password}@127.0.0.1:{receiver.port}/hook?-X-Api-Key={header_key}",
        mail.url("ingest", mail_password, to="team@example.com", sender="ingestd@example.com"),
    ]
    ping, hook = HttpReceiver(), HttpReceiver()
    ping.status, hook.status = 503, 401
    ping.quote_credentials = hook.quote_credentials = True
    ping_password, hook_password = "PingPassw0rd9", "HookPassw0rd4"
    basic = [
        base64.b64encode(pair.encode()).decode()
        for pair in (f"pinger:{ping_password}", f"hooker:{hook_password}")
    ]
    try:
        daemon = _told(
            daemon_factory,
            *urls,
            digest_seconds=0,
            timeout_seconds=2,
            heartbeat_url=ping.http_url(f"/ping/{PING_KEY}", f"pinger:{ping_password}@"),
            heartbeat_seconds=1,
            webhook_url=hook.http_url("/hook", f"hooker:{hook_password}@"),
        )
        write_media(daemon.watch / "secret-test.mp4", seed=5)
        daemon.wait_state(daemon.watch / "secret-test.mp4", JobState.DONE, timeout=30)
        logs = daemon.logs
        wait_until(lambda: "E-Mail did not answer within 2 s" in logs(), timeout=20, what="mail")
        wait_until(lambda: "JSON: Failed to send" in logs(), timeout=10, what="json refused")
        wait_until(lambda: "heartbeat answered HTTP 503" in logs(), timeout=10, what="ping")
        wait_until(lambda: "webhook answered HTTP 401" in logs(), timeout=10, what="webhook")
        daemon.stop()
        with sqlite3.connect(daemon.ledger_path) as db:
            stored = db.execute("SELECT receiver, last_error FROM notifications").fetchall()
        assert {row[0] for row in stored} == {"json#1", "mailto#1", "webhook"}
        assert [r["headers"]["Authorization"] for r in (ping.requests[0], hook.requests[0])] == [
            f"Basic {credentials}" for credentials in basic
        ]
        outputs = {
            "logs": logs(),
            "ledger": repr(stored),
            "status": daemon.cli("status").stdout,
            "status --json": daemon.cli("status", "--json").stdout,
            "check": daemon.cli("check").stdout,
        }
        assert "mailto#1" in outputs["check"] and "json#1" in outputs["check"]
        for what, text in outputs.items():
            for secret in (json_password, header_key, mail_password, PING_KEY, TOKEN):
                assert secret not in text, f"{secret} in {what}"
            for secret in (ping_password, hook_password, *basic):
                assert secret not in text, f"{secret} in {what}"
    finally:
        mail.close()
        ping.close()
        hook.close()


def test_a_url_apprise_cannot_read_stops_the_daemon_and_is_refused_on_reload(
    daemon_factory: Any, receiver: HttpReceiver
) -> None:
    bad = "slak://T1JJ3T3L2/Wrongly-Typed-Secret"
    daemon = daemon_factory(notify={"urls": [receiver.json_url(), bad]})
    daemon.start(wait_ready=False)
    assert daemon.proc is not None and daemon.proc.wait(timeout=15) == 2
    said = daemon.logs()
    assert "Apprise cannot send to URL 2 of 2 (slak://..." in said
    assert "Wrongly-Typed-Secret" not in said and "T1JJ3T3L2" not in said
    daemon.config["notify"]["urls"] = [receiver.json_url()]
    daemon.config["notify"]["digest_seconds"] = 0
    daemon.start()
    daemon.config["notify"]["urls"] = [receiver.json_url(), bad]
    write_config(daemon.config_path, daemon.config)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "config reload rejected" in daemon.logs(), what="the reload refused")
    assert "Wrongly-Typed-Secret" not in daemon.logs()
    clip = daemon.watch / "after.mp4"
    write_media(clip, seed=6)
    daemon.wait_state(clip, JobState.DONE, timeout=30)
    _all_delivered(daemon)  # the running config goes on
    assert [m["title"] for m in receiver.messages] == ["after.mp4 is ready in Wistia"]


def test_a_held_job_is_told_what_to_fix(daemon_factory: Any, receiver: HttpReceiver) -> None:
    """A held job is told what to fix: a bad sidecar holds it, and the message says which."""
    daemon = _told(daemon_factory, receiver.json_url(), digest_seconds=0)
    clip = daemon.watch / "clip.mp4"
    (daemon.watch / "clip.json").write_text("{not json")
    write_media(clip, seed=7)
    daemon.wait_state(clip, JobState.HELD, timeout=30)
    _all_delivered(daemon)
    (held,) = receiver.messages
    assert held["title"] == "clip.mp4 is held"
    assert held["message"].startswith("clip.mp4 is held: clip.json")
    assert held["message"].endswith("It goes on by itself once that is fixed.")
