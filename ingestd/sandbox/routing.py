"""What every endpoint module shares: the request a handler gets, the answer it gives, the
route that names it, and Wistia's error answers.

A handler is a plain function `Request -> Answer`; it may also raise `HttpAnswer` from deep
inside. Error bodies follow the `error_body` switch (faults.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingestd.sandbox.bodies import UploadedFile
from ingestd.sandbox.records import Record

if TYPE_CHECKING:
    from ingestd.sandbox.server import Sandbox


@dataclass
class Answer:
    status: int
    body: Any = None  # JSON-ready value, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)


class HttpAnswer(Exception):
    """An answer raised from deep in a handler (an error, mostly)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


@dataclass
class Request:
    sandbox: Sandbox
    method: str
    path: str
    params: dict[str, Any]
    json: Any
    files: dict[str, UploadedFile]
    record: Record
    headers: dict[str, str]
    match: dict[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        """A single-valued parameter as text (None when absent)."""
        value = self.params.get(name)
        if value is None or isinstance(value, list | dict):
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


Handler = Callable[[Request], Answer]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str  # one of faults.ENDPOINTS
    feature: str  # one of faults.FEATURES
    handler: Handler
    # Served only while this says so (e.g. swap under /v1/ behind `swap_on_v1`).
    enabled: Callable[[Sandbox], bool] | None = None
    # Further names a request of this route answers to in `forbidden` (e.g. "tags").
    extra_names: Callable[[Request], set[str]] | None = None

    def serves(self, sandbox: Sandbox) -> bool:
        return self.enabled is None or self.enabled(sandbox)

    def names(self, request: Request) -> set[str]:
        extra = self.extra_names(request) if self.extra_names else set()
        return {self.name, self.feature, *extra}


def route(
    method: str,
    pattern: str,
    name: str,
    feature: str,
    handler: Handler,
    *,
    enabled: Callable[[Sandbox], bool] | None = None,
    extra_names: Callable[[Request], set[str]] | None = None,
) -> Route:
    return Route(method, re.compile(pattern), name, feature, handler, enabled, extra_names)


# v1 paths answer with or without `.json` (Wistia's SDK calls them without it).
JSON = r"(?:\.json)?"
HID = r"(?P<hid>[A-Za-z0-9_-]+)"


# --- Wistia's error answers --------------------------------------------------------------------

_CODES = {400: "bad_request", 403: "forbidden", 404: "not_found", 422: "unprocessable_entity"}


def error_body(sandbox: Sandbox, status: int, message: str, code: str | None = None) -> Any:
    """A JSON error body in the shape the `error_body` switch chooses."""
    code = code or _CODES.get(status, "error")
    shape = sandbox.faults.error_body
    if shape == "code_detail":
        return {"code": code, "detail": message}
    if shape == "nested":
        return {"error": {"code": code, "detail": message}}
    return {"error": message}


def error(request: Request, status: int, message: str, code: str | None = None) -> Answer:
    return Answer(status, error_body(request.sandbox, status, message, code))


def fail(request: Request, status: int, message: str, code: str | None = None) -> HttpAnswer:
    """An error to raise: `raise fail(request, 404, ...)`."""
    return HttpAnswer(error(request, status, message, code))


def empty(status: int) -> Answer:
    """An answer without a body (Wistia's 404s on captions and background jobs have none)."""
    return Answer(status, b"")
