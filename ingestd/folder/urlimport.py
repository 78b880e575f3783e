"""`.url` files: a media that Wistia imports from the web instead of a file we upload.

A `.url` file holds one URL on a line, or the `[InternetShortcut]` format with `URL=...`. Only
http(s) URLs are accepted. Dropbox share links are rewritten to the direct form the Upload API
page lists as supported (`https://dl.dropbox.com/s/<id>/<name>`): Wistia does not follow
`?dl=1`. The URL is sent form-encoded, so a presigned S3 URL's query string survives intact.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import (
    SplitResult,
    parse_qsl,
    quote,
    unquote,
    urlencode,
    urlsplit,
    urlunsplit,
)

from ingestd.core.errors import JobInputError
from ingestd.core.names import display
from ingestd.folder.files import read_bounded

# A .url file is one line; anything this large is not one.
MAX_URL_FILE_BYTES = 64 * 1024

DROPBOX_HOSTS = {"dropbox.com", "www.dropbox.com", "dl.dropbox.com"}
DROPBOX_SWITCHES = {"dl", "raw"}  # query parameters Wistia does not support


def read_url_file(path: Path, root: Path) -> str:
    """The URL in a `.url` file, checked and rewritten for Wistia."""
    try:
        raw = read_bounded(path, root, MAX_URL_FILE_BYTES, "a .url file")
    except FileNotFoundError:
        raise JobInputError(
            "the .url file vanished before it could be imported", fatal=True
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise JobInputError(
            f"{display(path.name)}: not UTF-8 text", "save it as UTF-8 with one URL in it"
        ) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    url = next((line[4:].strip() for line in lines if line.lower().startswith("url=")), None)
    if url is None and len(lines) == 1 and not lines[0].startswith("["):
        url = lines[0]
    if not url:
        raise JobInputError(
            f"{display(path.name)} holds no URL",
            "write one URL on a line, or an [InternetShortcut] section with URL=...",
        )
    return for_wistia(url, display(path.name))


def for_wistia(url: str, source: str = "the .url file") -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise JobInputError(f"{source}: not a valid URL", "put one http(s) URL in it") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        scheme = parts.scheme.lower() if parts.scheme.isalnum() else ""
        found = f"a {scheme}:// URL" if scheme else "no http(s) URL"
        raise JobInputError(
            f"{source}: only http:// and https:// URLs can be imported, and this holds {found}",
            "put the web address of the media file in it",
        )
    # Characters a URL may not carry as they are (spaces, say) are escaped; escapes stay.
    path = quote(parts.path, safe="/%:@!$&'()*+,;=~-._")
    query = quote(parts.query, safe="=&%/:+,;@!$'()*~-._?")
    parts = parts._replace(scheme=parts.scheme.lower(), path=path, query=query)
    if (parts.hostname or "").lower() in DROPBOX_HOSTS:
        parts = _dropbox_direct(parts)
    return urlunsplit(parts)


def _dropbox_direct(parts: SplitResult) -> SplitResult:
    """https://www.dropbox.com/s/ID/clip.mp4?dl=0 -> https://dl.dropbox.com/s/ID/clip.mp4"""
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k not in DROPBOX_SWITCHES
        ]
    )
    if parts.path.startswith("/s/raw/"):
        return parts._replace(scheme="https", query=query)
    return parts._replace(scheme="https", netloc="dl.dropbox.com", query=query)


def media_name_of(url: str) -> str:
    """The name Wistia would give an import: the file name at the end of the URL's path."""
    name = unquote(PurePosixPath(urlsplit(url).path).name)
    return name or (urlsplit(url).hostname or "import")
