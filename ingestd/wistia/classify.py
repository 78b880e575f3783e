"""What Wistia's answers mean, decided once: every failed request becomes a TransientError
(try again later), a HoldError (the whole account stops: out of room, a refused token) or a
PermanentError (this request will never succeed as it is: NotFoundError for a 404,
ForbiddenError for a request the plan or the token's scope does not allow).

    status                               error             what stops
    429, 503 (Retry-After obeyed)        TransientError    every request, for the pause
    other 5xx                            TransientError    nothing: retried with backoff
    401 (a refused token)                AuthError         the account: hold `auth`
    401 `unauthorized_scope`, 403        ForbiddenError    that one request
    400 saying video/media/storage limit VideoLimitError   uploads: hold `video_limit`
    404                                  NotFoundError     that one request
    any other 4xx                        PermanentError    that one request

By meaning: the status code first, then Wistia's own words in whichever field and shape it
puts them (words_of). A Retry-After (seconds or an HTTP date) is read here; the client pauses
every request for it.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

from ingestd.core.errors import (
    AuthError,
    ForbiddenError,
    NotFoundError,
    PermanentError,
    TransientError,
    VideoLimitError,
    WistiaError,
)

# A 400 that says the account is out of room: its video (media) limit, or its storage limit.
# By meaning, in whichever words Wistia uses: the Upload API page's "exceeded its video limit",
# its help pages' "media limit" and "storage limit" (the storage refusal's exact text is not
# documented: current-api-facts.md), or a code such as `video_limit_reached`.
_OUT_OF_ROOM = re.compile(
    r"\b(?:video|media|storage)[ _-]?(?:limit|quota)|\bout[ _-]of[ _-]storage", re.IGNORECASE
)
# The Data API's 401 `code` for a token that is fine but lacks the scope for this request:
# like a 403, that request's refusal, not the token's (current-api-facts.md).
SCOPE_CODE = "unauthorized_scope"
# A Retry-After longer than this is taken as this (a broken header must not stop us for days).
MAX_RETRY_AFTER_SECONDS = 3600.0
# How much of Wistia's words a reason quotes.
MAX_MESSAGE_CHARACTERS = 300


@dataclass(frozen=True)
class Words:
    """What Wistia said besides the status: its message and its code, wherever it put them
    (`{"error"}`, `{"errors"}`, `{"message"}`, `{"code", "detail"}`, `{"error": {"code",
    "detail"}}`, or a short plain-text body)."""

    message: str = ""
    code: str = ""


def classify(response: httpx.Response) -> WistiaError | None:
    """What Wistia's answer means: None for a success, else the error to raise."""
    status = response.status_code
    if status < 400:
        return None
    words = words_of(response)
    said = f": {words.message}" if words.message else ""
    if status in (429, 503):
        return TransientError(
            f"Wistia rate limit (HTTP {status}){said}",
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 500:
        return TransientError(
            f"Wistia server error (HTTP {status}){said}",
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status == 401 and words.code != SCOPE_CODE:
        return AuthError(
            f"Wistia refused the API token (HTTP 401){said}",
            "check the token in Wistia's account settings (it needs upload and read "
            "permissions), update the config, then reload with SIGHUP",
            status_code=status,
        )
    if status in (401, 403):
        return ForbiddenError(
            f"Wistia refused this request (HTTP {status}{', ' + words.code if words.code else ''})"
            f"{said}",
            "the account's plan or the token's permissions do not include it: upgrade the plan "
            "or give the token that permission",
            status_code=status,
        )
    if status == 400 and _OUT_OF_ROOM.search(f"{words.message} {words.code}"):
        return VideoLimitError(
            f"Wistia: {words.message or words.code}",
            "upgrade the plan or delete (or archive) media in Wistia; uploads resume by themselves",
            status_code=status,
        )
    if status == 404:
        return NotFoundError(f"Wistia: not found (HTTP 404){said}", status_code=status)
    return PermanentError(f"Wistia refused the request (HTTP {status}){said}", status_code=status)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds)) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    wait = when.timestamp() - (time.time() if now is None else now)
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, wait))


def words_of(response: httpx.Response) -> Words:
    """Wistia's own words in an error answer, whatever its shape."""
    try:
        payload = response.json()
    except ValueError:
        text = response.text.strip()
        if text.startswith("<"):  # an HTML page (the Upload API's 401): nothing to quote
            return Words()
        return Words(message=text[:MAX_MESSAGE_CHARACTERS])
    message, code = _message_and_code(payload)
    return Words(message=message[:MAX_MESSAGE_CHARACTERS], code=code[:100])


def _message_and_code(payload: Any) -> tuple[str, str]:
    if isinstance(payload, str):
        return payload, ""
    if isinstance(payload, list):
        return "; ".join(str(item) for item in payload if item), ""
    if not isinstance(payload, dict):
        return "", ""
    code = payload.get("code")
    code = code if isinstance(code, str) else ""
    for key in ("error", "errors", "detail", "message"):
        value = payload.get(key)
        if not value:
            continue
        if isinstance(value, dict):  # {"error": {"code", "detail"}}
            inner, inner_code = _message_and_code(value)
            return inner, code or inner_code
        if isinstance(value, list):
            return "; ".join(str(item) for item in value if item), code
        return str(value), code
    return "", code
