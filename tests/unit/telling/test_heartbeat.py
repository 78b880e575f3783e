"""The heartbeat, driven one pass at a time against a real receiver on loopback and the real
supervisor: a GET at its interval while every stage is well, none while a stage is stuck or
the stages go unwatched or a hold has lasted over an hour, at once when well again; the ping
carries nothing, and the URL's key is a secret."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from ingestd.core.jobs import HoldRequest
from ingestd.daemon.supervisor import SupervisedStage, Supervisor
from ingestd.redact import redact
from ingestd.telling.notify.heartbeat import Pinger, secrets
from tests.receivers import ForwardProxy, HttpReceiver, StuckListener
from tests.unit.conftest import World

KEY = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    made = HttpReceiver()
    yield made
    made.close()


class Looks:
    """The real supervisor over one stage that the test makes stuck, looked at when asked."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.stage = SupervisedStage("finisher", lambda: self.gate.wait(30))
        self.supervisor = Supervisor([self.stage], lambda name: self.stage, threading.Event())
        self.supervisor.start()
        self.at = time.monotonic()

    def look(self, later: float = 0.0) -> None:
        self.at = time.monotonic() + later
        self.supervisor.supervise(self.at)

    def unwell(self) -> str | None:
        return self.supervisor.unwell(self.at)


@pytest.fixture
def looks() -> Iterator[Looks]:
    made = Looks()
    yield made
    made.gate.set()


def _pinger(world: World, receiver: HttpReceiver, looks: Looks, seconds: float = 30) -> Pinger:
    settings = world.settings
    settings.notify.heartbeat_url = SecretStr(receiver.http_url(f"/ping/{KEY}"))
    settings.notify.heartbeat_seconds = seconds
    return Pinger(settings, world.ledgers, world.stop, looks.unwell)


def test_a_ping_at_its_interval_none_while_a_stage_is_stuck(
    world: World, receiver: HttpReceiver, looks: Looks
) -> None:
    pinger, ledger, clock = _pinger(world, receiver, looks), world.ledger, world.clock
    assert pinger.beat(ledger, clock.now()) == clock.now() + 1  # not looked at yet: no ping
    assert receiver.pings == []
    looks.look()
    first = clock.now()
    assert pinger.beat(ledger, first) == first + 30
    assert len(receiver.pings) == 1
    assert pinger.beat(ledger, first + 29) == first + 30 and len(receiver.pings) == 1
    clock.t = first + 30
    pinger.beat(ledger, clock.now())
    assert len(receiver.pings) == 2
    looks.look(later=61)  # the stage has not beaten for over a minute: stuck
    assert "finisher" in (looks.unwell() or "")
    clock.t += 30
    assert pinger.beat(ledger, clock.now()) == clock.now() + 1  # looks again soon
    clock.t += 30
    pinger.beat(ledger, clock.now())
    assert len(receiver.pings) == 2  # none while it is stuck
    looks.stage.heartbeat.beat()  # it makes progress again
    looks.look()
    clock.t += 1
    pinger.beat(ledger, clock.now())
    assert len(receiver.pings) == 3  # at once
    (ping, *_) = receiver.pings
    assert ping["path"] == f"/ping/{KEY}"  # nothing added: no token, no job, no query
    assert "Authorization" not in ping["headers"] and "Content-Length" not in ping["headers"]
    assert ping["headers"]["User-Agent"].startswith("ingestd/")


def test_no_ping_while_the_stages_go_unwatched(
    world: World, receiver: HttpReceiver, looks: Looks
) -> None:
    pinger = _pinger(world, receiver, looks)
    looks.look()
    looks.at += 11  # the main loop, which looks every second, has not looked for 11 s
    assert "last looked at" in (looks.unwell() or "")
    pinger.beat(world.ledger, world.clock.now())
    assert receiver.pings == []


