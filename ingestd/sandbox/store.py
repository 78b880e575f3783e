"""What the sandbox's Wistia account holds: projects, medias, their captions, customizations
and tags, and the background jobs of swaps.

Pure state and rules, no HTTP: the JSON shapes are in `shapes.py`. Processing is simulated
from the clock, so no thread is needed: a media is `queued` for the first third of
`processing_seconds`, then `processing`, then `ready`; an empty or non-media upload ends
`failed`. Every method is thread-safe.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ingestd.sandbox.jobs import SwapJob

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
# Wistia's media types (its OpenAPI's enum).
MEDIA_TYPES = (
    "Video",
    "Audio",
    "Image",
    "PdfDocument",
    "MicrosoftOfficeDocument",
    "Swf",
    "UnknownType",
)
# What an image upload must begin with to be processed (JPEG, PNG, GIF); anything else fails.
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")
_ALPHABET = string.ascii_lowercase + string.digits


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def new_hashed_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(10))


def media_type(filename: str) -> str:
    return MEDIA_EXTENSIONS.get(PurePosixPath(filename).suffix.lower().lstrip("."), "UnknownType")


class LimitReached(Exception):
    """An upload the account has no room for: `kind` is "video" or "storage"."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class Project:
    id: int
    hashed_id: str
    name: str
    created: float
    description: str = ""


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
    tags: list[str] = field(default_factory=list)
    archived: bool = False

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

    def file_values(self) -> dict[str, Any]:
        """What a swap moves from one media to another: the file and what follows from it."""
        return {name: getattr(self, name) for name in _FILE_FIELDS}

    def take_file(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            setattr(self, name, value)


_FILE_FIELDS = (
    "type",
    "size",
    "sha256",
    "md5",
    "content_type",
    "source_url",
    "file_path",
    "processable",
)


class Store:
    """The account's content."""

    def __init__(self, processing_seconds: float = 3.0) -> None:
        self.processing_seconds = processing_seconds
        self.lock = threading.RLock()
        self.projects: dict[str, Project] = {}
        self.medias: dict[str, Media] = {}
        self._next_id = 1000
        # Everything ever deleted (DELETE, or `delete_media` from a test), so tests can tell
        # "never created" from "deleted".
        self.deleted: list[Media] = []
        # Replacements Wistia took away after a finished swap (`swap_keeps_replacement` off).
        self.swap_removed: list[Media] = []
        self.jobs: dict[int, SwapJob] = {}
        self._next_job = 7000

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _unique_hashed_id(self, taken: Container[str]) -> str:
        while (hashed := new_hashed_id()) in taken:
            pass
        return hashed

    # --- projects -------------------------------------------------------------------------

    def create_project(self, name: str, created: float | None = None) -> Project:
        with self.lock:
            hashed = self._unique_hashed_id(self.projects)
            project = Project(self._id(), hashed, name, time.time() if created is None else created)
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

    def media_counts(self) -> dict[str, int]:
        """Medias per project hashed id, counted in one pass (lists of many projects)."""
        counts: dict[str, int] = {}
        with self.lock:
            for media in self.medias.values():
                key = media.project.hashed_id
                counts[key] = counts.get(key, 0) + 1
        return counts

    def media_count(self, project: Project) -> int:
        return self.media_counts().get(project.hashed_id, 0)

    # --- medias ---------------------------------------------------------------------------

    def counted_medias(self, include_archived: bool) -> int:
        """The medias that count toward the media (video) limit: every type, images too."""
        with self.lock:
            if include_archived:
                return len(self.medias)
            return sum(1 for m in self.medias.values() if not m.archived)

    def stored_bytes(self) -> int:
        """What counts toward a storage limit: every media's file, archived ones too."""
        with self.lock:
            return sum(m.size for m in self.medias.values())

    def add_media(
        self,
        *,
        video_limit: int | None = None,
        storage_limit: int | None = None,
        archived_count: bool = False,
        created: float | None = None,
        **values: Any,
    ) -> Media:
        """A new media. Raises LimitReached when the account has no room for it (the check
        and the add are one step, however many uploads race)."""
        with self.lock:
            if video_limit is not None and self.counted_medias(archived_count) >= video_limit:
                raise LimitReached("video")
            size = int(values.get("size", 0))
            if storage_limit is not None and self.stored_bytes() + size > storage_limit:
                raise LimitReached("storage")
            media = Media(
                id=self._id(),
                hashed_id=self._unique_hashed_id(self.medias),
                created=time.time() if created is None else created,
                **values,
            )
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

    def list_medias(self, params: dict[str, Any]) -> list[Media]:
        """Medias matching Wistia's list filters, in the order asked for (params as Rails
        parses them: `tags[]` and `hashed_ids[]` arrive as lists)."""
        with self.lock:
            found = list(self.medias.values())
        for key in ("name", "hashed_id", "type"):
            if key in params:
                found = [m for m in found if getattr(m, key) == params[key]]
        if "project_id" in params:
            ref = params["project_id"]
            found = [m for m in found if ref in (str(m.project.id), m.project.hashed_id)]
        if "hashed_ids" in params:
            wanted = set(as_list(params["hashed_ids"]))
            found = [m for m in found if m.hashed_id in wanted]
        if "tags" in params:
            tags = [t for t in as_list(params["tags"]) if t]
            found = [m for m in found if all(t in m.tags for t in tags)]
        if "archived" in params:
            archived = str(params["archived"]).lower() in ("true", "1")
            found = [m for m in found if m.archived == archived]
        now = time.time()
        key = {
            "name": lambda m: m.name,
            "created": lambda m: m.created,
            "updated": lambda m: m.updated_at(self.processing_seconds, now),
        }.get(str(params.get("sort_by", "")))
        descending = str(params.get("sort_direction", "1")) == "0"
        found.sort(key=key or (lambda m: m.id), reverse=descending)
        return found

    # --- swaps ----------------------------------------------------------------------------

    def start_swap(self, original: Media, replacement: Media, job: dict[str, Any]) -> SwapJob:
        with self.lock:
            self._next_job += 1
            swap = SwapJob(
                id=self._next_job,
                original=original.hashed_id,
                replacement=replacement.hashed_id,
                created=time.time(),
                **job,
            )
            self.jobs[swap.id] = swap
            return swap

    def settle(self, now: float | None = None) -> None:
        """Finish every swap whose time has come: its outcome is decided and applied in one
        step, so nobody sees `finished` before the bytes moved."""
        if not any(job.outcome is None for job in list(self.jobs.values())):
            return  # the common case, without the lock
        now = time.time() if now is None else now
        with self.lock:
            for job in self.jobs.values():
                if job.outcome is None and now >= job.created + job.seconds:
                    self._finish(job, now)

    def _finish(self, job: SwapJob, now: float) -> None:
        original = self.medias.get(job.original)
        replacement = self.medias.get(job.replacement)
        if original is None or replacement is None or job.fails:
            job.end("failed", now)
            return
        state, _ = replacement.status(self.processing_seconds, now)
        if state in ("queued", "processing"):
            return  # Wistia's job waits for the replacement's processing
        if state == "failed":
            job.end("failed", now)
            return
        old = original.file_values()
        original.take_file(replacement.file_values())
        original.updated = now
        if not job.keeps_replacement:
            self.medias.pop(replacement.hashed_id, None)
            self.swap_removed.append(replacement)
        elif job.exchanges_files:
            replacement.take_file(old)
            replacement.updated = now
        job.end("finished", now)


def as_list(value: Any) -> list[str]:
    """A Rails array parameter: a list stays a list; a lone value (`tags=a`, where Rails keeps
    the last of repeated plain keys) is a list of one."""
    if isinstance(value, list):
        return [str(v) for v in value]
    return [] if value is None else [str(value)]
