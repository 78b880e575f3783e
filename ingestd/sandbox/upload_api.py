"""Wistia's Upload API: `POST /` with a multipart `file`, or a form-encoded `url` to import.

The answer (200) is the media without `status` or `project` (shapes.upload_json). Refusals
are 400 JSON: nothing to upload, a name over 255 characters, the account's video (media)
limit, its storage limit. In the `code_detail` shapes every refusal has the code
`upload_failed`, the one code Wistia's OpenAPI shows here, so the meaning is in the text.
What Wistia answers for a `project_id` that does not exist is not documented; the
`upload_unknown_project` switch chooses (faults.py, README).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from ingestd.sandbox.routing import Answer, Request, error, route
from ingestd.sandbox.shapes import upload_json
from ingestd.sandbox.store import IMAGE_MAGIC, LimitReached, Project, media_type

# The default answer for an unknown project_id: plausible, and deliberately not the words
# "project not found", so that a client decides "the project is gone" by asking the Data API
# (GET /v1/projects/<id>.json answering 404), not by reading this text.
UNKNOWN_PROJECT_ERROR = "The project_id given is not valid for this account."


def upload(request: Request) -> Answer:
    sandbox = request.sandbox
    faults = sandbox.faults
    upload = request.files.get("file")
    url = request.param("url")
    if upload is None and not url:
        return error(request, 400, "Please provide a file or a url to upload.", "upload_failed")
    project = _project(request)
    if isinstance(project, Answer):
        return project
    if upload is not None:
        name = request.param("name") or upload.filename
        kind = media_type(upload.filename)
        values: dict[str, Any] = {
            "type": kind,
            "processable": kind != "Image"
            or (upload.begins_with(IMAGE_MAGIC) and not faults.fail_images),
            "size": upload.size,
            "sha256": upload.sha256,
            "md5": upload.md5,
            "content_type": upload.content_type,
        }
    else:
        assert url is not None
        target = urlsplit(url)
        if target.scheme not in ("http", "https") or not target.hostname:
            return error(request, 400, "The url is not a valid http(s) URL.", "upload_failed")
        name = request.param("name") or unquote(PurePosixPath(target.path).name)
        values = {
            "type": _imported_type(target.hostname, target.path),
            "size": 1,
            "source_url": url,
        }
    if len(name) > 255:
        return error(request, 400, "Name is too long (maximum is 255 characters).", "upload_failed")
    try:
        media = sandbox.store.add_media(
            video_limit=faults.video_limit,
            storage_limit=faults.storage_limit,
            archived_count=faults.archived_count_toward_limit,
            name=name,
            description=request.param("description") or "",
            project=project,
            contact_id=request.param("contact_id"),
            **values,
        )
    except LimitReached as full:
        if full.kind == "storage":
            return error(request, 400, faults.storage_limit_message, "upload_failed")
        return error(request, 400, faults.video_limit_message, "upload_failed")
    if upload is not None:
        kept = upload.path.with_name(f"{media.hashed_id}.bin")
        upload.path.rename(kept)
        upload.path = kept
        media.file_path = kept
    request.record.hashed_id = media.hashed_id
    return Answer(200, upload_json(media, sandbox))


def _project(request: Request) -> Project | Answer:
    store = request.sandbox.store
    ref = request.param("project_id")
    if not ref:
        return store.daily_uploads_project()
    found = store.find_project(ref)
    if found is not None:
        return found
    reading = request.sandbox.faults.upload_unknown_project
    if reading == "default_project":
        return store.daily_uploads_project()
    if reading == "not_found":
        return error(request, 404, UNKNOWN_PROJECT_ERROR, "not_found")
    return error(request, 400, UNKNOWN_PROJECT_ERROR, "upload_failed")


def _imported_type(host: str, path: str) -> str:
    """What Wistia can make of a URL import: Dropbox links must be in their direct form."""
    if host.endswith("dropbox.com") and host != "dl.dropbox.com" and "/s/raw/" not in path:
        return "UnknownType"  # a share page, not the file: processing fails
    return media_type(path)


ROUTES = [route("POST", r"/", "upload", "upload", upload)]
