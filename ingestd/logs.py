"""Logging: structlog, JSON lines off a TTY (journald), console lines on one.

Every line about a job carries `job_id`, `path` and `hashed_id` (bound with `job_context`).
The token is never logged on purpose; as a second line of defence every rendered line goes
through redact.redact (the token and any 16 characters of it, URL credentials and query
strings), keys such as `authorization` are dropped, and tracebacks are rendered without local
variables. Exceptions that escape a thread are logged the same way, never printed raw.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from ingestd.core.jobs import Job
from ingestd.folder.files import display
from ingestd.redact import REDACTED, redact

_REDACTED_KEYS = {"authorization", "api_token", "token", "access_token", "api_password"}


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


# Tracebacks as data, without the frames' local variables (a header dict in a frame holds the
# token; a buffer holds a file's bytes).
_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


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
_PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


class _JournaldJSON:
    """JSON lines with journald's priority prefix."""

    def __init__(self) -> None:
        self._json = structlog.processors.JSONRenderer()

    def __call__(self, logger: Any, name: str, event: dict[str, Any]) -> str:
        priority = _PRIORITIES.get(str(event.get("level", "info")), 6)
        return f"<{priority}>{self._json(logger, name, event)}"


def configure(level: str = "info", fmt: str = "auto", *, under_journald: bool = False) -> None:
    """Set up structlog and route the stdlib loggers (httpx, watchdog) through it."""
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
        tail = [_TRACEBACKS, _drop_secret_keys, _redacted(json_renderer)]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO; watchdog is chatty at DEBUG.
    for noisy in ("httpx", "httpcore", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    threading.excepthook = _log_thread_exception


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """An exception that ends a thread (a library's own thread, say): logged, redacted."""
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    thread = args.thread.name if args.thread is not None else "?"
    get("ingestd").error("a thread stopped with an error", thread=thread, exc_info=args.exc_value)


def get(name: str = "ingestd") -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]


@contextmanager
def job_context(job: Job) -> Iterator[None]:
    """Bind the job's identity to every log line in this thread for the block."""
    with structlog.contextvars.bound_contextvars(
        job_id=job.id, path=display(job.path), hashed_id=job.hashed_id
    ):
        yield


def bind_hashed_id(hashed_id: str) -> None:
    structlog.contextvars.bind_contextvars(hashed_id=hashed_id)
