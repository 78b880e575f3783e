"""The config file: where it is and how it is read (a regular file, bounded, UTF-8, TOML).

Also what the commands that only read need from the config, without validating all of it:
`status` must answer in a blink, and importing pydantic alone takes longer than the whole
command may. `read_for_status` takes the same file and environment as config.load_settings
for the four values `status` uses, and says when it cannot (anything unusual), so that the
caller loads the settings in full instead, with their validation and error messages.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingestd.config.limits import UploadHours
from ingestd.core.errors import ConfigError

DEFAULT_CONFIG_PATHS = (Path("ingestd.toml"), Path("/etc/ingestd/config.toml"))
DEFAULT_LEDGER = Path("/var/lib/ingestd/ledger.db")
CREDENTIAL_NAME = "wistia-token"
# A config or token file larger than this is not one (and is never read whole).
MAX_CONFIG_BYTES = 1024 * 1024
MAX_TOKEN_BYTES = 64 * 1024


def find_config(explicit: str | None) -> Path | None:
    """The config file to read: --config, $INGESTD_CONFIG, ./ingestd.toml, /etc/ingestd/..."""
    chosen = explicit or os.environ.get("INGESTD_CONFIG")
    if chosen:
        path = Path(chosen)
        if not path.exists():
            raise ConfigError(
                f"config file {path} does not exist",
                "pass --config with the right path, or unset INGESTD_CONFIG",
            )
        if not path.is_file():
            raise ConfigError(f"config file {path} is not a regular file")
        return path
    return next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)


def read_small_file(path: Path, limit: int, what: str) -> str:
    """A config or token file's text: a regular file (links to one are fine: an
    administrator's choice), at most `limit` bytes, UTF-8. ConfigError naming it otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} {path}: {exc.strerror}",
            "check the path and that the ingestd user may read it",
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        data = os.read(fd, limit + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ConfigError(f"{what} {path} is larger than {limit // 1024} KiB: not a {what}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{what} {path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x})",
            "save it as UTF-8",
        ) from None


def read_config_file(path: Path) -> dict[str, Any]:
    """The config file's TOML, parsed; every problem one ConfigError naming the file."""
    text = read_small_file(path, MAX_CONFIG_BYTES, "config file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


# --- what `status` needs --------------------------------------------------------------------


class Unusual(Exception):
    """Something `read_for_status` does not read itself: load the settings in full."""


@dataclass(frozen=True)
class StatusConfig:
    ledger: Path
    settle_seconds: float
    hours: UploadHours | None
    token: str | None  # only to redact output; None when it cannot be read


def read_for_status(path: Path | None) -> StatusConfig:
    """The ledger's path, settle_seconds, upload_hours and the token, as load_settings would
    have them: the file, then INGESTD_* variables over it, paths from the file's folder."""
    values = read_config_file(path) if path is not None else {}
    env = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith("INGESTD_")}
    if {"INGESTD_INGEST", "INGESTD_WISTIA"} & env.keys():
        raise Unusual("a section given as JSON in the environment")
    ingest, wistia = _table(values, "ingest"), _table(values, "wistia")
    base = path.resolve().parent if path is not None else Path.cwd()
    ledger = _text(env.get("INGESTD_LEDGER", values.get("ledger", str(DEFAULT_LEDGER))))
    settle = env.get("INGESTD_INGEST__SETTLE_SECONDS", ingest.get("settle_seconds", 5.0))
    hours = _text(env.get("INGESTD_INGEST__UPLOAD_HOURS", ingest.get("upload_hours", "")))
    try:
        settle_seconds = float(settle)
        window = UploadHours.parse(hours)
    except (TypeError, ValueError):
        raise Unusual("a value to validate") from None
    return StatusConfig(
        ledger=(base / Path(ledger).expanduser()).absolute(),
        settle_seconds=settle_seconds,
        hours=window,
        token=_token(env, wistia, base),
    )


def _table(values: dict[str, Any], name: str) -> dict[str, Any]:
    table = values.get(name, {})
    if not isinstance(table, dict):
        raise Unusual(f"[{name}] is not a table")
    return table


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise Unusual("a value to validate")
    return value


def _token(env: dict[str, str], wistia: dict[str, Any], base: Path) -> str | None:
    """The token as config.resolve_token finds it, or None: here it only serves to redact."""
    token = env.get("INGESTD_WISTIA__API_TOKEN", wistia.get("api_token"))
    if isinstance(token, str) and token.strip():
        return token.strip()
    sources = []
    token_file = env.get("INGESTD_WISTIA__API_TOKEN_FILE", wistia.get("api_token_file"))
    if isinstance(token_file, str) and token_file:
        sources.append(base / token_file)
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        sources.append(Path(os.environ["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAME)
    for source in sources:
        try:
            return read_small_file(source, MAX_TOKEN_BYTES, "token file").strip() or None
        except ConfigError:
            continue
    return None
