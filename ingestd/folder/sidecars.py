"""Sidecar files: read, validate and merge what sits next to a media file.

For a media `clip.mp4`:

    clip.json         metadata: name, description, project_id, contact_id, customizations,
                      tags, replaces (the hashed id of a media this file replaces in place)
    clip.srt          captions in `captions.default_language`
    clip.<lang>.srt   captions in <lang> (ISO 639-1 or 639-2, B or T), sent as ISO 639-2/T
    _defaults.json    in any folder from the watch folder down: the same keys as clip.json

Defaults apply from the watch folder down to the media's folder, the nearer overriding the
farther key by key, and the media's own clip.json overriding them all; customizations are merged
key by key (nested objects too); tags add up from the watch folder down to the media's own
(order kept, repeats dropped). Every problem is a `SidecarError` naming the file, and the
line where there is one; it holds the job until the file is fixed.

Sidecars sit in the untrusted folder: each is read through files.read_bounded (regular files
only, no links, nothing that blocks), at most 1 MiB of JSON nested at most 32 deep, at most
10 MiB of captions; JSON's NaN and Infinity are refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pycountry

from ingestd.core.errors import JobInputError
from ingestd.core.names import MAX_NAME_LENGTH, display, fits, sibling
from ingestd.folder.files import read_bounded

DEFAULTS_NAME = "_defaults.json"
# A done job's receipt (receipts.py): `clip.mp4.wistia.json`. Never a sidecar, never a media,
# even where its name would fit one (the clip.json of a media named `clip.mp4.wistia.mov`).
RECEIPT_SUFFIX = ".wistia.json"
KNOWN_KEYS = ("name", "description", "project_id", "contact_id", "customizations", "tags")
# Only the media's own clip.json may name the media it replaces (never a folder's defaults).
REPLACES = "replaces"
_HASHED_ID = re.compile(r"[A-Za-z0-9]{1,64}")  # with fullmatch
# Tags: at most this many on a media, each at most this many characters.
MAX_TAGS = 200
MAX_TAG_LENGTH = 255
_LANGUAGE_LIKE = re.compile(r"[A-Za-z]{2,3}")  # always with fullmatch

MAX_JSON_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_CAPTION_BYTES = 10 * 1024 * 1024
# How much of a bad line a reason quotes.
QUOTE_CHARACTERS = 40


class SidecarError(JobInputError):
    """A sidecar file is unusable; the job is held until it is fixed."""


# The steps under which the ledger records what a media was sent of its sidecars
# (ledger.steps.sent): each with a digest of what Wistia accepted.
METADATA_STEP = "metadata"
CUSTOMIZATIONS_STEP = "customizations"
TAGS_STEP = "tags"
CAPTIONS_STEP = "captions:"  # + language
THUMBNAIL_EXTENSIONS = ("jpg", "jpeg", "png")  # the first of clip.jpg, clip.jpeg, clip.png
MAX_THUMBNAIL_BYTES = 20 * 1024 * 1024
_IMAGE_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


def metadata_digest(fields: dict[str, Any]) -> str:
    """The part of the metadata a media update can change later: name and description."""
    return digest({"name": fields.get("name"), "description": fields.get("description")})


def digest(value: Any) -> str:
    """A stable fingerprint of what is sent, to know whether it was sent already."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- languages -----------------------------------------------------------------------------------


def language_code(code: str) -> str | None:
    """ISO 639-1 (`fr`), 639-2/B (`fre`) or 639-2/T (`fra`) to the three-letter T form."""
    code = code.strip().lower()
    if len(code) == 2:
        language = pycountry.languages.get(alpha_2=code)
    elif len(code) == 3:
        language = pycountry.languages.get(alpha_3=code) or pycountry.languages.get(
            bibliographic=code
        )
    else:
        language = None
    return language.alpha_3 if language is not None else None


# --- reading text --------------------------------------------------------------------------------


