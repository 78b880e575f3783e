"""HTTP for people and scrapers, served from child processes: the status page and /metrics.

No number of clients on either port may take the descriptors, threads or CPU the uploads
need. So neither is served from the daemon's process: each runs in a process of its own,
spawned by the daemon (a fresh interpreter: no threads, no ledger connection inherited),
served by waitress, whose event loop reads requests before any thread sees them. In that
process:

- connections are capped below its own descriptor limit (waitress stops accepting at the
  cap, so a flood waits in the kernel's queue instead of failing accept() in a loop);
- an idle connection is cut off after IDLE_SECONDS, looked for every few seconds;
- headers are bounded and bodies refused;
- it asks for a lower CPU priority, so that when the cores are busy the uploads come first
  (refused quietly where the unit's syscall filter forbids it);
- it ends when the daemon ends, however it ends (a kill -9 included).

The daemon binds each socket itself (a taken port is one line at start-up, and a restart of
the child never loses the port), holds nothing but that socket, and restarts a child that
died, after a pause.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

from ingestd import logs
from ingestd.config.settings import parse_listen
from ingestd.core.errors import IngestdError

log = logs.get("ingestd.serving")

IDLE_SECONDS = 15  # a connection that sends nothing for this long is closed
CLEANUP_SECONDS = 5  # how often idle connections are looked for
# Descriptors a served process keeps for itself (its ledger reads, logs, the pipe).
RESERVED_DESCRIPTORS = 64
LOWER_PRIORITY = 10  # os.nice(): the uploads' process keeps the CPU first


def listen(address: str, key: str) -> socket.socket:
    """A listening socket for `address` ("host:port"), bound by the daemon itself."""
    host, port = parse_listen(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise IngestdError(
            f"{key}: cannot listen on {address}: {exc.strerror or exc}",
            f"choose a free port, or leave {key} empty",
        ) from None
    return sock


def address_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


class ServedProcess:
    """A child process serving one socket, started and watched by the daemon: restarted
    (after a pause) if it dies, ended when the daemon stops. `target(sock, daemon_pid,
    *args)` runs in the child."""

    RESTART_SECONDS = 5.0

    def __init__(
        self,
        name: str,
        sock: socket.socket,
        target: Callable[..., None],
        args: Callable[[], tuple[Any, ...]],
    ) -> None:
        self.name = name
        self.sock = sock
        self.target = target
        self.args = args  # called at each start: a restart may need fresh arguments
        self.process: Any = None
        self.restart_at = 0.0

    def start(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads
        self.process = context.Process(
            target=self.target,
            args=(self.sock, os.getpid(), *self.args()),
            name=self.name,
            daemon=True,
        )
        with _without_private_variables():
            self.process.start()

    def check(self, now: float) -> None:
        """From the daemon's main loop: a child that died is started again, after a pause."""
        if self.process is None or self.process.is_alive():
            return
        if self.restart_at == 0.0:
            log.error(
                "a serving process ended; it is restarted",
                process=self.name,
                code=self.process.exitcode,
            )
            self.restart_at = now + self.RESTART_SECONDS
        elif now >= self.restart_at:
            self.restart_at = 0.0
            self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(3)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(3)
        self.sock.close()


# --- in the child ---------------------------------------------------------------------------


def become_served_process(
    daemon: int, log_level: str, log_format: str, secrets: tuple[str, ...]
) -> None:
    """What every served process does first: end with the daemon, log like it, redact what
    it redacts, take every descriptor it may, and step back on the CPU."""
    _end_with(daemon)
    logs.configure(level=log_level, fmt=log_format, under_journald=logs.under_journald())
    for secret in secrets:
        logs.add_secret(secret)
    _raise_descriptor_limit()
    with contextlib.suppress(OSError):  # the unit's syscall filter may refuse it: fine
        os.nice(LOWER_PRIORITY)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))


def serve(app: Any, sock: socket.socket, *, most_connections: int, threads: int = 4) -> None:
    """Serve `app` on `sock` with waitress, at most `most_connections` open at once (fewer
    when the descriptor limit is lower), until the process is ended."""
    import waitress

    server = waitress.create_server(
        app,
        sockets=[sock],
        threads=threads,
        connection_limit=connection_cap(most_connections),
        channel_timeout=IDLE_SECONDS,
        cleanup_interval=CLEANUP_SECONDS,
        max_request_header_size=16 * 1024,
        max_request_body_size=1024,
        ident="ingestd",
        clear_untrusted_proxy_headers=True,
        asyncore_use_poll=True,  # select() fails on a descriptor above 1023
    )
    server.run()


def connection_cap(most: int) -> int:
    """`most`, or fewer: every connection is a descriptor, and accept() failing for want of
    one would spin waitress's loop."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return most
    return max(8, min(most, soft - RESERVED_DESCRIPTORS))


def _raise_descriptor_limit() -> None:
    """The soft limit up to the hard one (the soft is often 1024, the hard higher)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):  # a seccomp filter (the unit sets LimitNOFILE instead)
            log.warning("cannot raise the open-files limit; fewer connections fit", limit=soft)


def _end_with(daemon: int) -> None:
    """Ask the kernel to end this process when the daemon ends, however it ends."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != daemon:  # it was gone before the request was made
        os._exit(0)


@contextlib.contextmanager
def _without_private_variables() -> Iterator[None]:
    """A served process is started without ingestd's own variables (a token may be one) or
    systemd's credentials in its environment: it needs neither."""
    private = {
        name: value
        for name, value in os.environ.items()
        if name.upper().startswith(("INGESTD_", "CREDENTIALS_DIRECTORY"))
    }
    for name in private:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(private)
