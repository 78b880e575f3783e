"""What the sandbox remembers of each request, for tests to assert on (never the token)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SECRET_KEYS = {"access_token", "api_password"}
HIDDEN_HEADERS = {"authorization", "cookie"}


@dataclass
class Record:
    """One request as the sandbox received it (never with the token)."""

    id: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    started: float
    finished: float | None = None
    status: int | None = None
    # Form fields as sent (the last of repeated keys); `params` has them as Rails reads them
    # (query, form and JSON body merged, `key[]` as lists).
    form: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    json: Any = None
    dropped: bool = False
    hashed_id: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    # How the credential came, without the credential: "bearer" (the account's token in the
    # Authorization header), "bearer-other" (another token there), "none".
    auth: str = "none"
    # Whether the account's token also appeared anywhere else: the URL, another header, a
    # form field. A client that keeps its token to the Authorization header never does this.
    token_elsewhere: bool = False
    # The endpoint that answered (a name from faults.ENDPOINTS), when one did.
    endpoint: str | None = None

    @property
    def is_upload(self) -> bool:
        return self.method == "POST" and self.path == "/"

    @property
    def api_version(self) -> str | None:
        """The X-Wistia-API-Version the request pinned (the newer API's release), if any."""
        return next(
            (v for k, v in self.headers.items() if k.lower() == "x-wistia-api-version"), None
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def hide_secrets(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ("[hidden]" if k in SECRET_KEYS else v) for k, v in values.items()}
