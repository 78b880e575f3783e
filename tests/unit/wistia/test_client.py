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
    ForbiddenError,
    NotFoundError,
    PermanentError,
    TransientError,
    VideoLimitError,
    WistiaError,
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


LIMIT_TEXT = "This account has exceeded its video limit. Please upgrade to upload more videos."


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (500, {"error": "boom"}, TransientError, "HTTP 500"),
        (502, b"<html>bad gateway</html>", TransientError, "HTTP 502"),
        (429, b"Rate limit exceeded", TransientError, "Rate limit exceeded"),
        (429, {"error": "Rate limit exceeded"}, TransientError, "Rate limit exceeded"),
        # The Upload API's 401 is an HTML page; the Data API's is JSON with a code.
        (401, b"<html>no</html>", AuthError, "HTTP 401"),
        (
            401,
            {"code": "unauthorized_credentials", "error": "Invalid credentials"},
            AuthError,
            "Invalid credentials",
        ),
        # A token without the scope, and a plan without the feature: that request only.
        (
            401,
            {"code": "unauthorized_scope", "error": "The token lacks the scope"},
            ForbiddenError,
            "unauthorized_scope",
        ),
        (
            403,
            {"error": "Captions are not available on your current plan"},
            ForbiddenError,
            "Captions are not available",
        ),
        (403, {"code": "forbidden", "detail": "No swap here"}, ForbiddenError, "No swap here"),
        (403, b"", ForbiddenError, "HTTP 403"),
        # Out of room, in each shape and wording Wistia uses.
        (400, {"error": LIMIT_TEXT}, VideoLimitError, "exceeded its video limit"),
        (400, {"code": "upload_failed", "detail": LIMIT_TEXT}, VideoLimitError, "video limit"),
        (
            400,
            {"error": {"code": "upload_failed", "detail": LIMIT_TEXT}},
            VideoLimitError,
            "video limit",
        ),
        (400, {"errors": ["Media limit reached"]}, VideoLimitError, "Media limit reached"),
        (
            400,
            {"error": "This account has exceeded its storage limit."},
            VideoLimitError,
            "storage limit",
        ),
        (400, {"code": "storage_limit_reached"}, VideoLimitError, "storage_limit_reached"),
        # Anything else is that request's refusal, with Wistia's words.
        (
            400,
            {"error": "The project_id given is not valid for this account."},
            PermanentError,
            "project_id given is not valid",
        ),
        (400, {"code": "bad_request", "detail": "name is too long"}, PermanentError, "too long"),
        (422, {"errors": ["name is too long"]}, PermanentError, "name is too long"),
        (404, b"", NotFoundError, "HTTP 404"),
    ],
)
def test_classification(status, body, kind, text) -> None:
    error = classify(response(status, body))
    assert type(error) is kind
    assert text in error.reason


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, {"code": "unauthorized_credentials", "error": "Invalid credentials"}, AuthError),
        (401, {"code": "unauthorized_scope", "error": "no scope"}, ForbiddenError),
        (403, {"error": "Customizations are not available on your current plan"}, ForbiddenError),
        (400, {"code": "upload_failed", "detail": LIMIT_TEXT}, VideoLimitError),
        (429, b"Rate limit exceeded", TransientError),
    ],
)
def test_the_client_raises_what_each_answer_means(status, body, kind) -> None:
    """Through the real client and httpx: one try, the class the answer means."""
    answer = httpx.MockTransport(lambda request: response(status, body))
    client = WistiaClient(
        WistiaSettings(), "t", RateLimiter(600), threading.Event(), transport=answer
    )
    try:
        with pytest.raises(WistiaError) as raised:
            client.account(tries=1)
    finally:
        client.close()
    assert type(raised.value) is kind


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


@pytest.mark.parametrize(
    ("answer", "limit", "room"),
    [
        ({"mediaCount": 50, "videoLimit": 50}, 50, "none"),
        ({"mediaCount": 51, "videoLimit": 50}, 50, "none"),
        ({"mediaCount": 49, "videoLimit": 50}, 50, "room"),
        ({"mediaCount": 49, "videoLimit": None}, None, "unknown"),  # no limit on the plan
        ({"mediaCount": 49, "videoLimit": 0}, None, "unknown"),
        ({"mediaCount": 49}, None, "unknown"),
        ({"mediaCount": "49", "videoLimit": "50"}, 50, "room"),
        ({"mediaCount": True, "videoLimit": 50}, 50, "unknown"),
    ],
)
def test_the_account_says_whether_there_is_room(answer: dict, limit, room: str) -> None:
    from ingestd.wistia.models import Account

    account = Account.model_validate({"name": "A", **answer})
    assert account.limit == limit and account.room == room


@pytest.mark.parametrize("key", ["hashedId", "hashed_id"])
def test_a_projects_id_is_read_under_either_key(key: str) -> None:
    from ingestd.wistia.models import Media, Project

    assert Project.model_validate({"id": 1, "name": "P", key: "abc"}).hashed_id == "abc"
    media = Media.model_validate({"id": 2, "hashed_id": "m", "project": {key: "abc"}})
    assert media.project_hashed_id == "abc"


def test_swap_goes_to_the_newer_api_pinned_or_falls_back_to_v1() -> None:
    """Unsure whether v1 serves Swap (current-api-facts.md): swap_url first, with the
    release pinned; where it answers 404 while the original is there, api_url."""
    seen: list[httpx.Request] = []
    modern_serves = True

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        job = {"background_job_status": {"id": 7, "status": "queued"}}
        if path == "/modern/medias/K/swap":
            return httpx.Response(200, json=job) if modern_serves else httpx.Response(404)
        if path == "/v1/medias/K.json":
            return httpx.Response(200, json={"id": 9, "hashed_id": "K"})
        if path in ("/v1/medias/K/swap.json", "/v1/background_job_status/7.json"):
            return httpx.Response(200, json=job)
        return httpx.Response(404)

    settings = WistiaSettings(api_version="2026-03")
    client = WistiaClient(
        settings, "t", RateLimiter(600), threading.Event(), transport=httpx.MockTransport(answer)
    )
    try:
        background, api = client.swap("K", "R")
        assert (background.id, api) == ("7", "modern")
        assert seen[-1].headers["X-Wistia-API-Version"] == "2026-03"
        assert seen[-1].headers["Authorization"] == "Bearer t"
        modern_serves = False
        background, api = client.swap("K", "R")
        assert (background.id, api) == ("7", "v1")
        assert client.background_job("7", "v1").state == "queued"
        assert seen[-1].url.path == "/v1/background_job_status/7.json"
    finally:
        client.close()
