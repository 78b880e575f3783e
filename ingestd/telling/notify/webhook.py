"""The webhook (`notify.webhook_url`): one POST of the notification's body, signed with
`notify.webhook_secret` (X-Ingestd-Signature: sha256=<hex HMAC-SHA256 of the body>), answered
within `notify.timeout_seconds` in all, or cut off. It never carries the Wistia token: this is
not the Wistia client, and it adds no auth of its own. The heartbeat's GET (heartbeat.py)
goes out under the same deadline (`request_within`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import socket
import threading
from urllib.parse import urlsplit

from ingestd import __version__
from ingestd.telling.notify.text import MAX_ANSWER_CHARACTERS, printable


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


def request_within(
    method: str,
    url: str,
    content: bytes | None,
    headers: dict[str, str],
    seconds: float,
    who: str = "webhook",
) -> str | None:
    """Send `method` with `content` to `url`, all of it within `seconds`: None when a 2xx
    answered it, else why not (in words that begin with `who` and never hold the URL).
    httpx's timeouts count per read (a receiver dripping a byte at a time never trips them)
    and it has no total one, so this is the standard library's client on a socket of our
    own: at the deadline the socket is shut down, which ends whatever read or write is under
    way, and the connection is closed. No redirect is followed."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=seconds)
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    cutoff = threading.Timer(seconds, cut)
    cutoff.daemon = True
    cutoff.start()
    try:
        connection.connect()
        if expired.is_set():  # the deadline passed while connecting: cut() found no socket
            raise TimeoutError
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=content, headers=headers)
        response = connection.getresponse()
        accepted = 200 <= response.status < 300
        answer = "" if accepted else printable(response.read(MAX_ANSWER_CHARACTERS))
        if expired.is_set():  # cut off mid-answer (http.client takes the cut for the end)
            raise TimeoutError
        if accepted:
            return None
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            return f"{who} did not answer within {seconds:g} s"
        return f"{who}: {type(exc).__name__}: {exc}"
    finally:
        cutoff.cancel()
        connection.close()
    answer = answer[:MAX_ANSWER_CHARACTERS]
    return f"{who} answered HTTP {response.status}" + (f": {answer}" if answer else "")
