"""One redaction for every way text leaves ingestd: log lines, the ledger's notes and reasons,
`status`, command errors, exception text.

Removed from any text:
- the API token, and any 16 consecutive characters of it (a file that quotes part of the
  token must not hand out most of it);
- the user info (`user:password@`) and the query string of any URL: presigned URLs carry their
  credentials in the query, and imported URLs may carry them in front of the host.

Pure functions: the secrets a process knows are kept by `logs` (its one piece of
process-wide state, with the logging setup), which calls `redact(text, secrets)` for every
output; URLs need no registration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
# How many consecutive characters of a secret are too many to show.
WINDOW = 16

# A URL: scheme, then optional user info, host, path, query, fragment. Each part stops at
# whitespace, quotes, angle brackets and backslashes, so a URL inside a sentence or a JSON
# string is found, and the JSON escape after it (`\"`) is left whole.
_URL = re.compile(
    r"""(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]{0,20}://)"""
    r"""(?P<userinfo>[^\s/?#"'<>\\]*@)?"""  # up to the last @ of the authority
    r"""(?P<rest>[^\s?#"'<>\\]*)"""
    r"""(?P<query>\?[^\s#"'<>\\]*)?"""
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without `secrets` (nor any WINDOW consecutive characters of one), URL
    credentials and URL query strings."""
    if "://" in text:
        text = _URL.sub(_without_credentials, text)
    for secret in secrets:
        text = _without(secret, text)
    return text


def _without_credentials(match: re.Match[str]) -> str:
    userinfo = f"{REDACTED}@" if match.group("userinfo") else ""
    query = f"?{REDACTED}" if match.group("query") else ""
    return match.group("scheme") + userinfo + match.group("rest") + query


def _without(secret: str, text: str) -> str:
    """Every stretch of `text` made of windows of `secret` becomes one REDACTED."""
    size = min(WINDOW, len(secret))
    spans: list[tuple[int, int]] = []
    for start in range(len(secret) - size + 1):
        window = secret[start : start + size]
        found = text.find(window)
        while found != -1:
            spans.append((found, found + size))
            found = text.find(window, found + 1)
    if not spans:
        return text
    spans.sort()
    merged = [spans[0]]
    for begin, end in spans[1:]:
        if begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    pieces, last = [], 0
    for begin, end in merged:
        pieces += [text[last:begin], REDACTED]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)
