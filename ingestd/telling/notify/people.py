"""Messages for people (`notify.urls`): each Apprise URL a receiver of its own.

Apprise turns a URL into a service (Slack, Teams through `workflows://`, email through
`mailto://`, Telegram, Discord, ntfy and about a hundred more). It is imported here only, and
only once URLs are set: `ingestd status` never pays for it. One `Apprise` object per URL, so a
refusal is that URL's alone.

Names. A URL is never stored, logged or shown: it holds secrets. Each is a receiver named
`<kind>#<n>` (`slack#1`, `mailto#2`): the service as Apprise knows it (a Slack webhook pasted
as `https://hooks.slack.com/...` is `slack`) and its place among the URLs of that kind.

Secrets. What Apprise itself masks when it prints a URL (`url(privacy=True)`: tokens,
passwords, a Slack or Discord webhook's path), the password in its user info, and query values
that carry keys or headers: `secrets` lists them, and the daemon registers them with
logs.add_secret, so no log line, reason or status shows them.

Deadline. Apprise's own time limit runs the call on a shared pool of threads that the
interpreter waits for at exit: a hung mail server would hold up the daemon's stop. So each
attempt runs on a daemon thread of its own, with Apprise's limit off, and is waited for at most
`notify.timeout_seconds`; an attempt still running then is a refusal, and its receiver gets no
new attempt until that one has ended: at most one abandoned attempt per URL. The service's
socket timeouts are lowered to the same seconds, so an abandoned attempt soon ends by itself.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ingestd import logs
from ingestd.config.settings import url_scheme
from ingestd.telling.notify.text import MAX_ANSWER_CHARACTERS, printable

if TYPE_CHECKING:
    import apprise

# A piece Apprise masks shorter than this is not registered: it would blank common words out
# of every log line (and any URL's user info is removed from every output anyway).
SHORTEST_SECRET = 6
# Query keys whose values are secrets whatever Apprise says: headers (json://...?-X-Key=...)
# and payload fields (+, :) of the generic services, and anything named like a key.
_SECRET_QUERY_KEY = re.compile(r"^[-+:]|key|token|secret|pass|auth|sig", re.IGNORECASE)
_PIECES = re.compile(r"[/:@?&=#,]+")


@dataclass(frozen=True)
class Receiver:
    """A URL of `notify.urls` as a receiver: its name, the service, and the URL itself."""

    label: str  # slack#1: what the ledger, the logs and status say
    service: str  # Apprise's name for the service: "Slack", "E-Mail"
    number: int  # its place in notify.urls, counting from 1
    url: str = field(repr=False)  # the secret: only Apprise gets it


@dataclass(frozen=True)
class Unreadable:
    """A URL Apprise cannot send to, named by its place (counting from 1) and its scheme."""

    number: int
    scheme: str | None


def _apprise() -> Any:
    import apprise  # only where messages are sent: `status` never imports it

    return apprise


def _asset() -> apprise.AppriseAsset:
    """Apprise's settings for ingestd: its name on messages, nothing stored on disk, and no
    time limit of Apprise's own (the Messenger's deadline is the one; see the docstring)."""
    return _apprise().AppriseAsset(
        app_id="ingestd",
        app_desc="ingestd: a watch folder for Wistia",
        storage_mode="memory",
        service_timeout=0,
    )


def _service(url: str) -> Any | None:
    """Apprise's service for `url`, or None when it cannot send to it."""
    return _apprise().Apprise.instantiate(url, asset=_asset())


def _kind(service: Any) -> str:
    """The service's scheme as Apprise names it (its plain one first: `mailto`, not
    `mailtos`)."""
    for names in (service.protocol, service.secure_protocol):
        if isinstance(names, str) and names:
            return names.lower()
        if isinstance(names, list | tuple) and names:
            return str(names[0]).lower()
    return "apprise"


def read(urls: Sequence[str]) -> tuple[list[Receiver], list[Unreadable]]:
    """The receivers `urls` make, in order, and the ones Apprise cannot send to."""
    receivers: list[Receiver] = []
    unreadable: list[Unreadable] = []
    counts: dict[str, int] = {}
    for number, url in enumerate(urls, 1):
        service = _service(url)
        if service is None:
            unreadable.append(Unreadable(number, url_scheme(url)))
            continue
        kind = _kind(service)
        counts[kind] = counts.get(kind, 0) + 1
        name = str(service.service_name or kind)
        receivers.append(Receiver(f"{kind}#{counts[kind]}", name, number, url))
    return receivers, unreadable


