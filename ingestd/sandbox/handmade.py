"""Medias "uploaded by hand": put into the account by a test, as if someone had uploaded them
in Wistia's app or with another tool, for tests of adopting what Wistia already has.

They skip the Upload API and its limits (they are already there) but count toward the limits
from then on. Bytes given are kept on disk with their sha256; a size alone costs nothing, so
an account of thousands of medias is made in a blink. A `created` in the past makes a media
that is already `ready`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingestd.sandbox.store import MEDIA_TYPES, Media, Project, iso, media_type

if TYPE_CHECKING:
    from ingestd.sandbox.server import Sandbox


@dataclass
class MediaSpec:
    name: str
    data: bytes | None = None
    size: int | None = None
    project: str | Project | None = None  # a project's hashed id, or the project
    type: str | None = None  # default: from the name's extension, else "Video"
    created: float | None = None  # epoch seconds; default now
    archived: bool = False
    tags: list[str] = field(default_factory=list)
    description: str = ""
    content_type: str | None = None


def checked(sandbox: Sandbox, spec: MediaSpec) -> tuple[MediaSpec, Project | None]:
    """The spec with its defaults filled in, and its project (None: the day's Uploads_
    project, made only when the media is); ValueError when it cannot be."""
    if not isinstance(spec.name, str) or not spec.name:
        raise ValueError("a media needs a name")
    if spec.data is not None and spec.size is not None and spec.size != len(spec.data):
        raise ValueError(f"{spec.name}: size {spec.size} is not the length of data")
    if spec.data is None and spec.size is None:
        raise ValueError(f"{spec.name}: give data or a size")
    size = len(spec.data) if spec.data is not None else spec.size
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"{spec.name}: size must be a whole number of bytes")
    kind = spec.type or _type_of(spec.name)
    if kind not in MEDIA_TYPES:
        raise ValueError(f"{spec.name}: type must be one of {', '.join(MEDIA_TYPES)}")
    project = _project(sandbox, spec.project)
    filled = MediaSpec(
        name=spec.name,
        data=spec.data,
        size=size,
        project=project,
        type=kind,
        created=time.time() if spec.created is None else float(spec.created),
        archived=bool(spec.archived),
        tags=[str(t) for t in spec.tags],
        description=spec.description,
        content_type=spec.content_type,
    )
    return filled, project


def _type_of(name: str) -> str:
    kind = media_type(name)
    return "Video" if kind == "UnknownType" else kind


def _project(sandbox: Sandbox, ref: str | Project | None) -> Project | None:
    if isinstance(ref, Project) or ref is None:
        return ref
    found = sandbox.store.find_project(str(ref))
    if found is None:
        raise ValueError(f"no project {ref!r}")
    return found


def create(sandbox: Sandbox, spec: MediaSpec, project: Project | None) -> Media:
    """Adds a checked spec to the account."""
    if project is None:
        project = sandbox.store.daily_uploads_project()
    values: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "project": project,
        "type": spec.type,
        "size": spec.size,
        "archived": spec.archived,
        "tags": list(spec.tags),
        "content_type": spec.content_type or "application/octet-stream",
    }
    if spec.data is not None:
        values["sha256"] = hashlib.sha256(spec.data).hexdigest()
        values["md5"] = hashlib.md5(spec.data).hexdigest()
    media = sandbox.store.add_media(created=spec.created, **values)
    if spec.data is not None:
        kept = sandbox.data_dir / f"{media.hashed_id}.bin"
        kept.write_bytes(spec.data)
        media.file_path = kept
    return media


def spec_from_json(value: Any) -> MediaSpec:
    """A spec from `POST /_sandbox/medias`: `data` as text, or `data_base64`."""
    if not isinstance(value, dict):
        raise ValueError("each media must be a JSON object")
    known = {
        "name",
        "data",
        "data_base64",
        "size",
        "project",
        "type",
        "created",
        "archived",
        "tags",
        "description",
        "content_type",
    }
    unknown = set(value) - known
    if unknown:
        raise ValueError(f"unknown media field(s): {', '.join(sorted(unknown))}")
    data: bytes | None = None
    if isinstance(value.get("data"), str):
        data = value["data"].encode()
    elif isinstance(value.get("data_base64"), str):
        data = base64.b64decode(value["data_base64"], validate=True)
    created = value.get("created")
    if created is not None and not isinstance(created, int | float):
        raise ValueError("created must be epoch seconds")
    tags = value.get("tags", [])
    if not isinstance(tags, list):
        raise ValueError("tags must be a list")
    return MediaSpec(
        name=value.get("name", ""),
        data=data,
        size=value.get("size"),
        project=value.get("project"),
        type=value.get("type"),
        created=created,
        archived=bool(value.get("archived", False)),
        tags=tags,
        description=str(value.get("description", "")),
        content_type=value.get("content_type"),
    )


def admin_json(media: Media, sandbox: Sandbox) -> dict[str, Any]:
    """Everything tests need to know of a media, flat (GET /_sandbox/medias)."""
    status, _ = media.status(sandbox.store.processing_seconds)
    return {
        "hashed_id": media.hashed_id,
        "id": media.id,
        "name": media.name,
        "type": media.type,
        "status": status,
        "size": media.size,
        "sha256": media.sha256,
        "project": media.project.hashed_id,
        "project_name": media.project.name,
        "archived": media.archived,
        "tags": list(media.tags),
        "captions": dict(media.captions),
        "customizations": media.customizations,
        "still": media.still,
        "description": media.description,
        "source_url": media.source_url,
        "created": iso(media.created),
        "updated": iso(media.updated_at(sandbox.store.processing_seconds)),
    }
