"""Medias and projects as Wistia's Upload and Data APIs describe them; unknown fields are
ignored, so an answer with more than ingestd reads is fine."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

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
        """The hashed id of the project the media is in, when the answer says: the Data API
        does, the Upload API's answer does not. Unsure which key Wistia uses there today
        (current-api-facts.md): `hashed_id` in the older pages, `hashedId` in the SDK's."""
        project = self.project or {}
        for key in ("hashed_id", "hashedId"):
            hashed = project.get(key)
            if isinstance(hashed, str) and hashed:
                return hashed
        return None

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
    """A project as the Data API returns it; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: int
    name: str
    # Unsure which key the live API sends (current-api-facts.md): the SDK's schema says
    # `hashedId`, the older pages' examples `hashed_id`. Either is taken.
    hashed_id: str = Field(validation_alias=AliasChoices("hashedId", "hashed_id"))


class Account(BaseModel):
    """`GET /v1/account.json`: who the token belongs to, and how full the account is.

    `videoLimit` is null, 0 or missing where the plan sets no limit (all three read as none);
    `mediaCount` against it tells whether there is room without uploading anything."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    url: str | None = None
    media_count: int | None = Field(
        None, validation_alias=AliasChoices("mediaCount", "media_count")
    )
    video_limit: int | None = Field(
        None, validation_alias=AliasChoices("videoLimit", "video_limit")
    )

    @field_validator("media_count", "video_limit", mode="before")
    @classmethod
    def _whole_number_or_none(cls, value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return None

    @property
    def limit(self) -> int | None:
        """The account's media limit, or None where Wistia gives none."""
        return self.video_limit if self.video_limit and self.video_limit > 0 else None

    @property
    def room(self) -> Literal["none", "room", "unknown"]:
        """Whether another media fits, as far as the account can tell (a storage limit it
        cannot: `unknown` where it gives no media limit)."""
        if self.limit is None or self.media_count is None:
            return "unknown"
        return "none" if self.media_count >= self.limit else "room"


class BackgroundJob(BaseModel):
    """A Swap's background job (`background_job_status`): `queued`, `started`, `finished` or
    `failed`. Its id is kept as text, whatever JSON type Wistia gives it."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    id: str
    status: str = "queued"

    @classmethod
    def from_answer(cls, payload: Any) -> BackgroundJob:
        """From a swap's answer (`{"message", "media", "background_job_status": {...}}`) or a
        status answer, wrapped (`{"background_job_status": {...}}`) or not."""
        if isinstance(payload, dict) and isinstance(payload.get("background_job_status"), dict):
            payload = payload["background_job_status"]
        return cls.model_validate(payload)

    @property
    def state(self) -> str:
        return self.status.lower()


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