def describe(unreadable: Unreadable, total: int) -> str:
    """Which URL Apprise cannot send to, without showing it."""
    scheme = f"{unreadable.scheme}://..." if unreadable.scheme else "it"
    return (
        f"notify.urls: Apprise cannot send to URL {unreadable.number} of {total} ({scheme}; "
        "the URL is not shown: it holds secrets)"
    )


def secrets(url: str) -> list[str]:
    """The pieces of `url` no output may show (see the module's docstring)."""
    found: set[str] = set()
    parts = urlsplit(url)
    try:
        password = parts.password
    except ValueError:
        password = None
    if password:
        found.add(unquote(password))
    for key, value in parse_qsl(parts.query):
        if value and _SECRET_QUERY_KEY.search(key):
            found.add(value)
    with logs.silenced("apprise"):  # it would quote a URL it cannot read, secrets and all
        service = _service(url)
    if service is not None:
        shown = set(_pieces(service.url(privacy=True)))
        found.update(p for p in _pieces(service.url(privacy=False)) if p not in shown)
    else:  # Apprise cannot tell what is secret in it (and may quote it): every piece is
        found.update(_pieces(url))
    return sorted(s for s in found if len(s) >= SHORTEST_SECRET)


def _pieces(url: str) -> list[str]:
    """The pieces of a URL between its delimiters, unquoted (a Telegram bot token is quoted
    in the URL Apprise prints: `123%3AAbC`)."""
    _, _, rest = url.partition("://")
    return [unquote(piece) for piece in _PIECES.split(rest) if piece]


class Messenger:
    """Sends messages, each URL through its own Apprise object, each attempt bounded."""

    def __init__(self) -> None:
        # label -> (url, its Apprise object, the service in it)
        self._apprises: dict[str, tuple[str, Any, Any]] = {}
        self._running: dict[str, threading.Thread] = {}  # label -> an abandoned attempt

    def send(self, receiver: Receiver, title: str, body: str, seconds: float) -> str | None:
        """None when the service took the message, else why not; within `seconds`."""
        running = self._running.get(receiver.label)
        if running is not None and running.is_alive():
            return f"{receiver.service}: the last attempt has not ended; not tried again yet"
        sender = self._apprise_for(receiver, seconds)
        if sender is None:  # the daemon refuses such a URL at start and on reload
            return f"{receiver.label}: Apprise cannot send to this URL"
        outcome: list[str | None] = []

        def attempt() -> None:
            try:
                result = sender.notify(
                    body=body, title=title, body_format=_apprise().NotifyFormat.TEXT
                )
                outcome.append(None if result else _refusal(receiver, result))
            except Exception as exc:  # a service's own bug: this attempt's, not the lane's
                outcome.append(f"{receiver.service}: {type(exc).__name__}: {exc}")

        thread = threading.Thread(target=attempt, name=f"message-{receiver.label}", daemon=True)
        thread.start()
        thread.join(seconds)
        if thread.is_alive():
            self._running[receiver.label] = thread
            return f"{receiver.service} did not answer within {seconds:g} s"
        self._running.pop(receiver.label, None)
        return outcome[0] if outcome else f"{receiver.service}: the attempt ended without a word"

    def _apprise_for(self, receiver: Receiver, seconds: float) -> Any | None:
        """The URL's own Apprise object, made once (again when its URL changes), its socket
        timeouts no longer than an attempt may take; None when Apprise cannot send to it."""
        known = self._apprises.get(receiver.label)
        if known is None or known[0] != receiver.url:
            service = _service(receiver.url)
            if service is None:
                return None
            sender = _apprise().Apprise(asset=_asset())
            sender.add(service)
            known = (receiver.url, sender, service)
            self._apprises[receiver.label] = known
        _, sender, service = known
        service.socket_connect_timeout = min(service.socket_connect_timeout, seconds)
        service.socket_read_timeout = min(service.socket_read_timeout, seconds)
        return sender


def _refusal(receiver: Receiver, result: Any) -> str:
    """Why the service refused, in Apprise's words for this very call (its last warning)."""
    said = [entry.message for entry in result.logs() if entry.message]
    text = printable(said[-1].encode()) if said else "refused the message"
    return f"{receiver.service}: {text[: MAX_ANSWER_CHARACTERS * 2]}"
