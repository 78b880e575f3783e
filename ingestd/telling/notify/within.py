"""One HTTP request that ends within its deadline whatever the other end does: the webhook's
POST (webhook.py) and the heartbeat's GET (heartbeat.py).

httpx's timeouts count per read (a receiver dripping a byte at a time never trips them) and it
has no total one; http.client's `timeout` is per socket operation too, given whole to each
address in turn while connecting, and nothing bounds its name lookup. So every step here is
bounded by what is left of one deadline:

- the name is looked up on a daemon thread, waited for at most the time left (getaddrinfo
  cannot be interrupted: an abandoned lookup ends by itself, in the resolver's own time);
- each address gets only the time left to connect;
- the socket is ours from the start, and the cut-off holds a duplicate of its descriptor
  (wrapping it in TLS moves the original's away): at the deadline it shuts the socket down,
  which ends whatever connect, TLS handshake, write or read is under way;
- http.client speaks HTTP/1.1 on that socket. No redirect is followed.

User info in the URL (`https://user:password@host/hook`) is sent as Basic credentials, as
httpx did; `secrets` lists what of it no output may show.

Proxies: HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY (either case) are honoured as httpx
honours them for the Wistia client and requests for Apprise: a server that reaches the world
through a proxy reaches the webhook the same way. An http:// URL is asked of the proxy in
absolute form; an https:// one goes through a CONNECT tunnel, TLS end to end. Only http://
proxies are spoken to (with their own user info as Proxy-Authorization); another kind is a
refusal that says so. The deadline covers the proxy too: its lookup, connect and answer.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from ingestd.telling.notify.text import MAX_ANSWER_CHARACTERS, printable

# What getaddrinfo answers: (family, type, proto, canonname, sockaddr) for each address.
Address = tuple[int, int, int, str, Any]
# Looks up a host's addresses for a port; the system's by default (a seam for tests: a
# resolver that takes its time, or answers several addresses).
Resolver = Callable[[str, int], Sequence[Address]]


def system_resolver(host: str, port: int) -> Sequence[Address]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


class Cutoff:
    """The deadline of one request: what is left of it, and at its end the socket the
    request holds is shut down (see the module's docstring)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self._cut = threading.Event()
        self._lock = threading.Lock()
        self._held: socket.socket | None = None  # a duplicate of the request's socket
        self._timer = threading.Timer(seconds, self._shut)
        self._timer.daemon = True
        self._timer.start()

    @property
    def expired(self) -> bool:
        return self._cut.is_set() or time.monotonic() >= self.deadline

    def left(self) -> float:
        """The seconds left; TimeoutError when none are."""
        left = self.deadline - time.monotonic()
        if left <= 0 or self._cut.is_set():
            raise TimeoutError("the deadline passed")
        return left

    def hold(self, sock: socket.socket) -> None:
        """From now on the deadline shuts `sock` (and whatever wraps it) down."""
        with self._lock:
            if self._cut.is_set():
                raise TimeoutError("the deadline passed")
            self._release()
            self._held = sock.dup()

    def _shut(self) -> None:
        with self._lock:
            self._cut.set()
            if self._held is not None:
                with contextlib.suppress(OSError):
                    self._held.shutdown(socket.SHUT_RDWR)

    def _release(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._release()


@dataclass(frozen=True)
class Target:
    """Where a URL sends a request: its scheme, the bare host (an IPv6 literal without its
    brackets), the port (the scheme's own when none is written), and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str  # with its query
    authorization: str | None = field(default=None, repr=False)  # from the URL's user info

    @property
    def authority(self) -> str:
        """host[:port] as the Host header writes it: brackets around an IPv6 literal, the
        port only when it is not the scheme's own."""
        host = f"[{self.host}]" if ":" in self.host else _ascii(self.host)
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


DEFAULT_PORTS = {"http": 80, "https": 443}
# A password shorter than this is not registered as a secret: it would blank common words
# out of every log line (user info is removed from every URL shown anyway).
SHORTEST_SECRET = 6


def target(url: str) -> Target:
    """The Target of an http(s) URL (settings checked its scheme and host)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    port = parts.port or DEFAULT_PORTS[scheme]
    return Target(scheme, parts.hostname or "", port, path, basic_credentials(url))


def basic_credentials(url: str) -> str | None:
    """`Basic <base64 of user:password>` from the URL's user info (percent-decoded, UTF-8),
    or None when it has none."""
    parts = urlsplit(url)
    if parts.username is None:
        return None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def secrets(url: str) -> list[str]:
    """What of `url`'s user info no output may show: the password and the credentials sent
    (their base64 reveals the password to anyone who decodes it)."""
    parts = urlsplit(url)
    credentials = basic_credentials(url)
    if credentials is None or not parts.password:
        return []
    found = [unquote(parts.password), credentials.removeprefix("Basic ")]
    return [secret for secret in found if len(secret) >= SHORTEST_SECRET]


def _ascii(host: str) -> str:
    return host if host.isascii() else host.encode("idna").decode("ascii")


class ProxyError(OSError):
    """The proxy cannot be used, or refused the tunnel."""


@dataclass(frozen=True)
class Proxy:
    """An http:// proxy: where it is, and the credentials its URL holds."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)


def proxy_for(to: Target) -> Proxy | None:
    """The proxy the environment names for `to` (HTTPS_PROXY for https, HTTP_PROXY for http,
    ALL_PROXY for both, lower case too), or None: none named, or NO_PROXY exempts its host."""
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(to.scheme) or proxies.get("all")
    if not url or urllib.request.proxy_bypass_environment(to.host, proxies):
        return None
    if "://" not in url:  # host:port, as curl and httpx take it
        url = f"http://{url}"
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ProxyError(
            f"the {to.scheme} proxy the environment names ({parts.scheme}://...) is not an "
            "http:// proxy, the only kind spoken to"
        )
    return Proxy(parts.hostname, parts.port or 80, basic_credentials(url))


def request_within(
    method: str,
    url: str,
    content: bytes | None,
    headers: dict[str, str],
    seconds: float,
    who: str = "webhook",
    *,
    resolver: Resolver = system_resolver,
) -> str | None:
    """Send `method` with `content` to `url`, all of it within `seconds`: None when a 2xx
    answered it, else why not (in words that begin with `who` and never hold the URL)."""
    try:
        to = target(url)
    except ValueError as exc:  # a port that is not one (the settings check scheme and host)
        return f"{who}: the URL cannot be used: {exc}"
    cutoff = Cutoff(seconds)
    sock: socket.socket | None = None
    try:
        proxy = proxy_for(to)
        via = (proxy.host, proxy.port) if proxy is not None else (to.host, to.port)
        sock = _connected(*via, cutoff, resolver)
        if proxy is not None and to.scheme == "https":
            _tunnel(sock, to, proxy, cutoff)
        if to.scheme == "https":
            sock = _tls(sock, to.host, cutoff)
            proxy = None  # the tunnel is the way: the request goes as to the receiver itself
        status, answer = _exchange(sock, method, to, content, headers, cutoff, proxy)
        if cutoff.expired:  # cut off mid-answer (http.client takes the cut for the end)
            raise TimeoutError
    # ValueError: a path http.client cannot send (not ASCII), or a read the cut-off closed.
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if cutoff.expired:
            return f"{who} did not answer within {seconds:g} s"
        return f"{who}: {type(exc).__name__}: {exc}"
    finally:
        cutoff.close()
        if sock is not None:
            sock.close()
    if 200 <= status < 300:
        return None
    return f"{who} answered HTTP {status}" + (f": {answer}" if answer else "")


def _resolved(host: str, port: int, cutoff: Cutoff, resolver: Resolver) -> Sequence[Address]:
    """`host`'s addresses, looked up within the time left (a literal address needs no
    lookup)."""
    with contextlib.suppress(socket.gaierror):
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    found: list[Sequence[Address] | BaseException] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            found.append(resolver(host, port))
        except Exception as exc:  # raised below, in the request's thread
            found.append(exc)
        finally:
            done.set()

    threading.Thread(target=look_up, name="resolve", daemon=True).start()
    if not done.wait(cutoff.left()):
        raise TimeoutError("the name lookup took too long")
    result = found[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _connected(host: str, port: int, cutoff: Cutoff, resolver: Resolver) -> socket.socket:
    """A socket connected to one of `host`'s addresses, in the order the lookup gave them,
    each given only the time left; held by the cut-off from its creation."""
    failure: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in _resolved(host, port, cutoff, resolver):
        sock = socket.socket(family, kind, proto)
        try:
            cutoff.hold(sock)
            sock.settimeout(cutoff.left())
            sock.connect(address)
        except OSError as exc:
            sock.close()
            if cutoff.expired:
                raise
            failure = exc
            continue
        return sock
    raise failure


def _tls(sock: socket.socket, host: str, cutoff: Cutoff) -> ssl.SSLSocket:
    """`sock` wrapped in TLS, the handshake within the time left (the cut-off's duplicate
    still reaches the socket). Verified against the system's CA store, read anew each time
    (a CA added since is trusted without a restart); SSL_CERT_FILE and SSL_CERT_DIR name
    others."""
    context = ssl.create_default_context()
    wrapped = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    try:
        wrapped.settimeout(cutoff.left())
        wrapped.do_handshake()
    except BaseException:
        wrapped.close()  # `sock` gave its descriptor to it
        raise
    return wrapped


def _tunnel(sock: socket.socket, to: Target, proxy: Proxy, cutoff: Cutoff) -> None:
    """Ask the proxy on `sock` for a tunnel to `to` (CONNECT), within the time left."""
    host = f"[{to.host}]" if ":" in to.host else _ascii(to.host)
    lines = [f"CONNECT {host}:{to.port} HTTP/1.1", f"Host: {host}:{to.port}"]
    if proxy.authorization is not None:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    sock.settimeout(cutoff.left())
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    # The proxy says nothing more until TLS begins: reading its answer takes nothing of the
    # tunnel's bytes.
    response = http.client.HTTPResponse(sock, method="CONNECT")
    try:
        response.begin()
    finally:
        response.close()  # its reader, not the socket
    if response.status != 200:
        raise ProxyError(f"the proxy answered HTTP {response.status} to CONNECT")


def _exchange(
    sock: socket.socket,
    method: str,
    to: Target,
    content: bytes | None,
    headers: dict[str, str],
    cutoff: Cutoff,
    proxy: Proxy | None,
) -> tuple[int, str]:
    """The request on `sock` (to `proxy` in absolute form, when one is given), and the
    answer's status with (when it is not a 2xx) the start of its body, printable."""
    sock.settimeout(cutoff.left())
    connection = http.client.HTTPConnection(to.host, to.port)
    connection.sock = sock  # ours: http.client never connects by itself here
    try:
        sent = {"Host": to.authority, **headers}
        if to.authorization is not None:
            sent["Authorization"] = to.authorization
        asked = to.path
        if proxy is not None:
            asked = f"{to.scheme}://{to.authority}{to.path}"
            if proxy.authorization is not None:
                sent["Proxy-Authorization"] = proxy.authorization
        connection.request(method, asked, body=content, headers=sent)
        response = connection.getresponse()
        accepted = 200 <= response.status < 300
        answer = "" if accepted else printable(response.read(MAX_ANSWER_CHARACTERS))
        return response.status, answer[:MAX_ANSWER_CHARACTERS]
    finally:
        connection.sock = None  # closed by the caller, with the cut-off's duplicate
