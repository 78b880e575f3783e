"""What the sandbox's Wistia account holds: projects, medias, captions, customizations.

JSON shapes follow ../shared/wistia-api: projects in camelCase (`hashedId`), medias in
snake_case (`hashed_id`), customizations echoed back as strings. Processing is simulated from
the clock, so no thread is needed: a media is `queued` for the first third of
`processing_seconds`, then `processing`, then `ready`; an empty or non-media upload ends
`failed`.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

MEDIA_EXTENSIONS = {
    "mp4": "Video",
    "mov": "Video",
    "m4v": "Video",
    "avi": "Video",
    "mkv": "Video",
    "webm": "Video",
    "wmv": "Video",
    "flv": "Video",
    "mpg": "Video",
    "mpeg": "Video",
    "3gp": "Video",
    "mp3": "Audio",
    "m4a": "Audio",
    "wav": "Audio",
    "jpg": "Image",
    "jpeg": "Image",
    "png": "Image",
    "gif": "Image",
}
# What an image upload must begin with to be processed (JPEG, PNG, GIF); anything else fails.
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")
VIDEO_LIMIT_ERROR = (
    "This account has exceeded its video limit. Please upgrade to upload more videos."
)
_ALPHABET = string.ascii_lowercase + string.digits


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def new_hashed_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(10))


def media_type(filename: str) -> str:
    return MEDIA_EXTENSIONS.get(PurePosixPath(filename).suffix.lower().lstrip("."), "UnknownType")


@dataclass
class Project:
    id: int
    hashed_id: str
    name: str
    created: float
    description: str = ""

    def to_json(self, media_count: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "mediaCount": media_count,
            "created": iso(self.created),
            "updated": iso(self.created),
            "hashedId": self.hashed_id,
            "anonymousCanUpload": False,
            "anonymousCanDownload": False,
            "public": False,
            "publicId": self.hashed_id,
        }


@dataclass
class Media:
    id: int
    hashed_id: str
    name: str
    description: str
    project: Project
    created: float
    type: str
    size: int
    sha256: str | None = None
    md5: str | None = None
    content_type: str = "application/octet-stream"
    source_url: str | None = None
    file_path: Path | None = None  # where the sandbox kept the uploaded bytes
    contact_id: str | None = None
    updated: float = 0.0
    captions: dict[str, str] = field(default_factory=dict)
    customizations: dict[str, Any] = field(default_factory=dict)
    still: str | None = None  # the hashed id of the image set as this video's still
    processable: bool = True  # False: an image whose bytes are not an image

    def status(self, processing_seconds: float, now: float | None = None) -> tuple[str, float]:
        elapsed = (time.time() if now is None else now) - self.created
        queued_for = processing_seconds / 3
        if elapsed < queued_for:
            return "queued", 0.0
        if not self.will_process:
            return "failed", 0.0
        if elapsed < processing_seconds:
            return "processing", round(
                (elapsed - queued_for) / (processing_seconds - queued_for), 2
            )
        return "ready", 1.0

    @property
    def will_process(self) -> bool:
        return self.size != 0 and self.type != "UnknownType" and self.processable

    def updated_at(self, processing_seconds: float, now: float | None = None) -> float:
        """When the media last changed, as Wistia's `updated` says: an edit, or its status
        moving on (queued -> processing -> ready or failed)."""
        now = time.time() if now is None else now
        moves = [self.created, self.created + processing_seconds / 3]
        if self.will_process:
            moves.append(self.created + processing_seconds)
        changed = max((t for t in moves if t <= now), default=self.created)
        return max(changed, self.updated)

    def to_json(self, processing_seconds: float) -> dict[str, Any]:
        status, progress = self.status(processing_seconds)
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "created": iso(self.created),
            "updated": iso(self.updated_at(processing_seconds)),
            "duration": 0.0 if status != "ready" else 10.0,
            "hashed_id": self.hashed_id,
            "description": self.description,
            "progress": progress,
            "status": status,
            "thumbnail": {
                "url": f"https://embed.wistia.test/deliveries/{self.still or self.hashed_id}.jpg",
                "width": 100,
                "height": 60,
            },
            "project": {
                "id": self.project.id,
                "name": self.project.name,
                "hashed_id": self.project.hashed_id,
            },
            "assets": [
                {
                    "url": f"https://embed.wistia.test/deliveries/{self.hashed_id}.bin",
                    "width": 1280,
                    "height": 720,
                    "fileSize": self.size,
                    "contentType": self.content_type,
                    "type": "OriginalFile",
                }
            ],
        }

    def to_upload_json(self) -> dict[str, Any]:
        """The Upload API's answer (its documented shape, plus the Data API's keys)."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "description": self.description,
            "content_type": self.content_type,
            "extension": PurePosixPath(self.name).suffix.lstrip("."),
            "filesize": self.size,
            "md5": self.md5,
            "hashed_id": self.hashed_id,
            "height": 720,
            "width": 1280,
            "length": 0.0,
            "created_at": iso(self.created),
            "updated_at": iso(self.created),
            "created": iso(self.created),
            "ready": False,
            "status": 0,
            "progress": 0.0,
            "project": {
                "id": self.project.id,
                "name": self.project.name,
                "hashed_id": self.project.hashed_id,
            },
        }