def read_text(path: Path, root: Path, limit: int, what: str) -> str | None:
    """A sidecar's text (UTF-8, with or without a byte order mark); None when it is absent."""
    try:
        raw = read_bounded(path, root, limit, what)
    except FileNotFoundError:
        return None
    except JobInputError as exc:
        raise SidecarError(exc.reason, exc.hint) from None
    name = display(path.name)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SidecarError(
            f"{name}: the text is UTF-16, not UTF-8",
            "save it as UTF-8 (most editors offer it under 'Save as')",
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SidecarError(
            f"{name}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})",
            "save the file as UTF-8",
        ) from None


# --- metadata ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metadata:
    name: str | None = None
    description: str | None = None
    project_id: str | None = None
    contact_id: str | None = None
    customizations: dict[str, Any] | None = None
    tags: tuple[str, ...] | None = None  # None: no sidecar names any
    replaces: str | None = None  # the hashed id clip.json says this file replaces in place
    # Where each value came from, and what was not understood, for the job's history.
    sources: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


# A JSON string (possessive, and an unclosed one runs to the end: one linear pass whatever
# the text) or a bracket.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)


def _deepest_line(text: str, limit: int) -> int | None:
    """The line where nesting first goes deeper than `limit`, or None: checked before parsing,
    so that no depth can exhaust the parser's recursion."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return text.count("\n", 0, match.start()) + 1
        elif token in "]}":
            depth -= 1
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def _load_json_object(path: Path, root: Path) -> dict[str, Any] | None:
    text = read_text(path, root, MAX_JSON_BYTES, "a JSON sidecar")
    if text is None:
        return None
    name = display(path.name)
    line = _deepest_line(text, MAX_JSON_DEPTH)
    if line is not None:
        raise SidecarError(
            f"{name}, line {line}: nested deeper than the {MAX_JSON_DEPTH} levels allowed",
            "flatten the JSON",
        )
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise SidecarError(
            f"{name}, line {exc.lineno} column {exc.colno}: {exc.msg}",
            "fix the JSON; the job goes on once the file is valid",
        ) from None
    except ValueError as exc:
        raise SidecarError(
            f"{name}: {exc} is not a JSON number (NaN and Infinity are not allowed)",
            "write a number or a string instead",
        ) from None
    if not isinstance(value, dict):
        raise SidecarError(f"{name}: must hold a JSON object ({{...}}), not {type(value).__name__}")
    _check_sendable(name, value)
    return value


def _check_sendable(name: str, value: Any) -> None:
    """Values JSON parses but Wistia cannot be sent: a number beyond float range (1e999 parses
    as infinity) or text with a lone surrogate ("\\ud800"). Nested at most 32 deep."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SidecarError(f"{name}: a number too large to send", "write a smaller number")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SidecarError(
                f"{name}: text that is not valid Unicode (a lone \\u surrogate escape)",
                "remove the \\uD800-\\uDFFF escape",
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_sendable(name, key)
            _check_sendable(name, item)
    elif isinstance(value, list):
        for item in value:
            _check_sendable(name, item)


def _checked(path: Path, values: dict[str, Any]) -> dict[str, Any]:
    """Validate the known keys' types; return them normalised."""
    name = display(path.name)
    checked: dict[str, Any] = {}
    for key in ("name", "description"):
        if key in values and values[key] is not None:
            if not isinstance(values[key], str):
                raise SidecarError(
                    f'{name}: "{key}" must be a string, not {json.dumps(values[key])[:40]}'
                )
            checked[key] = values[key]
    if "name" in checked and not checked["name"].strip():
        raise SidecarError(f'{name}: "name" is empty')
    if "name" in checked and len(checked["name"]) > MAX_NAME_LENGTH:
        raise SidecarError(f'{name}: "name" is longer than Wistia\'s {MAX_NAME_LENGTH} characters')
    if values.get("project_id") is not None:
        project = values["project_id"]
        if isinstance(project, bool) or not isinstance(project, str | int) or not str(project):
            raise SidecarError(f'{name}: "project_id" must be the project\'s hashed id (a string)')
        checked["project_id"] = str(project)
    if values.get("contact_id") is not None:
        contact = values["contact_id"]
        if isinstance(contact, bool) or not (
            isinstance(contact, int) or (isinstance(contact, str) and contact.isdigit())
        ):
            raise SidecarError(f'{name}: "contact_id" must be an integer')
        checked["contact_id"] = str(contact)
    if values.get("customizations") is not None:
        if not isinstance(values["customizations"], dict):
            raise SidecarError(f'{name}: "customizations" must be an object ({{...}})')
        checked["customizations"] = values["customizations"]
    if values.get("tags") is not None:
        checked["tags"] = _tags(name, values["tags"])
    return checked


def _tags(name: str, tags: Any) -> tuple[str, ...]:
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise SidecarError(f'{name}: "tags" must be a list of strings, like ["launch", "2026"]')
    cleaned = tuple(tag.strip() for tag in tags)
    if not all(cleaned):
        raise SidecarError(f'{name}: "tags" holds an empty tag')
    if any(len(tag) > MAX_TAG_LENGTH for tag in cleaned):
        raise SidecarError(f"{name}: a tag is longer than {MAX_TAG_LENGTH} characters")
    return cleaned


def _replaces(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _HASHED_ID.fullmatch(value.strip()):
        raise SidecarError(
            f'{name}: "replaces" must be the hashed id of a media in Wistia (letters and '
            f'digits, like "abc123de45"), not {json.dumps(value)[:40]}'
        )
    return value.strip()


def add_tags(base: tuple[str, ...] | None, more: tuple[str, ...]) -> tuple[str, ...]:
    """Tags down the folders: every level's added after the ones above, each once."""
    merged = list(base or ())
    merged += [tag for tag in dict.fromkeys(more) if tag not in merged]
    return tuple(merged)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Key by key; nested objects merge too."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def defaults_candidates(media: Path, root: Path) -> list[Path]:
    """Where `_defaults.json` may be, from the watch folder down to the media's folder."""
    try:
        relative = media.parent.relative_to(root)
    except ValueError:
        return []
    folders = [root, *[root.joinpath(*relative.parts[: n + 1]) for n in range(len(relative.parts))]]
    return [folder / DEFAULTS_NAME for folder in folders]


def is_receipt(name: str) -> bool:
    """`clip.mp4.wistia.json` is a receipt; `clip.wistia.json` (the clip.json of a media named
    `clip.wistia.mp4`) is not: a receipt's name is a file name with an extension, then the
    suffix."""
    if not name.lower().endswith(RECEIPT_SUFFIX):
        return False
    media = name[: -len(RECEIPT_SUFFIX)]
    return "." in media.lstrip(".") and not media.endswith(".")


@dataclass(frozen=True)
class Receipt:
    """What a receipt beside a file says it was (for adopting what Wistia already has)."""

    sha256: str
    hashed_id: str


_SHA256 = re.compile(r"[0-9a-f]{64}")


def read_receipt(media: Path, root: Path) -> Receipt | None:
    """The receipt beside `media` (`<file name>.wistia.json`), if there is one that names a
    sha256 and a hashed id; None when absent, unreadable or not a receipt (a receipt is only
    ever a hint: a bad one is not the job's trouble). Read like a sidecar: no link followed,
    bounded."""
    where = sibling(media, media.name + RECEIPT_SUFFIX)
    if where is None:
        return None
    try:
        content = _load_json_object(where, root)
    except (JobInputError, OSError):
        return None
    if content is None:
        return None
    sha256, hashed_id = content.get("sha256"), content.get("hashed_id")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        return None
    if not isinstance(hashed_id, str) or not _HASHED_ID.fullmatch(hashed_id):
        return None
    return Receipt(sha256, hashed_id)


def own_metadata_file(media: Path) -> Path | None:
    if is_receipt(media.stem + ".json"):
        return None
    return sibling(media, media.stem + ".json")


def read_metadata(media: Path, root: Path) -> Metadata:
    values: dict[str, Any] = {}
    sources: list[str] = []
    unknown: list[str] = []
    own = own_metadata_file(media)
    candidates = [*defaults_candidates(media, root), *([own] if own else [])]
    for path in candidates:
        loaded = _load_json_object(path, root)
        if loaded is None:
            continue
        is_own = path == own
        unknown += [
            f"{display(path.name)}: {key}"
            for key in loaded
            if key not in KNOWN_KEYS and not (is_own and key == REPLACES)
        ]
        checked = _checked(path, loaded)
        if is_own and loaded.get(REPLACES) is not None:
            checked[REPLACES] = _replaces(display(path.name), loaded[REPLACES])
        if "tags" in checked:
            checked["tags"] = add_tags(values.get("tags"), checked["tags"])
        values = merge(values, checked)
        sources.append(str(path))
    tags = values.get("tags")
    if tags is not None and len(tags) > MAX_TAGS:
        raise SidecarError(f"the sidecars give {len(tags)} tags; at most {MAX_TAGS} are sent")
    return Metadata(**values, sources=tuple(sources), unknown=tuple(unknown))


# --- captions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caption:
    language: str  # ISO 639-2/T
    path: Path
    text: str = field(repr=False)

    @property
    def digest(self) -> str:
        return digest(self.text)


# An SRT block: its number, its timing line, then text up to a blank line.
_INDEX_LINE = re.compile(r"\d{1,9}")
_TIME = r"(\d{1,3}):(\d{1,2}):(\d{1,2})[,.](\d{1,3})"
_TIMING_LINE = re.compile(_TIME + r"[ \t]*-->[ \t]*" + _TIME + r"(?:[ \t][^\n]{0,200})?")


def _milliseconds(hours: str, minutes: str, seconds: str, fraction: str) -> int:
    return ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(
        fraction.ljust(3, "0")
    )


def _validate_srt(path: Path, text: str) -> None:
    """Every block's number and timing line, in one linear pass over the lines.

    Written here rather than left to an SRT library: parsers built on one big regular
    expression take time that grows with the square (or cube) of a malformed line's length,
    and a caption file is whatever anyone drops in the folder.
    """
    name = display(path.name)
    lines = text.splitlines()
    number, blocks = 0, 0
    while number < len(lines):
        if not lines[number].strip():
            number += 1
            continue
        timing = lines[number + 1].strip() if number + 1 < len(lines) else ""
        times = _TIMING_LINE.fullmatch(timing)
        if not _INDEX_LINE.fullmatch(lines[number].strip()) or times is None:
            # A short quote helps find the line; every output redacts it (the token, URLs).
            found = display(lines[number].strip()[:QUOTE_CHARACTERS])
            raise SidecarError(
                f"{name}, line {number + 1}: not a valid subtitle block "
                f"(expected a number, then 'HH:MM:SS,mmm --> HH:MM:SS,mmm', then text; "
                f"found '{found}')",
                "fix the SRT file; the job goes on once it is valid",
            )
        if _milliseconds(*times.groups()[4:]) < _milliseconds(*times.groups()[:4]):
            raise SidecarError(
                f"{name}, line {number + 2}: subtitle {lines[number].strip()} ends before it starts"
            )
        blocks += 1
        number += 2
        while number < len(lines) and lines[number].strip():
            number += 1  # the block's text
    if blocks == 0:
        raise SidecarError(f"{name}: holds no subtitles")


def _tagged_captions(media: Path) -> list[tuple[str, Path]]:
    """(tag, path) of the `clip.<tag>.srt` entries next to `clip.mp4` whose tag looks like a
    language (two or three letters): clip.final.srt belongs to clip.final.mp4, not clip.mp4."""
    try:
        names = os.listdir(media.parent)
    except OSError:
        return []
    return [(tag, media.parent / name) for tag, name in tagged_caption_names(media.stem, names)]


def tagged_caption_names(stem: str, names: list[str]) -> list[tuple[str, str]]:
    """(tag, name) of the `<stem>.<tag>.srt` names among `names`, sorted by name."""
    prefix = stem + "."
    tagged = []
    for name in sorted(names):
        if name.startswith(prefix) and name.lower().endswith(".srt"):
            tag = name[len(prefix) : -len(".srt")]
            if _LANGUAGE_LIKE.fullmatch(tag):
                tagged.append((tag, name))
    return tagged


def caption_files(media: Path, default_language: str) -> list[tuple[str, Path]]:
    """(language, path) of every caption sidecar of `media` that may exist, by language."""
    found: dict[str, Path] = {}
    plain = sibling(media, media.stem + ".srt")
    if plain is not None and os.path.lexists(plain):
        found[language_code(default_language) or default_language] = plain
    for tag, path in _tagged_captions(media):
        language = language_code(tag)
        if language is None:
            raise SidecarError(
                f"{display(path.name)}: {tag!r} is not an ISO 639 language code",
                "name it like clip.fr.srt or clip.fra.srt",
            )
        if language in found and found[language] != path:
            raise SidecarError(
                f"{display(path.name)} and {display(found[language].name)} are both captions "
                f"in {language}",
                "keep one of them",
            )
        found[language] = path
    return sorted(found.items())


def read_captions(media: Path, root: Path, default_language: str) -> list[Caption]:
    captions = []
    for language, path in caption_files(media, default_language):
        text = read_text(path, root, MAX_CAPTION_BYTES, "a caption file")
        if text is None:
            continue  # removed since the folder was listed
        _validate_srt(path, text)
        captions.append(Caption(language, path, text))
    return captions


# --- all of it -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sidecars:
    metadata: Metadata
    captions: list[Caption]
    thumbnail: Thumbnail | None = None

    @property
    def paths(self) -> list[Path]:
        """Every file these were read from, the shared _defaults.json files included."""
        own = [self.thumbnail.path] if self.thumbnail else []
        return [Path(s) for s in self.metadata.sources] + [c.path for c in self.captions] + own


def read_sidecars(media: Path, root: Path, default_language: str) -> Sidecars:
    return Sidecars(
        read_metadata(media, root),
        read_captions(media, root, default_language),
        read_thumbnail(media, root),
    )


# --- the thumbnail ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Thumbnail:
    """`clip.jpg`, `clip.jpeg` or `clip.png`: the image for the video's still."""

    path: Path
    data: bytes  # what is uploaded: these very bytes, of which `digest` is the sha256
    digest: str
    content_type: str


def thumbnail_names(stem: str) -> list[str]:
    return [f"{stem}.{extension}" for extension in THUMBNAIL_EXTENSIONS]


def read_thumbnail(media: Path, root: Path) -> Thumbnail | None:
    """The media's thumbnail, read whole (bounded) and checked to be a JPEG or PNG image."""
    for name in thumbnail_names(media.stem):
        path = sibling(media, name)
        if path is None:
            continue
        try:
            data = read_bounded(path, root, MAX_THUMBNAIL_BYTES, "a thumbnail")
        except FileNotFoundError:
            continue
        content_type = next(
            (t for magic, t in _IMAGE_TYPES.items() if data.startswith(magic)), None
        )
        if content_type is None:
            raise SidecarError(
                f"{display(path.name)} is not a JPEG or PNG image",
                "replace it with a .jpg or .png image",
            )
        return Thumbnail(path, data, hashlib.sha256(data).hexdigest(), content_type)
    return None


def own_sidecar_names(media: str, names: list[str]) -> list[str]:
    """Which of `names` (one folder's listing) belong to the media named `media` and follow it
    when it is moved or deleted: its clip.json, clip.srt, clip.<lang>.srt and thumbnail."""
    stem = Path(media).stem
    present = set(names)
    own = [stem + ".json", stem + ".srt", *thumbnail_names(stem)]
    tagged = [name for tag, name in tagged_caption_names(stem, names) if language_code(tag)]
    return [
        name for name in own if name in present and fits(name) and not is_receipt(name)
    ] + tagged


def changed_within(paths: list[Path], now: float, seconds: float) -> bool:
    """Whether any of `paths` changed in the last `seconds`. An mtime in the future (a wrong
    clock) says nothing, so it never keeps a job waiting."""
    for path in paths:
        try:
            mtime = os.lstat(path).st_mtime
        except OSError:
            continue
        if now - seconds < mtime <= now:
            return True
    return False