def test_no_ping_while_a_hold_has_lasted_over_an_hour(
    world: World, receiver: HttpReceiver, looks: Looks
) -> None:
    pinger, ledger, clock = _pinger(world, receiver, looks, seconds=5), world.ledger, world.clock
    looks.look()
    ledger.hold.start(HoldRequest("video_limit", "the account is full", 60.0))
    pinger.beat(ledger, clock.now())
    assert len(receiver.pings) == 1  # a hold for a while is no reason to alert
    clock.t += 3601
    looks.look()
    pinger.beat(ledger, clock.now())
    assert len(receiver.pings) == 1
    assert "on hold (video_limit) for over an hour" in (pinger.why_unwell(ledger) or "")
    ledger.hold.clear()
    clock.t += 1
    pinger.beat(ledger, clock.now())
    assert len(receiver.pings) == 2


def test_a_refused_ping_is_logged_without_its_url(
    world: World, receiver: HttpReceiver, looks: Looks, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.status = 503
    pinger = _pinger(world, receiver, looks)
    looks.look()
    again = pinger.beat(world.ledger, world.clock.now())
    assert again == world.clock.now() + 30  # not retried sooner: the next one goes as usual
    assert len(receiver.pings) == 1
    said = capsys.readouterr().out
    assert "heartbeat not taken" in said and "heartbeat answered HTTP 503" in said
    assert KEY not in said and "127.0.0.1" not in said


def test_a_heartbeat_urls_user_info_is_sent_as_basic_credentials_and_kept_secret(
    world: World, receiver: HttpReceiver, looks: Looks
) -> None:
    """A push monitor behind Basic auth (`https://user:password@host/push`)."""
    pinger = _pinger(world, receiver, looks)
    url = receiver.http_url(f"/ping/{KEY}", userinfo="monitor:PushPassw0rd@")
    world.settings.notify.heartbeat_url = SecretStr(url)
    looks.look()
    pinger.beat(world.ledger, world.clock.now())
    (ping,) = receiver.pings
    credentials = base64.b64encode(b"monitor:PushPassw0rd").decode()
    assert ping["headers"]["Authorization"] == f"Basic {credentials}"
    assert {"PushPassw0rd", credentials} <= set(secrets(url))


def test_a_ping_to_a_listener_that_never_accepts_ends_within_the_timeout(
    world: World, receiver: HttpReceiver, looks: Looks, capsys: pytest.CaptureFixture[str]
) -> None:
    stuck = StuckListener()
    try:
        pinger = _pinger(world, receiver, looks)
        world.settings.notify.heartbeat_url = SecretStr(f"http://127.0.0.1:{stuck.port}/ping")
        world.settings.notify.timeout_seconds = 1.0
        looks.look()
        started = time.monotonic()
        pinger.beat(world.ledger, world.clock.now())
        assert time.monotonic() - started < 1.5
    finally:
        stuck.close()
    assert "heartbeat did not answer within 1 s" in capsys.readouterr().out


def test_a_ping_goes_through_the_proxy_the_environment_names(
    world: World, receiver: HttpReceiver, looks: Looks, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = ForwardProxy()
    try:
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url())
        pinger = _pinger(world, receiver, looks)
        looks.look()
        pinger.beat(world.ledger, world.clock.now())
    finally:
        proxy.server.close()
    assert len(receiver.pings) == 1
    (asked,) = proxy.asked
    assert asked["line"] == f"GET http://127.0.0.1:{receiver.port}/ping/{KEY} HTTP/1.1"


def test_the_key_in_a_heartbeat_url_is_a_secret() -> None:
    url = f"https://hc-ping.com/{KEY}"
    assert redact(f"GET {url} failed; key {KEY}", secrets(url)).count(KEY) == 0
    assert secrets("https://hc.example/ping?token=abcdef123") == ["abcdef123"]
    assert secrets("https://uptime.example/api/push") == []  # words, not keys
    assert secrets("") == []