class Store:
    """The account's content. All methods are thread-safe."""

    def __init__(self, processing_seconds: float = 3.0) -> None:
        self.processing_seconds = processing_seconds
        self.lock = threading.RLock()
        self.projects: dict[str, Project] = {}
        self.medias: dict[str, Media] = {}
        self._next_id = 1000
        # Everything ever deleted, so tests can tell "never created" from "deleted".
        self.deleted: list[Media] = []

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- projects -------------------------------------------------------------------------

    def create_project(self, name: str) -> Project:
        with self.lock:
            project = Project(self._id(), new_hashed_id(), name, time.time())
            self.projects[project.hashed_id] = project
            return project

    def find_project(self, ref: str) -> Project | None:
        with self.lock:
            if ref in self.projects:
                return self.projects[ref]
            return next((p for p in self.projects.values() if str(p.id) == ref), None)

    def daily_uploads_project(self) -> Project:
        """Wistia's default for uploads without project_id: Uploads_YYYY-MM-DD."""
        name = "Uploads_" + datetime.now(UTC).strftime("%Y-%m-%d")
        with self.lock:
            found = next((p for p in self.projects.values() if p.name == name), None)
            return found or self.create_project(name)

    def media_count(self, project: Project) -> int:
        with self.lock:
            return sum(1 for m in self.medias.values() if m.project is project)

    # --- medias ---------------------------------------------------------------------------

    def add_media(self, limit: int | None = None, **values: Any) -> Media | None:
        """A new media; None when the account already holds `limit` (the video limit)."""
        with self.lock:  # the check and the add are one step, however many uploads race
            videos = sum(1 for m in self.medias.values() if m.type != "Image")
            if limit is not None and values.get("type") != "Image" and videos >= limit:
                return None  # images do not count towards the video limit
            media = Media(id=self._id(), hashed_id=new_hashed_id(), created=time.time(), **values)
            self.medias[media.hashed_id] = media
            return media

    def touch(self, hashed_id: str) -> None:
        """Something about the media changed (an edit, captions, customizations, its still):
        Wistia's `updated` moves on."""
        with self.lock:
            media = self.medias.get(hashed_id)
            if media is not None:
                media.updated = time.time()

    def delete_media(self, hashed_id: str) -> Media | None:
        with self.lock:
            media = self.medias.pop(hashed_id, None)
            if media:
                self.deleted.append(media)
            return media

    def list_medias(self, filters: dict[str, str]) -> list[Media]:
        with self.lock:
            found = list(self.medias.values())
        if "name" in filters:
            found = [m for m in found if m.name == filters["name"]]
        if "hashed_id" in filters:
            found = [m for m in found if m.hashed_id == filters["hashed_id"]]
        if "type" in filters:
            found = [m for m in found if m.type == filters["type"]]
        if "project_id" in filters:
            ref = filters["project_id"]
            found = [m for m in found if ref in (str(m.project.id), m.project.hashed_id)]
        now = time.time()
        key = {
            "name": lambda m: m.name,
            "created": lambda m: m.created,
            "updated": lambda m: m.updated_at(self.processing_seconds, now),
        }.get(filters.get("sort_by", ""))
        found.sort(key=key or (lambda m: m.id), reverse=filters.get("sort_direction") == "0")
        return found
