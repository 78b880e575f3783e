"""One request within its deadline (the webhook's POST, the heartbeat's GET), against real
servers on loopback that misbehave at each step: a name lookup that takes its time, addresses
that never accept, a TLS handshake or an answer dripped a byte at a time. Each attempt ends at
its deadline, plus a small margin for a busy machine. The only seam is the resolver, a plain
function: a slow DNS server cannot be set up on loopback without changing the machine's."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ingestd.telling.notify.within import Address, Target, request_within, secrets, target
from tests.conftest import wait_until
from tests.receivers import (
    DrippingServer,
    ForwardProxy,
    HttpReceiver,
    StuckListener,
    tls_for_loopback,
)

DEADLINE = 1.0
MARGIN = 0.5  # a loaded machine's timers; the defects overran by seconds


@pytest.fixture(autouse=True)
def _no_proxy_of_the_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the proxies a test names: loopback is never sent to the machine's own."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        for spelled in (name, name.lower()):
            monkeypatch.delenv(spelled, raising=False)


@pytest.fixture
def stuck() -> Iterator[StuckListener]:
    made = StuckListener()
    yield made
    made.close()


@pytest.fixture(scope="module")
def loopback_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    return tls_for_loopback(tmp_path_factory.mktemp("tls"))


def _timed(url: str, **within: object) -> tuple[str | None, float]:
    started = time.monotonic()
    refused = request_within("POST", url, b"{}", {}, DEADLINE, **within)  # type: ignore[arg-type]
    return refused, time.monotonic() - started


class SlowResolver:
    """A name lookup that answers `addresses` after `seconds`, or sooner when released, as a
    resolver whose DNS server is slow to answer, or does not."""

    def __init__(self, addresses: Sequence[Address] = (), seconds: float = 30.0) -> None:
        self.addresses = addresses
        self.seconds = seconds
        self.released = threading.Event()

    def __call__(self, host: str, port: int) -> Sequence[Address]:
        self.released.wait(self.seconds)
        return self.addresses


def _loopback(port: int) -> Address:
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))


def test_a_name_lookup_that_takes_its_time_ends_the_attempt_at_the_deadline() -> None:
    resolver = SlowResolver()
    try:
        refused, took = _timed("http://hooks.example.test/hook", resolver=resolver)
    finally:
        resolver.released.set()
    assert refused == "webhook did not answer within 1 s"
    assert took < DEADLINE + MARGIN, f"took {took:.2f} s"


def test_a_listener_that_never_accepts_ends_the_attempt_at_the_deadline(
    stuck: StuckListener,
) -> None:
    refused, took = _timed(f"http://127.0.0.1:{stuck.port}/hook")
    assert refused == "webhook did not answer within 1 s"
    assert took < DEADLINE + MARGIN, f"took {took:.2f} s"


def test_every_address_shares_the_one_deadline(stuck: StuckListener) -> None:
    """Three addresses, none accepting: the deadline is the attempt's, not each address's."""
    resolver = SlowResolver([_loopback(stuck.port)] * 3)
    resolver.released.set()
    refused, took = _timed("http://hooks.example.test/hook", resolver=resolver)
    assert refused == "webhook did not answer within 1 s"
    assert took < DEADLINE + MARGIN, f"took {took:.2f} s"


@pytest.mark.parametrize("tls", [True, False], ids=["tls-handshake", "answer"])
def test_a_dripping_server_is_cut_off_at_the_deadline_and_its_connection_closed(
    tls: bool,
) -> None:
    drip = DrippingServer(tls=tls)
    try:
        scheme = "https" if tls else "http"
        refused, took = _timed(f"{scheme}://127.0.0.1:{drip.port}/hook")
        assert refused == "webhook did not answer within 1 s"
        assert took < DEADLINE + MARGIN, f"took {took:.2f} s"
        (connection,) = drip.connections
        wait_until(lambda: connection["left"] is not None, timeout=2, what="the client gone")
    finally:
        drip.close()


def test_a_tls_handshake_gets_only_what_is_left_of_the_deadline() -> None:
    """The lookup took most of the deadline: the handshake that follows is cut at the
    deadline, not given a whole timeout of its own."""
    drip = DrippingServer(tls=True)
    try:
        resolver = SlowResolver([_loopback(drip.port)], seconds=0.9 * DEADLINE)
        refused, took = _timed("https://hooks.example.test/hook", resolver=resolver)
        assert refused == "webhook did not answer within 1 s"
        assert took < DEADLINE + MARGIN, f"took {took:.2f} s"
        assert len(drip.connections) == 1  # the handshake had begun
    finally:
        drip.close()


def test_an_https_receiver_is_verified_against_the_authority_ssl_cert_file_names(
    loopback_tls: tuple[ssl.SSLContext, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    context, authority = loopback_tls
    receiver = HttpReceiver(tls=context)
    try:
        refused = request_within("POST", receiver.http_url("/hook"), b"{}", {}, 5.0)
        assert refused is not None and "CERTIFICATE_VERIFY_FAILED" in refused  # not trusted
        monkeypatch.setenv("SSL_CERT_FILE", str(authority))
        assert request_within("POST", receiver.http_url("/hook"), b"{}", {}, 5.0) is None
        assert len(receiver.messages) == 1
    finally:
        receiver.close()


def test_a_url_that_cannot_be_sent_is_a_refusal_not_an_error() -> None:
    """Settings check a webhook's scheme and host only: the rest is said as a reason (the
    heartbeat's stage would otherwise end, and a notification count as a bug)."""
    refused = request_within("GET", "http://127.0.0.1:99999/ping", None, {}, 1.0)
    assert refused is not None and refused.startswith("webhook: the URL cannot be used: Port")
    receiver = HttpReceiver()
    try:
        refused = request_within("GET", receiver.http_url("/pïng"), None, {}, 1.0, who="heartbeat")
    finally:
        receiver.close()
    assert refused is not None and refused.startswith("heartbeat: UnicodeEncodeError")


