"""Logging, and the secrets no output may show: the process's one piece of global state.

Logging is structlog: JSON lines off a TTY (with journald's `<N>` priority prefix under
journald), console lines on one. Every line about a job carries `job_id`, `path` and
`hashed_id` (bound with `job_context`).

Secrets: the token (and the webhook secret, the secrets in notification URLs, and whatever
else the process learns) is registered once with `add_secret`; `redact(text)` removes every
registered secret, any 16 consecutive characters of one, and URL credentials and query
strings (redact.py) from any text: every rendered log line, the ledger's reasons and notes,
every command's output, the status page. Keys such as `authorization` are dropped from log
lines, and tracebacks are rendered without local variables. Exceptions that escape a thread
are logged the same way. `silenced` keeps a library's logger quiet while ingestd learns what
is secret in a URL that library would quote.

structlog is imported only when something logs: `ingestd status` never pays for it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ingestd import redact as redaction
from ingestd.core.jobs import Job
from ingestd.core.names import display
from ingestd.redact import REDACTED

if TYPE_CHECKING:
    import structlog

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_silenced: dict[str, int] = {}  # a library's logger -> how many blocks keep it quiet
_silenced_lock = threading.Lock()
_REDACTED_KEYS = {"authorization", "api_token", "token", "access_token", "api_password"}


def add_secret(secret: str) -> None:
    """Never show `secret`, nor any 16 consecutive characters of it, from now on."""
    if secret:
        with _secrets_lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    """`text` without any secret this process knows, URL credentials or URL query strings."""
    with _secrets_lock:
        secrets = list(_secrets)
    return redaction.redact(text, secrets)


@contextmanager
def silenced(name: str) -> Iterator[None]:
    """A library's logger quiet for a block: Apprise logs a URL it cannot read, in words
    ingestd cannot redact before it knows which pieces of that URL are secret."""
    logger = logging.getLogger(name)
    with _silenced_lock:
        _silenced[name] = _silenced.get(name, 0) + 1
        logger.disabled = True
    try:
        yield
    finally:
        with _silenced_lock:
            _silenced[name] -= 1
            logger.disabled = _silenced[name] > 0


def _drop_secret_keys(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Secret keys dropped, and every text value redacted before it is encoded (JSON escapes
    could hide a secret from the redaction of the finished line)."""
    return {
        k: REDACTED if str(k).lower() in _REDACTED_KEYS else _redact_value(v)
        for k, v in event.items()
    }


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def _redacted(renderer: Callable[..., str]) -> Callable[..., str]:
    """The renderer, with the finished line redacted: whatever a value or a traceback held."""

    def render(logger: Any, name: str, event: dict[str, Any]) -> str:
        return redact(renderer(logger, name, event))

    return render


def _journald_friendly(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    # journald stamps every line itself; when it is our reader, a second timestamp is noise.
    event.pop("timestamp", None)
    return event


# syslog priorities, which journald reads from a `<N>` prefix (journalctl -p err shows errors).
PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


class _JournaldJSON:
    """JSON lines with journald's priority prefix."""

    def __init__(self) -> None:
        import structlog

        self._json = structlog.processors.JSONRenderer()

    def __call__(self, logger: Any, name: str, event: dict[str, Any]) -> str:
        priority = PRIORITIES.get(str(event.get("level", "info")), 6)
        return f"<{priority}>{self._json(logger, name, event)}"


def under_journald() -> bool:
    """Whether stderr is journald's stream: `$JOURNAL_STREAM` names its device and inode
    (systemd sets it; a child may have its stderr elsewhere and still inherit the variable)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        stderr = os.fstat(2)
        return (stderr.st_dev, stderr.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False


def configure(level: str = "info", fmt: str = "auto", *, under_journald: bool = False) -> None:
    """Set up structlog and route the stdlib loggers (httpx, watchdog) through it."""
    import structlog

    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if under_journald and not console:
        shared.append(_journald_friendly)
    if console:
        renderer: Any = structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.plain_traceback
        )
        tail: list[Any] = [_drop_secret_keys, _redacted(renderer)]
    else:
        json_renderer = _JournaldJSON() if under_journald else structlog.processors.JSONRenderer()
        # Tracebacks as data, without the frames' local variables (a header dict in a frame
        # holds the token; a buffer holds a file's bytes).
        tracebacks = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        tail = [tracebacks, _drop_secret_keys, _redacted(json_renderer)]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO; watchdog is chatty at DEBUG; urllib3 (Apprise's
    # requests) logs every request's path and query at DEBUG.
    for noisy in ("httpx", "httpcore", "watchdog", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Apprise logs each message's payload at DEBUG and each refusal at WARNING: ingestd says
    # itself what was delivered and why not, with Apprise's words (caught per call, at
    # WARNING, so its logger must let them through) as its reason. Only its errors show.
    logging.getLogger("apprise").setLevel(logging.WARNING)
    handler.addFilter(_only_apprise_errors)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    threading.excepthook = _log_thread_exception


def _only_apprise_errors(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR or not record.name.startswith("apprise")


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """An exception that ends a thread (a library's own thread, say): logged, redacted."""
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    thread = args.thread.name if args.thread is not None else "?"
    get("ingestd").error("a thread stopped with an error", thread=thread, exc_info=args.exc_value)


def get(name: str = "ingestd") -> structlog.stdlib.BoundLogger:
    import structlog

    return structlog.get_logger(name)  # type: ignore[no-any-return]


@contextmanager
def job_context(job: Job) -> Iterator[None]:
    """Bind the job's identity to every log line in this thread for the block."""
    import structlog

    with structlog.contextvars.bound_contextvars(
        job_id=job.id, path=display(job.path), hashed_id=job.hashed_id
    ):
        yield


def bind_hashed_id(hashed_id: str) -> None:
    import structlog

    structlog.contextvars.bind_contextvars(hashed_id=hashed_id)
