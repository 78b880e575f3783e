"""Error classification, Retry-After, backoff and the rate limiter: the client's pure parts."""

from __future__ import annotations

import threading
import time
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from ingestd.config.settings import Settings, WistiaSettings
from ingestd.core.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    TransientError,
    VideoLimitError,
)
from ingestd.wistia.classify import classify, parse_retry_after
from ingestd.wistia.client import WistiaClient
from ingestd.wistia.limiter import RateLimiter
from ingestd.wistia.models import Media


@pytest.fixture
def client() -> WistiaClient:
    made = WistiaClient(WistiaSettings(), "t", RateLimiter(600), threading.Event())
    yield made
    made.close()


def response(status: int, body: object = None, headers: dict[str, str] | None = None):
    if isinstance(body, str | bytes):
        return httpx.Response(status, content=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (500, {"error": "boom"}, TransientError, "HTTP 500"),
        (502, b"<html>bad gateway</html>", TransientError, "HTTP 502"),
        (401, b"<html>no</html>", AuthError, "HTTP 401"),
        (403, {"error": "forbidden"}, AuthError, "HTTP 403"),
        (
            400,
            {"error": "This account has exceeded its video limit. Please upgrade."},
            VideoLimitError,
            "exceeded its video limit",
        ),
        (400, {"error": "Project not found"}, PermanentError, "Project not found"),
        (422, {"errors": ["name is too long"]}, PermanentError, "name is too long"),
        (404, b"", NotFoundError, "HTTP 404"),
    ],
)
def test_classification(status, body, kind, text) -> None:
    error = classify(response(status, body))
    assert type(error) is kind
    assert text in error.reason


def test_success_is_not_an_error() -> None:
    assert classify(response(200, {})) is None
    assert classify(response(201, {})) is None


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limit_answers_pause_the_whole_account(status: int) -> None:
    limiter = RateLimiter(600)
    answer = httpx.MockTransport(lambda r: response(status, {}, {"Retry-After": "7"}))
    client = WistiaClient(WistiaSettings(), "t", limiter, threading.Event(), transport=answer)
    with pytest.raises(TransientError) as raised:
        client.account(tries=1)
    client.close()
    assert raised.value.retry_after == 7.0
    assert 6.0 < limiter.paused_for <= 7.0  # every request waits, not just this one


def test_auth_error_says_how_to_fix_it() -> None:
    error = classify(response(401, b""))
    assert error.hint and "SIGHUP" in error.hint


def test_retry_after_seconds_and_http_dates() -> None:
    now = time.time()
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_rate_limiter_never_exceeds_its_budget_in_any_window() -> None:
    limiter = RateLimiter(per_minute=5, window=0.5)
    stop = threading.Event()
    sent: list[float] = []
    for _ in range(12):
        limiter.acquire(stop)
        sent.append(time.monotonic())
    for i, start in enumerate(sent):
        in_window = [t for t in sent[i:] if t < start + 0.5]
        assert len(in_window) <= 5
    assert sent[5] - sent[0] >= 0.5  # the sixth had to wait for the first to leave the window


def test_rate_limiter_pause_holds_every_caller_until_it_ends() -> None:
    limiter = RateLimiter(per_minute=100)
    limiter.pause_for(0.3)
    started = time.monotonic()
    limiter.acquire(threading.Event())
    assert time.monotonic() - started >= 0.29


def test_media_json_is_read_tolerantly() -> None:
    media = Media.model_validate(
        {
            "id": 1,
            "hashed_id": "abc",
            "status": 2,
            "brand_new_field": {"x": 1},
            "created_at": "2026-01-01T00:00:00+00:00",
        }
    )
    assert media.state == "ready" and media.created_epoch == 1767225600.0
    assert Media.model_validate({"id": 2, "hashed_id": "d", "status": "processing"}).state == (
        "processing"
    )


def test_token_is_sent_only_to_wistias_origins() -> None:
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers.get("Authorization")
        return httpx.Response(200, json={})

    settings = WistiaSettings(
        upload_url="https://upload.wistia.com/", api_url="https://api.wistia.com/v1/"
    )
    client = WistiaClient(settings, "sekret", RateLimiter(600), threading.Event())
    client._http._transport = httpx.MockTransport(handler)
    for url in (
        "https://upload.wistia.com/",
        "https://api.wistia.com/v1/x",
        "https://elsewhere.example/",
    ):
        client._http.get(url)
    assert seen == {
        "upload.wistia.com": "Bearer sekret",
        "api.wistia.com": "Bearer sekret",
        "elsewhere.example": None,
    }


def test_polls_take_at_most_their_share_of_the_budget() -> None:
    from ingestd.wistia.limiter import POLL_SHARE

    client = WistiaClient(
        Settings(watch_dir=Path("/w")).wistia, "t", RateLimiter(600), threading.Event(),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=[])),
    )  # fmt: skip
    assert client.poll_budget.per_minute == 600 * POLL_SHARE == 150
    client.close()
