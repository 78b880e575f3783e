"""The Data API's customizations: `/v1/medias/<id>/customizations`.

`POST` replaces every customization the media has (201); `PUT` is a partial update: a key set
to `null` is deleted, any other value is set, every key not named is kept (200). Nested
objects merge key by key, or are replaced whole (`customizations_merge`). Wistia keeps the
values as strings ("true", "12"), and answers with what it saved.
"""

from __future__ import annotations

import json
from typing import Any

from ingestd.sandbox.data_api import media_or_404
from ingestd.sandbox.routing import HID, JSON, Answer, Request, empty, error, route


def _body(request: Request) -> dict[str, Any] | Answer:
    if not isinstance(request.json, dict):
        return error(request, 400, "Expected a JSON object")
    return request.json


def customizations_show(request: Request) -> Answer:
    return Answer(200, media_or_404(request).customizations)


def customizations_create(request: Request) -> Answer:
    media = media_or_404(request)
    body = _body(request)
    if isinstance(body, Answer):
        return body
    with request.sandbox.store.lock:
        media.customizations = {k: stringify(v) for k, v in body.items() if v is not None}
    return Answer(201, media.customizations)


def customizations_update(request: Request) -> Answer:
    media = media_or_404(request)
    body = _body(request)
    if isinstance(body, Answer):
        return body
    deep = request.sandbox.faults.customizations_merge == "deep"
    with request.sandbox.store.lock:
        media.customizations = merged(media.customizations, body, deep=deep)
    return Answer(200, media.customizations)


def customizations_delete(request: Request) -> Answer:
    media = media_or_404(request)
    with request.sandbox.store.lock:
        media.customizations = {}
    return empty(200)


def merged(saved: dict[str, Any], changes: dict[str, Any], *, deep: bool) -> dict[str, Any]:
    """`saved` with `changes` applied: null deletes, objects merge (deep) or replace."""
    result = dict(saved)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif deep and isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value, deep=True)
        else:
            result[key] = stringify(value)
    return result


def stringify(value: Any) -> Any:
    """Wistia saves customization values as strings (booleans as "true"/"false"); a null
    inside an object is dropped, as at the top."""
    if isinstance(value, dict):
        return {k: stringify(v) for k, v in value.items() if v is not None}
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [stringify(v) for v in value]
    return value if isinstance(value, str) else json.dumps(value)


_PATH = rf"/v1/medias/{HID}/customizations{JSON}"
ROUTES = [
    route("GET", _PATH, "customizations_show", "customizations", customizations_show),
    route("POST", _PATH, "customizations_create", "customizations", customizations_create),
    route("PUT", _PATH, "customizations_update", "customizations", customizations_update),
    route("DELETE", _PATH, "customizations_delete", "customizations", customizations_delete),
]
