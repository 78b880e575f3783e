"""The Data API's captions: `/v1/medias/<id>/captions` and `.../captions/<lang>`.

Create answers 400 when that language has captions already; update (PUT) replaces and answers
404 when it has none. The list and show answer flat objects (`language`, `text`,
`english_name`, `native_name`, `is_draft`, `id`). Wistia's 404s here carry no body.
"""

from __future__ import annotations

from ingestd.sandbox.routing import HID, JSON, Answer, HttpAnswer, Request, empty, error, route
from ingestd.sandbox.shapes import caption_json
from ingestd.sandbox.store import Media

LANG = r"(?P<lang>[a-z]+)"
CAPTIONS_EXIST = "Captions already exist for this video."


def _text(request: Request) -> str | None:
    upload = request.files.get("caption_file")
    if upload is not None:
        return upload.text()
    return request.param("caption_file")


def _media(request: Request) -> Media:
    """The media, or an empty 404 (raised), as the captions endpoints answer it."""
    media = request.sandbox.store.medias.get(request.match["hid"])
    if media is None:
        raise HttpAnswer(empty(404))
    return media


def captions_list(request: Request) -> Answer:
    media = _media(request)
    return Answer(200, [caption_json(media, lang) for lang in media.captions])


def captions_create(request: Request) -> Answer:
    media = _media(request)
    text = _text(request)
    if not text:
        return error(request, 400, "caption_file is required")
    language = request.param("language") or "eng"
    with request.sandbox.store.lock:
        if language in media.captions:
            return error(request, 400, CAPTIONS_EXIST)
        media.captions[language] = text
    return empty(200)


def captions_show(request: Request) -> Answer:
    media = _media(request)
    lang = request.match["lang"]
    if lang not in media.captions:
        return empty(404)
    return Answer(200, caption_json(media, lang))


def captions_update(request: Request) -> Answer:
    media = _media(request)
    text = _text(request)
    if not text:
        return error(request, 400, "caption_file is required")
    lang = request.match["lang"]
    with request.sandbox.store.lock:
        if lang not in media.captions:
            return empty(404)
        media.captions[lang] = text
    return empty(200)


def captions_delete(request: Request) -> Answer:
    media = _media(request)
    with request.sandbox.store.lock:
        if media.captions.pop(request.match["lang"], None) is None:
            return empty(404)
    return empty(200)


_ALL = rf"/v1/medias/{HID}/captions{JSON}"
_ONE = rf"/v1/medias/{HID}/captions/{LANG}{JSON}"
ROUTES = [
    route("GET", _ALL, "captions_list", "captions", captions_list),
    route("POST", _ALL, "captions_create", "captions", captions_create),
    route("GET", _ONE, "captions_show", "captions", captions_show),
    route("PUT", _ONE, "captions_update", "captions", captions_update),
    route("DELETE", _ONE, "captions_delete", "captions", captions_delete),
]