def test_where_a_url_sends_its_request() -> None:
    assert target("http://[::1]/hook") == Target("http", "::1", 80, "/hook")
    assert target("https://[::1]/hook?a=1") == Target("https", "::1", 443, "/hook?a=1")
    assert target("HTTPS://Hooks.Example:8443") == Target("https", "hooks.example", 8443, "/")
    assert target("http://[::1]/").authority == "[::1]"
    assert target("https://[::1]:8443/").authority == "[::1]:8443"
    assert target("https://bücher.example/").authority == "xn--bcher-kva.example"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_an_ipv6_literal_is_reached_with_its_port_and_named_in_brackets() -> None:
    receiver = HttpReceiver(host="::1")
    try:
        assert request_within("POST", receiver.http_url("/hook"), b"{}", {}, 5.0) is None
        (request,) = receiver.requests
        assert request["headers"]["Host"] == f"[::1]:{receiver.port}"
    finally:
        receiver.close()


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_an_ipv6_literal_without_a_port_goes_to_port_80() -> None:
    try:
        receiver = HttpReceiver(host="::1", port=80)
    except OSError as exc:  # taken, or not ours to bind (not root)
        pytest.skip(f"port 80 on ::1 cannot be had here: {exc}")
    try:
        assert request_within("POST", "http://[::1]/hook", b"{}", {}, 5.0) is None
        (request,) = receiver.requests
        assert request["headers"]["Host"] == "[::1]"
    finally:
        receiver.close()


def test_a_urls_user_info_is_sent_as_basic_credentials_and_is_a_secret() -> None:
    receiver = HttpReceiver()
    try:
        with_user = receiver.http_url("/hook", userinfo="hook-user:p%40ss%20w0rd@")
        assert request_within("POST", with_user, b"{}", {}, 5.0) is None
        assert request_within("POST", receiver.http_url("/hook"), b"{}", {}, 5.0) is None
        sent, plain = (request["headers"] for request in receiver.requests)
        credentials = base64.b64encode(b"hook-user:p@ss w0rd").decode()
        assert sent["Authorization"] == f"Basic {credentials}"
        assert "Authorization" not in plain
    finally:
        receiver.close()
    assert secrets(with_user) == ["p@ss w0rd", credentials]
    assert secrets(receiver.http_url("/hook")) == []
    assert secrets(receiver.http_url("/hook", userinfo="user-only@")) == []


# --- through the proxy the environment names, as httpx and requests go ------------------------


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    made = ForwardProxy()
    yield made
    made.server.close()


def test_an_http_webhook_goes_through_http_proxy_with_its_credentials(
    proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url("squid:Pr0xyPassw0rd@"))
    receiver = HttpReceiver()
    try:
        assert request_within("POST", receiver.http_url("/hook"), b"{}", {}, 5.0) is None
        assert len(receiver.messages) == 1
    finally:
        receiver.close()
    (asked,) = proxy.asked
    assert asked["line"] == f"POST http://127.0.0.1:{receiver.port}/hook HTTP/1.1"
    credentials = base64.b64encode(b"squid:Pr0xyPassw0rd").decode()
    assert asked["headers"]["Proxy-Authorization"] == f"Basic {credentials}"


def test_an_https_webhook_goes_through_a_connect_tunnel_tls_end_to_end(
    proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    loopback_tls: tuple[ssl.SSLContext, Path],
) -> None:
    context, authority = loopback_tls
    monkeypatch.setenv("SSL_CERT_FILE", str(authority))
    monkeypatch.setenv("https_proxy", proxy.url())
    receiver = HttpReceiver(tls=context)
    try:
        assert request_within("POST", receiver.http_url("/hook"), b"{}", {}, 5.0) is None
        assert len(receiver.messages) == 1
    finally:
        receiver.close()
    (asked,) = proxy.asked
    assert asked["line"] == f"CONNECT 127.0.0.1:{receiver.port} HTTP/1.1"


def test_no_proxy_exempts_a_host_and_a_refused_tunnel_says_so(
    proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALL_PROXY", proxy.url())
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    receiver = HttpReceiver()
    try:
        assert request_within("POST", receiver.http_url("/hook"), b"{}", {}, 5.0) is None
    finally:
        receiver.close()
    assert proxy.asked == [] and len(receiver.messages) == 1
    monkeypatch.delenv("NO_PROXY")
    proxy.status = 407
    refused = request_within("POST", "https://hooks.example.test/hook", b"{}", {}, 5.0)
    assert refused == "webhook: ProxyError: the proxy answered HTTP 407 to CONNECT"
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    refused = request_within("POST", "https://hooks.example.test/hook", b"{}", {}, 5.0)
    assert refused is not None and "(socks5://...) is not an http:// proxy" in refused


def test_a_proxy_that_drips_its_answer_to_connect_is_cut_at_the_deadline(
    proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    drip = DrippingServer()
    monkeypatch.setenv("HTTPS_PROXY", f"127.0.0.1:{drip.port}")
    try:
        refused, took = _timed("https://hooks.example.test/hook")
        assert refused == "webhook did not answer within 1 s"
        assert took < DEADLINE + MARGIN, f"took {took:.2f} s"
    finally:
        drip.close()
