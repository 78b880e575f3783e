"""The Data API's account and medias: `GET /v1/account.json`, and list, show, update and
delete of `/v1/medias`.

Lists take Wistia's filters (`name` exact, `project_id`, `type`, `hashed_id`, `hashed_ids[]`,
`tags[]` all of them, `archived`), `sort_by` name/created/updated with `sort_direction` 0
(descending) or 1 (ascending, the default), and pages of at most 100; the answer is a bare
array. An update takes `name`, `description`, `new_still_media_id` and `tags` (a JSON array,
as Wistia's SDK sends it, or `tags[]` form fields), which replace the media's tags.
"""

from __future__ import annotations

import time
from typing import Any

from ingestd.sandbox.routing import HID, JSON, Answer, HttpAnswer, Request, error, fail, route
from ingestd.sandbox.shapes import account_json, media_json
from ingestd.sandbox.store import Media, as_list

PER_PAGE = 100


def media_or_404(request: Request) -> Media:
    hid = request.match["hid"]
    media = request.sandbox.store.medias.get(hid)
    if media is None:
        raise fail(request, 404, f"Media with ID '{hid}' not found.")
    return media


def paging(request: Request, per_page_default: int = PER_PAGE) -> tuple[int, int]:
    try:
        page = max(1, int(request.param("page") or "1"))
        per_page = min(PER_PAGE, max(1, int(request.param("per_page") or per_page_default)))
    except ValueError:
        raise fail(request, 400, "page and per_page must be integers") from None
    return page, per_page


def account(request: Request) -> Answer:
    return Answer(200, account_json(request.sandbox))


def medias_list(request: Request) -> Answer:
    sandbox = request.sandbox
    if sandbox.faults.list_fail_status:
        body = b"<html>list unavailable</html>"
        raise HttpAnswer(Answer(sandbox.faults.list_fail_status, body))
    lag = sandbox.faults.list_lag_seconds
    now = time.time()
    medias = [m for m in sandbox.store.list_medias(request.params) if m.created <= now - lag]
    page, per_page = paging(request)
    chosen = medias[(page - 1) * per_page : page * per_page]
    return Answer(200, [media_json(m, sandbox, "list", now) for m in chosen])


def media_show(request: Request) -> Answer:
    return Answer(200, media_json(media_or_404(request), request.sandbox, "show"))


def media_update(request: Request) -> Answer:
    media = media_or_404(request)
    store = request.sandbox.store
    still = request.param("new_still_media_id")
    if still is not None:
        image = store.medias.get(still)
        if media.type != "Video" or image is None or image.type != "Image":
            # As the Data API page says: a failure unless a video gets an image.
            return error(request, 400, "The new still must be an image, set on a video.")
    tags = _tags(request)
    with store.lock:
        if still is not None:
            media.still = still
        if request.param("name") is not None:
            media.name = str(request.param("name"))
        if request.param("description") is not None:
            media.description = str(request.param("description"))
        if tags is not None:
            media.tags = tags
        media.updated = time.time()
    return Answer(200, media_json(media, request.sandbox, "update"))


def _tags(request: Request) -> list[str] | None:
    """The tags an update sets (None: it sets none). Blank names are dropped, so `tags[]=`
    (the one way a form can send an empty array) clears them."""
    if "tags" not in request.params:
        return None
    kept: list[str] = []
    for tag in as_list(request.params["tags"]):
        if tag.strip() and tag not in kept:
            kept.append(tag)
    return kept


def _update_names(request: Request) -> set[str]:
    names = set()
    if "tags" in request.params:
        names.add("tags")
    if "new_still_media_id" in request.params:
        names.add("still")
    return names


def media_delete(request: Request) -> Answer:
    media = media_or_404(request)
    request.sandbox.store.delete_media(media.hashed_id)
    return Answer(200, media_json(media, request.sandbox, "properties"))


def _medias_routes() -> list[Any]:
    one = rf"/v1/medias/{HID}{JSON}"
    return [
        route("GET", rf"/v1/medias{JSON}", "medias_list", "medias", medias_list),
        route("GET", one, "media_show", "medias", media_show),
        route("PUT", one, "media_update", "medias", media_update, extra_names=_update_names),
        route("DELETE", one, "media_delete", "medias", media_delete),
    ]


ROUTES = [route("GET", rf"/v1/account{JSON}", "account", "account", account), *_medias_routes()]
