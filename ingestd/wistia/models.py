"""Medias and projects as Wistia's Upload and Data APIs describe them; unknown fields are
ignored, so an answer with more than ingestd reads is fine."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Items per page of a list (Wistia's maximum).
PER_PAGE = 100
# The Upload API's older numeric statuses.
NUMERIC_STATUSES = {-1: "failed", 0: "queued", 1: "processing", 2: "ready", 3: "failed"}


class Media(BaseModel):
    """A media as the Upload and Data APIs return it; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: int
    hashed_id: str
    name: str = ""
    status: str | int | None = None
    progress: float | None = None
    created: str | None = None
    created_at: str | None = None  # the Upload API's older spelling
    updated: str | None = None
    type: str | None = None
    project: dict[str, Any] | None = None
    assets: list[dict[str, Any]] = []

    @property
    def project_hashed_id(self) -> str | None:
        """The hashed id of the project the media is in, when the answer says."""
        hashed = (self.project or {}).get("hashed_id")
        return hashed if isinstance(hashed, str) and hashed else None

    @property
    def state(self) -> str:
        if isinstance(self.status, int):
            return NUMERIC_STATUSES.get(self.status, "processing")
        return (self.status or "queued").lower()

    @property
    def created_epoch(self) -> float | None:
        return _epoch(self.created or self.created_at)

    @property
    def updated_epoch(self) -> float | None:
        return _epoch(self.updated)

    @property
    def original_size(self) -> int | None:
        for asset in self.assets:
            if asset.get("type") == "OriginalFile" and isinstance(asset.get("fileSize"), int):
                return int(asset["fileSize"])
        return None


class Project(BaseModel):
    """A project as the Data API returns it (camelCase); unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: int
    name: str
    hashed_id: str = Field(alias="hashedId")


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
