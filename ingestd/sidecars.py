"""Sidecar files: read, validate and merge what sits next to a media file.

For a media `clip.mp4`:

    clip.json         metadata: name, description, project_id, contact_id, customizations
    clip.srt          captions in `captions.default_language`
    clip.<lang>.srt   captions in <lang> (ISO 639-1 or 639-2, B or T), sent as ISO 639-2/T
    _defaults.json    in any folder from the watch folder down: the same keys as clip.json

Defaults apply from the watch folder down to the media's folder, the nearer overriding the
farther key by key, and the media's own clip.json overriding them all; customizations are merged
key by key (nested objects too). Every problem is a `SidecarError` naming the file, and the
line where there is one; it holds the job until the file is fixed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pycountry
import srt

from ingestd.errors import JobInputError
from ingestd.wistia import MAX_NAME_LENGTH

DEFAULTS_NAME = "_defaults.json"
KNOWN_KEYS = ("name", "description", "project_id", "contact_id", "customizations")
_LANGUAGE_LIKE = re.compile(r"^[A-Za-z]{2,3}$")


class SidecarError(JobInputError):
    """A sidecar file is unusable; the job is held until it is fixed."""


# The names under which the ledger records what finishing applied.
METADATA_STEP = "metadata"
CUSTOMIZATIONS_STEP = "customizations"
CAPTIONS_STEP = "captions:"  # + language
FATE_STEP = "fate"


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


def read_text(path: Path) -> str:
    """A sidecar's text: UTF-8, with or without a byte order mark."""
    try:
        raw = path.read_bytes()
    except PermissionError:
        raise SidecarError(
            f"{path.name}: permission denied", "make it readable by the ingestd user"
        ) from None
    except OSError as exc:
        raise SidecarError(f"{path.name}: cannot read it ({exc.strerror})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SidecarError(
            f"{path.name}: the text is UTF-16, not UTF-8",
            "save it as UTF-8 (most editors offer it under 'Save as')",
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SidecarError(
            f"{path.name}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})",
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
    # Where each value came from, and what was not understood, for the job's history.
    sources: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


def _load_json_object(path: Path) -> dict[str, Any]:
    text = read_text(path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SidecarError(
            f"{path.name}, line {exc.lineno} column {exc.colno}: {exc.msg}",
            "fix the JSON; the job goes on once the file is valid",
        ) from None
    if not isinstance(value, dict):
        raise SidecarError(
            f"{path.name}: must hold a JSON object ({{...}}), not {type(value).__name__}"
        )
    return value


def _checked(path: Path, values: dict[str, Any]) -> dict[str, Any]:
    """Validate the known keys' types; return them normalised."""
    checked: dict[str, Any] = {}
    for key in ("name", "description"):
        if key in values and values[key] is not None:
            if not isinstance(values[key], str):
                raise SidecarError(
                    f'{path.name}: "{key}" must be a string, not {json.dumps(values[key])[:40]}'
                )
            checked[key] = values[key]
    if "name" in checked and not checked["name"].strip():
        raise SidecarError(f'{path.name}: "name" is empty')
    if "name" in checked and len(checked["name"]) > MAX_NAME_LENGTH:
        raise SidecarError(
            f'{path.name}: "name" is longer than Wistia\'s {MAX_NAME_LENGTH} characters'
        )
    if values.get("project_id") is not None:
        project = values["project_id"]
        if isinstance(project, bool) or not isinstance(project, str | int) or not str(project):
            raise SidecarError(
                f'{path.name}: "project_id" must be the project\'s hashed id (a string)'
            )
        checked["project_id"] = str(project)
    if values.get("contact_id") is not None:
        contact = values["contact_id"]
        if isinstance(contact, bool) or not (
            isinstance(contact, int) or (isinstance(contact, str) and contact.isdigit())
        ):
            raise SidecarError(f'{path.name}: "contact_id" must be an integer')
        checked["contact_id"] = str(contact)
    if values.get("customizations") is not None:
        if not isinstance(values["customizations"], dict):
            raise SidecarError(f'{path.name}: "customizations" must be an object ({{...}})')
        checked["customizations"] = values["customizations"]
    return checked


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Key by key; nested objects merge too."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def defaults_files(media: Path, root: Path) -> list[Path]:
    """`_defaults.json` files from the watch folder down to the media's folder, farthest first."""
    try:
        relative = media.parent.relative_to(root)
    except ValueError:
        return []
    folders = [root, *[root.joinpath(*relative.parts[: n + 1]) for n in range(len(relative.parts))]]
    return [folder / DEFAULTS_NAME for folder in folders if (folder / DEFAULTS_NAME).is_file()]


def own_metadata_file(media: Path) -> Path:
    return media.with_suffix(".json")


def read_metadata(media: Path, root: Path) -> Metadata:
    values: dict[str, Any] = {}
    sources: list[str] = []
    unknown: list[str] = []
    candidates = [*defaults_files(media, root)]
    own = own_metadata_file(media)
    if own.is_file():
        candidates.append(own)
    for path in candidates:
        loaded = _load_json_object(path)
        unknown += [f"{path.name}: {key}" for key in loaded if key not in KNOWN_KEYS]
        values = merge(values, _checked(path, loaded))
        sources.append(str(path))
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


def _validate_srt(path: Path, text: str) -> None:
    try:
        subtitles = list(srt.parse(text))
    except srt.SRTParseError as exc:
        line = text[: exc.expected_start].count("\n") + 1
        found = exc.unmatched_content.strip().splitlines()
        shown = found[0][:60] if found else ""
        raise SidecarError(
            f"{path.name}, line {line}: not a valid subtitle block "
            f"(expected a number, then 'HH:MM:SS,mmm --> HH:MM:SS,mmm', then text; "
            f"found {shown!r})",
            "fix the SRT file; the job goes on once it is valid",
        ) from None
    if not subtitles:
        raise SidecarError(f"{path.name}: holds no subtitles")
    for subtitle in subtitles:
        if subtitle.end < subtitle.start:
            line = _line_of_index(text, subtitle.index)
            raise SidecarError(
                f"{path.name}, line {line}: subtitle {subtitle.index} ends before it starts"
            )


def _line_of_index(text: str, index: int | None) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() == str(index):
            return number
    return 1


def _tagged_captions(media: Path) -> list[tuple[str, Path]]:
    """(tag, path) of the `clip.<tag>.srt` files next to `clip.mp4` whose tag looks like a
    language (two or three letters): clip.final.srt belongs to clip.final.mp4, not clip.mp4."""
    prefix = media.stem + "."
    try:
        siblings = sorted(media.parent.iterdir())
    except OSError:
        return []
    tagged = []
    for path in siblings:
        name = path.name
        if name.startswith(prefix) and name.lower().endswith(".srt"):
            tag = name[len(prefix) : -len(".srt")]
            if _LANGUAGE_LIKE.match(tag):
                tagged.append((tag, path))
    return tagged


def caption_files(media: Path, default_language: str) -> list[tuple[str, Path]]:
    """(language, path) of every caption sidecar of `media`, by language."""
    found: dict[str, Path] = {}
    plain = media.with_suffix(".srt")
    if plain.is_file():
        found[language_code(default_language) or default_language] = plain
    for tag, path in _tagged_captions(media):
        language = language_code(tag)
        if language is None:
            raise SidecarError(
                f"{path.name}: {tag!r} is not an ISO 639 language code",
                "name it like clip.fr.srt or clip.fra.srt",
            )
        if language in found and found[language] != path:
            raise SidecarError(
                f"{path.name} and {found[language].name} are both captions in {language}",
                "keep one of them",
            )
        found[language] = path
    return sorted(found.items())


def read_captions(media: Path, default_language: str) -> list[Caption]:
    captions = []
    for language, path in caption_files(media, default_language):
        text = read_text(path)
        _validate_srt(path, text)
        captions.append(Caption(language, path, text))
    return captions


# --- all of it -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sidecars:
    metadata: Metadata
    captions: list[Caption]

    @property
    def paths(self) -> list[Path]:
        """Every file these were read from, the shared _defaults.json files included."""
        return [Path(s) for s in self.metadata.sources] + [c.path for c in self.captions]


def read_sidecars(media: Path, root: Path, default_language: str) -> Sidecars:
    return Sidecars(read_metadata(media, root), read_captions(media, default_language))


def own_sidecar_paths(media: Path) -> list[Path]:
    """Files that belong to `media` and follow it when it is moved or deleted."""
    own = [own_metadata_file(media), media.with_suffix(".srt")]
    tagged = [path for tag, path in _tagged_captions(media) if language_code(tag)]
    return [path for path in own if path.is_file()] + tagged


def newest_change(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        try:
            newest = max(newest, path.stat().st_mtime)
        except OSError:
            continue
    return newest
