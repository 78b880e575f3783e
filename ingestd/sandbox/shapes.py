"""The JSON Wistia answers with, as its current reference and OpenAPI give it
(../shared/wistia-api/current-api-facts.md).

- Medias in snake_case (`hashed_id`), projects in camelCase (`mediaCount`, `hashedId`), as
  Wistia's v1 does. Which key names a project's hashed id is switchable (faults.py).
- A media's JSON depends on where it is answered: the Upload API's answer has no `status` and
  no `project`; show and list carry `project`, `assets` and `tags`; an update carries `tags`
  but neither project nor assets; a delete or a swap, the media's own fields only.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from ingestd.sandbox.store import Media, Project, Store, iso

if TYPE_CHECKING:
    from ingestd.sandbox.server import Sandbox

DELIVERIES = "https://embed.wistia.test/deliveries"
# Media types whose `duration` Wistia gives (seconds); it leaves the key out for the others.
_TIMED = ("Video", "Audio")


def _properties(media: Media, store: Store, now: float) -> dict[str, Any]:
    """The fields every media answer of the Data API shares (its `MediaProperties`)."""
    status, progress = media.status(store.processing_seconds, now)
    values: dict[str, Any] = {
        "id": media.id,
        "name": media.name,
        "type": media.type,
        "archived": media.archived,
        "created": iso(media.created),
        "updated": iso(media.updated_at(store.processing_seconds, now)),
    }
    if media.type in _TIMED:
        values["duration"] = 10.0 if status == "ready" else 0.0
    values.update(
        hashed_id=media.hashed_id,
        description=media.description,
        progress=progress,
        status=status,
        thumbnail=_thumbnail(media),
    )
    return values


def _thumbnail(media: Media) -> dict[str, Any]:
    return {
        "url": f"{DELIVERIES}/{media.still or media.hashed_id}.jpg?image_crop_resized=100x60",
        "width": 100,
        "height": 60,
    }


def _assets(media: Media, store: Store, now: float) -> list[dict[str, Any]]:
    """The original file, and once a video is ready, what Wistia derives from it."""
    width, height = (1280, 720) if media.type in ("Video", "Image") else (None, None)
    assets = [
        {
            "url": f"{DELIVERIES}/{media.hashed_id}.bin",
            "width": width,
            "height": height,
            "fileSize": media.size,
            "contentType": media.content_type,
            "type": "OriginalFile",
        }
    ]
    if media.type == "Video" and media.status(store.processing_seconds, now)[0] == "ready":
        derived = _derived_id(media)
        assets += [
            {
                "url": f"{DELIVERIES}/{derived}.bin",
                "width": 960,
                "height": 540,
                "fileSize": max(1, media.size // 3),
                "contentType": "video/mp4",
                "type": "Mp4VideoFile",
            },
            {
                "url": f"{DELIVERIES}/{derived}.jpg",
                "width": 1280,
                "height": 720,
                "fileSize": 1024,
                "contentType": "image/jpeg",
                "type": "StillImageFile",
            },
        ]
    return assets


def _derived_id(media: Media) -> str:
    return hashlib.sha1(f"{media.hashed_id}:{media.sha256}".encode()).hexdigest()[:40]


def media_project(project: Project, sandbox: Sandbox) -> dict[str, Any]:
    key = sandbox.faults.media_project_hashed_id_key
    return {"id": project.id, "name": project.name, key: project.hashed_id}


def media_json(media: Media, sandbox: Sandbox, view: str, now: float | None = None) -> Any:
    """A media as the Data API answers it: `view` is "show", "list", "update" or "properties"
    (delete, swap, and a project's medias)."""
    store = sandbox.store
    now = time.time() if now is None else now
    values = _properties(media, store, now)
    if view in ("show", "list"):
        values["project"] = media_project(media.project, sandbox)
        values["assets"] = _assets(media, store, now)
    if view in ("show", "list", "update"):
        values["tags"] = [{"name": tag} for tag in media.tags]
    return values


def upload_json(media: Media, sandbox: Sandbox) -> dict[str, Any]:
    """The Upload API's answer: the media, without `status` and without `project` (SDK)."""
    values: dict[str, Any] = {
        "id": media.id,
        "name": media.name,
        "type": media.type,
        "created": iso(media.created),
        "updated": iso(media.updated_at(sandbox.store.processing_seconds)),
    }
    if media.type in _TIMED:
        values["duration"] = 0.0
    values.update(
        hashed_id=media.hashed_id,
        progress=0.0,
        thumbnail=_thumbnail(media),
        description=media.description,
        account_id=sandbox.account["id"],
        archived=media.archived,
    )
    return values


def project_json(project: Project, media_count: int, sandbox: Sandbox) -> dict[str, Any]:
    key = sandbox.faults.project_hashed_id_key
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "mediaCount": media_count,
        "created": iso(project.created),
        "updated": iso(project.created),
        key: project.hashed_id,
        "public": False,
        "publicId": None,
        "anonymousCanUpload": False,
        "anonymousCanDownload": False,
    }


def account_json(sandbox: Sandbox) -> dict[str, Any]:
    faults = sandbox.faults
    store = sandbox.store
    values: dict[str, Any] = {
        **sandbox.account,
        "mediaCount": store.counted_medias(faults.archived_count_toward_limit),
        "projectCount": len(store.projects),
        "channelCount": 0,
    }
    if faults.video_limit is not None:
        values["videoLimit"] = faults.video_limit
    elif faults.no_video_limit == "null":
        values["videoLimit"] = None
    elif faults.no_video_limit == "zero":
        values["videoLimit"] = 0
    return values


# ISO 639-2 codes and the names Wistia gives them (a few; others answer with the code).
LANGUAGES = {
    "eng": ("English", "English"),
    "fre": ("French", "Français"),
    "fra": ("French", "Français"),
    "ger": ("German", "Deutsch"),
    "deu": ("German", "Deutsch"),
    "spa": ("Spanish", "Español"),
    "ita": ("Italian", "Italiano"),
    "por": ("Portuguese", "Português"),
    "dut": ("Dutch", "Nederlands"),
    "nld": ("Dutch", "Nederlands"),
    "jpn": ("Japanese", "日本語"),
    "chi": ("Chinese", "中文"),
    "zho": ("Chinese", "中文"),
    "kor": ("Korean", "한국어"),
    "rus": ("Russian", "Русский"),
    "ara": ("Arabic", "العربية"),
    "swe": ("Swedish", "Svenska"),
    "pol": ("Polish", "Polski"),
}


def caption_json(media: Media, language: str) -> dict[str, Any]:
    english, native = LANGUAGES.get(language, (language, language))
    transcript = hashlib.sha1(f"{media.hashed_id}:{language}".encode()).hexdigest()[:10]
    return {
        "language": language,
        "text": media.captions[language],
        "english_name": english,
        "native_name": native,
        "is_draft": False,
        "id": transcript,
    }


# What the 403 of a plan without a feature says, in the words of Wistia's examples
# ("Webinars are not available on your current plan").
_FEATURE_WORDS = {
    "upload": "Uploading media is",
    "account": "Account details are",
    "medias": "Media management is",
    "captions": "Captions are",
    "customizations": "Player customizations are",
    "projects": "Projects are",
    "swap": "Media swap is",
    "background_jobs": "Background jobs are",
    "tags": "Tags are",
    "still": "Custom thumbnails are",
}


def forbidden_message(feature: str) -> str:
    return f"{_FEATURE_WORDS.get(feature, 'This feature is')} not available on your current plan"
