"""The background job a swap queues (Wistia's `background_job_status`).

A job is `queued` for the first third of its time, then `started`; when its time is up the
store decides and applies its outcome in one step (`Store.settle`): `finished` with the bytes
moved, or `failed`. A job whose replacement is still processing waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SwapJob:
    id: int
    original: str  # hashed ids
    replacement: str
    created: float
    seconds: float
    fails: bool = False
    keeps_replacement: bool = True
    exchanges_files: bool = False
    api: str = "modern"  # the API it was asked through: "modern" or "v1"
    api_version: str | None = None  # the X-Wistia-API-Version it was asked with
    outcome: str | None = None  # "finished" or "failed" once decided
    ended: float | None = None

    def status(self, now: float) -> str:
        if self.outcome is not None:
            return self.outcome
        return "started" if now >= self.created + self.seconds / 3 else "queued"

    def end(self, outcome: str, now: float) -> None:
        self.outcome = outcome
        self.ended = now

    def to_json(self, now: float) -> dict[str, Any]:
        """Wistia's `background_job_status` object."""
        return {"id": self.id, "status": self.status(now)}

    def admin_json(self, now: float) -> dict[str, Any]:
        """Everything about the swap, for tests (GET /_sandbox/swaps)."""
        return {
            **self.to_json(now),
            "original": self.original,
            "replacement": self.replacement,
            "created": self.created,
            "ended": self.ended,
            "api": self.api,
            "api_version": self.api_version,
        }
