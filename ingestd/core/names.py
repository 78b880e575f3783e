"""Names: how a file's name is shown, stored and sent, whatever bytes it holds.

File names are bytes on Linux. Python keeps undecodable bytes as surrogates: `raw` gets the
exact bytes back, `as_text` makes text any encoder takes (undecodable bytes as `\\xNN`),
`display` shows a name on one line (control characters escaped too), `wistia_name` is the name
Wistia gets (undecodable bytes replaced). `fits`, `sibling` and `fit_stem` keep derived names
within the file system's 255 bytes. Pure functions: no file is touched here (folder.files
does that).
"""

from __future__ import annotations

import os
from pathlib import Path

NAME_MAX = 255  # bytes in one file name (Linux file systems)
# Wistia's limit for a media's name (Upload API page), in characters.
MAX_NAME_LENGTH = 255


def raw(name: str | os.PathLike[str]) -> bytes:
    """The exact bytes of a name (Python keeps undecodable bytes as surrogates)."""
    return os.fsencode(name)


def as_text(name: str | os.PathLike[str]) -> str:
    """A name as text that any encoder takes: undecodable bytes as \\xNN, the rest exact."""
    if isinstance(name, str) and name.isascii():
        return name  # the common case, quickly: nothing undecodable in it
    return raw(name).decode("utf-8", "backslashreplace")


def display(name: str | os.PathLike[str]) -> str:
    """A name on one line: undecodable bytes as \\xNN, control characters escaped."""
    text = as_text(name)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if ch == "\r":
        return "\\r"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def wistia_name(name: str) -> str:
    """The name as Wistia gets it: valid UTF-8, undecodable bytes replaced with U+FFFD."""
    return raw(name).decode("utf-8", "replace")


def fits(name: str) -> bool:
    """Whether a file name fits the file system's limit, in bytes."""
    return len(raw(name)) <= NAME_MAX


def sibling(path: Path, name: str) -> Path | None:
    """`name` in the folder of `path`, or None when no file can have that name."""
    return path.with_name(name) if fits(name) else None


def fit_stem(stem: str, suffixes: list[str], mark: str = "") -> str:
    """`stem` + `mark`, cut short (by whole characters) so that it plus any of `suffixes`
    fits the file system's limit: `clip (1).mp4` from a 255-byte `clip.mp4`."""
    longest = max((len(raw(s)) for s in suffixes), default=0)
    budget = NAME_MAX - longest - len(raw(mark))
    while len(raw(stem)) > budget and stem:
        stem = stem[:-1]
    return stem + mark


def media_name(path: Path) -> str:
    """The name Wistia itself would choose: the file name with its extension, max 255."""
    name = wistia_name(path.name)
    if len(name) <= MAX_NAME_LENGTH:
        return name
    suffix = wistia_name(path.suffix)
    keep = MAX_NAME_LENGTH - len(suffix)
    return name[:keep] + suffix if keep > 0 else name[:MAX_NAME_LENGTH]
