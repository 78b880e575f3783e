"""The webhook (`notify.webhook_url`): one POST of the notification's body, signed with
`notify.webhook_secret` (X-Ingestd-Signature: sha256=<hex HMAC-SHA256 of the body>), answered
within `notify.timeout_seconds` in all, or cut off (within.py, which the heartbeat's GET
shares). It never carries the Wistia token: this is not the Wistia client.
"""

from __future__ import annotations

import hashlib
import hmac

from ingestd import __version__
from ingestd.telling.notify.within import request_within


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(url: str, body: str, event: str, secret: str, seconds: float) -> str | None:
    """Post a notification; None when the webhook took it (2xx), else why not."""
    content = body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"ingestd/{__version__}",
        "X-Ingestd-Event": event,
    }
    if secret:
        headers["X-Ingestd-Signature"] = signature(secret, content)
    return request_within("POST", url, content, headers, seconds)
