"""Swap and its background job, from Wistia's newer API (`/modern/`, release chosen by the
`X-Wistia-API-Version` header; without it the newest answers) and, while `swap_on_v1` is on,
from `/v1/` too.

`PUT .../medias/<hashed_id>/swap` with `{"replacement_media_id": ...}` queues a background
job and answers `{"message", "media": <the original>, "background_job_status": {"id",
"status"}}`; `GET .../background_job_status/<id>` follows it: `queued`, `started`, then
`finished` (the original now holds the replacement's file, keeping its hashed id, name,
captions, customizations and tags) or `failed`. 400 for a missing replacement or another
media type, 404 for an unknown media. Authentication as on the Data API.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ingestd.sandbox.routing import (
    HID,
    JSON,
    Answer,
    HttpAnswer,
    Request,
    Route,
    empty,
    error,
    route,
)
from ingestd.sandbox.shapes import media_json

if TYPE_CHECKING:
    from ingestd.sandbox.server import Sandbox

QUEUED = "Media swap has been queued for processing."


def swap(request: Request) -> Answer:
    sandbox = request.sandbox
    store = sandbox.store
    hid = request.match["hid"]
    original = store.medias.get(hid)
    if original is None:
        return error(request, 404, f"Media with ID '{hid}' not found.")
    replacement_id = request.param("replacement_media_id")
    if not replacement_id:
        return error(request, 400, "replacement_media_id is required")
    replacement = store.medias.get(replacement_id)
    if replacement is None:
        return error(request, 404, f"Media with ID '{replacement_id}' not found.")
    if replacement is original:
        return error(request, 400, "A media cannot be swapped with itself.")
    if replacement.type != original.type:
        message = (
            f"Replacement media must be the same type as the original media ({original.type})."
        )
        return error(request, 400, message)
    faults = sandbox.faults
    seconds = store.processing_seconds if faults.swap_seconds is None else faults.swap_seconds
    job = store.start_swap(
        original,
        replacement,
        {
            "seconds": seconds,
            "fails": faults.swap_job_fails,
            "keeps_replacement": faults.swap_keeps_replacement,
            "exchanges_files": faults.swap_exchanges_files,
            "api": "v1" if request.path.startswith("/v1/") else "modern",
            "api_version": request.record.api_version,
        },
    )
    now = time.time()
    return Answer(
        200,
        {
            "message": QUEUED,
            "media": media_json(original, sandbox, "properties", now),
            "background_job_status": job.to_json(now),
        },
    )


def background_job_status(request: Request) -> Answer:
    ref = request.match["job"]
    job = request.sandbox.store.jobs.get(int(ref)) if ref.isdigit() else None
    if job is None:
        raise HttpAnswer(empty(404))
    return Answer(200, {"background_job_status": job.to_json(time.time())})


def _on_v1(sandbox: Sandbox) -> bool:
    return sandbox.faults.swap_on_v1


def _routes(prefix: str, suffix: str, on_v1: bool) -> list[Route]:
    enabled = _on_v1 if on_v1 else None
    return [
        route("PUT", rf"{prefix}/medias/{HID}/swap{suffix}", "swap", "swap", swap, enabled=enabled),
        route(
            "GET",
            rf"{prefix}/background_job_status/(?P<job>[^/.]+){suffix}",
            "background_job_status",
            "background_jobs",
            background_job_status,
            enabled=enabled,
        ),
    ]


ROUTES = [*_routes("/modern", "", on_v1=False), *_routes("/v1", JSON, on_v1=True)]
