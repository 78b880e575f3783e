"""What Wistia's answers mean, decided once: every failed request becomes a TransientError
(try again later), a HoldError (the whole account stops: the video limit, a refused token) or
a PermanentError (this request will never succeed as it is; NotFoundError for a 404).

By meaning: the status code first, then Wistia's own words in whichever field it puts them.
A Retry-After (seconds or an HTTP date) is read here; the client pauses every request for it.
"""

from __future__ import annotations

import email.utils
import math
import time

import httpx

from ingestd.core.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    TransientError,
    VideoLimitError,
    WistiaError,
)

# Wistia's answer when the account may not hold more videos (Upload API page).
VIDEO_LIMIT_MARKER = "video limit"
# A Retry-After longer than this is taken as this (a broken header must not stop us for days).
MAX_RETRY_AFTER_SECONDS = 3600.0


def classify(response: httpx.Response) -> WistiaError | None:
    """What Wistia's answer means: None for a success, else the error to raise."""
    status = response.status_code
    if status < 400:
        return None
    message = _error_message(response)
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return TransientError(
            f"Wistia rate limit (HTTP {status})" + (f": {message}" if message else ""),
            status_code=status,
            retry_after=retry_after,
        )
    if status >= 500:
        return TransientError(
            f"Wistia server error (HTTP {status})" + (f": {message}" if message else ""),
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status in (401, 403):
        return AuthError(
            f"Wistia refused the API token (HTTP {status})",
            "check the token in Wistia's account settings (it needs upload and read "
            "permissions), update the config, then reload with SIGHUP",
            status_code=status,
        )
    if status == 400 and VIDEO_LIMIT_MARKER in message.lower():
        return VideoLimitError(
            f"Wistia: {message}",
            "upgrade the plan or delete media in Wistia; uploads resume by themselves",
            status_code=status,
        )
    if status == 404:
        return NotFoundError(
            f"Wistia: not found (HTTP 404){': ' + message if message else ''}",
            status_code=status,
        )
    return PermanentError(
        f"Wistia refused the request (HTTP {status}){': ' + message if message else ''}",
        status_code=status,
    )


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


def _error_message(response: httpx.Response) -> str:
    """Wistia's own words: the JSON `error` (or `errors`), else a short text body."""
    try:
        payload = response.json()
    except ValueError:
        text = response.text.strip()
        return "" if text.startswith("<") else text[:300]
    if isinstance(payload, dict):
        for key in ("error", "errors", "message"):
            if payload.get(key):
                value = payload[key]
                return value if isinstance(value, str) else str(value)[:300]
    return ""
