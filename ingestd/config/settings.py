"""Settings: a TOML file plus `INGESTD_*` environment overrides, validated by pydantic.

Precedence, highest first: values the CLI sets (for `run --sandbox`), the environment
(`INGESTD_WISTIA__API_TOKEN`), the TOML file, the defaults below. The API token may also come
from `wistia.api_token_file` or the systemd credential `wistia-token`.

Every problem becomes one `ConfigError` that names the key; the token's value never appears in
an error (pydantic's own messages would echo the input, so we build ours from its locations).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from ingestd.config.file import (
    CREDENTIAL_NAME,
    DEFAULT_LEDGER,
    MAX_TOKEN_BYTES,
    read_config_file,
    read_small_file,
)
from ingestd.config.limits import UploadHours, parse_bandwidth
from ingestd.core.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WistiaSettings(_Section):
    api_token: SecretStr = SecretStr("")
    api_token_file: Path | None = None
    upload_url: str = "https://upload.wistia.com/"
    api_url: str = "https://api.wistia.com/v1/"
    project_id: str = ""
    requests_per_minute: int = Field(600, ge=1, le=100_000)
    # Connect/write/pool timeout and the read timeout of Data API calls.
    timeout_seconds: float = Field(30.0, gt=0)
    # How long to wait for Wistia's answer once an upload's last byte is sent.
    upload_timeout_seconds: float = Field(600.0, gt=0)
    # Where Wistia serves Swap (its newer API), and the release pinned with
    # X-Wistia-API-Version there (current-api-facts.md).
    swap_url: str = "https://api.wistia.com/modern/"
    api_version: str = "2026-03"

    @field_validator("api_token_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("api_version")
    @classmethod
    def _release(cls, value: str) -> str:
        value = value.strip()
        if not value or not all(c.isalnum() or c in "-._" for c in value) or len(value) > 40:
            raise ValueError('must be a release name such as "2026-03"')
        return value

    @field_validator("upload_url", "api_url", "swap_url")
    @classmethod
    def _https_unless_loopback(cls, url: str) -> str:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https:// URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError(
                "plain http:// is refused for a non-loopback host (the token would travel "
                "unencrypted); use https://"
            )
        return url.strip().rstrip("/") + "/"


class IngestSettings(_Section):
    workers: int = Field(3, ge=1, le=64)
    settle_seconds: float = Field(5.0, ge=0)
    rescan_seconds: float = Field(300.0, gt=0)
    observer: Literal["auto", "native", "polling"] = "auto"
    extensions: list[str] = Field(
        default_factory=lambda: [
            "mp4",
            "mov",
            "m4v",
            "avi",
            "mkv",
            "webm",
            "wmv",
            "flv",
            "mpg",
            "mpeg",
            "3gp",
            "mp3",
            "m4a",
            "wav",
        ]
    )
    ignore: list[str] = Field(
        default_factory=lambda: [".*", "*.part", "*.tmp", "*.crdownload", "~*"]
    )
    max_attempts: int = Field(10, ge=1)
    after_upload: Literal["keep", "move", "delete"] = "keep"
    archive_dir: str = ""
    # Growing interval between status polls of a media Wistia is processing.
    poll_min_seconds: float = Field(5.0, gt=0)
    poll_max_seconds: float = Field(60.0, gt=0)
    # Backoff between attempts after a transient error (jittered, doubling).
    retry_min_seconds: float = Field(5.0, gt=0)
    retry_max_seconds: float = Field(600.0, gt=0)
    # A media still processing after this long fails.
    processing_timeout_seconds: float = Field(6 * 3600.0, gt=0)
    # Growing interval between probes while uploading is on hold (video limit, auth).
    probe_min_seconds: float = Field(60.0, gt=0)
    probe_max_seconds: float = Field(3600.0, gt=0)
    # All uploads together, bytes per second ("20M"; K/M/G = 1024^n); empty: no limit.
    upload_bandwidth: str = ""
    # New uploads start only inside this local-time window ("19:00-07:00"); empty: always.
    upload_hours: str = ""
    # One `GET /v1/medias.json` answers for many medias in processing; false: one per media.
    batch_polling: bool = True
    # A file failing the container check (a cut MP4 or MKV) this long is failed.
    incomplete_after_seconds: float = Field(3600.0, gt=0)
    # Delete a done media whose bytes a later version at the same path proves partial
    # (swapped into it where new_version is "replace").
    replace_partial: bool = True
    # A new version of a done file: swapped into its media in place ("replace"), or a second
    # media beside it ("add").
    new_version: Literal["replace", "add"] = "replace"
    # A file older than the ledger, at a path with no done version, is looked for in Wistia
    # before it is uploaded (a first start on a library, a lost ledger): found, it is adopted.
    adopt: bool = True
    # <watch_dir>/<Name>/... goes to the Wistia project named <Name> (found or made).
    project_from_folder: bool = False
    # Sidecars created or changed after a media is done are applied to it (after_upload keep).
    resync: bool = True
    # <file name>.wistia.json written where a done file ends up (keep and move).
    receipts: bool = False

    @field_validator("upload_bandwidth")
    @classmethod
    def _bandwidth(cls, value: str) -> str:
        parse_bandwidth(value)  # raises with what is wrong
        return value.strip()

    @field_validator("upload_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        UploadHours.parse(value)
        return value.strip()

    @property
    def bandwidth(self) -> float | None:
        """Bytes per second for all uploads together, or None: no limit."""
        return parse_bandwidth(self.upload_bandwidth)

    @property
    def hours(self) -> UploadHours | None:
        return UploadHours.parse(self.upload_hours)

    @property
    def longest_wait_seconds(self) -> float:
        """The longest wait these settings let the daemon set (the backoff caps)."""
        return max(self.poll_max_seconds, self.retry_max_seconds, self.probe_max_seconds)

    @field_validator("extensions")
    @classmethod
    def _normalise_extensions(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip().lower().lstrip(".") for v in values]
        if not all(cleaned):
            raise ValueError("an extension is empty")
        return cleaned


NotifyEvent = Literal["done", "failed", "held"]
# A URL's scheme, as Apprise and RFC 3986 spell it: the only part of a URL an error may name.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")


def url_scheme(url: str) -> str | None:
    """The scheme of `scheme://...`, or None when `url` does not begin like a URL."""
    scheme, sep, rest = url.strip().partition("://")
    return scheme.lower() if sep and rest and _SCHEME.fullmatch(scheme) else None


class NotifySettings(_Section):
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    command: list[str] = Field(default_factory=list)
    events: list[NotifyEvent] = Field(default_factory=lambda: ["done", "failed"])
    max_age_hours: float = Field(24.0, gt=0)
    # One delivery attempt: the webhook's answer, the command's run, a message, at most this.
    timeout_seconds: float = Field(10.0, gt=0, le=600)
    # Messages for people: Apprise URLs (Slack, Teams, email, ...), each a receiver of its own.
    urls: list[SecretStr] = Field(default_factory=list)
    # Events within this window go to each URL as one message; 0: each at once. At most an
    # hour: a due time further ahead would look like a clock that stepped (core.clock).
    digest_seconds: float = Field(60.0, ge=0, le=3600)
    # A GET every heartbeat_seconds while the daemon is healthy (a dead man's switch).
    heartbeat_url: SecretStr = SecretStr("")
    heartbeat_seconds: float = Field(300.0, ge=1)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("urls")
    @classmethod
    def _apprise_urls(cls, values: list[SecretStr]) -> list[SecretStr]:
        """Each `scheme://...` (whether Apprise can send to it is asked by `ingestd check` and
        the daemon: Apprise is imported only where messages are sent). A bad one is named by
        its place in the list, never quoted: URLs hold secrets."""
        cleaned = []
        for number, value in enumerate(values, 1):
            text = value.get_secret_value().strip()
            if url_scheme(text) is None:
                raise ValueError(
                    f"URL {number} of {len(values)} is not an Apprise URL such as "
                    "slack://... or mailto://... (not shown: URLs hold secrets)"
                )
            cleaned.append(SecretStr(text))
        return cleaned

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat_http_url(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        parts = urlsplit(text)
        if text and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("must be an http:// or https:// URL (not shown: it may hold a key)")
        return SecretStr(text)

    @field_validator("command")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        if value and not value[0].strip():
            raise ValueError("the program (the first item) is empty")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or self.command or self.urls)


def parse_listen(value: str) -> tuple[str, int]:
    """ "127.0.0.1:9464" or "[::1]:9464" -> (host, port)."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError('must be "host:port", e.g. "127.0.0.1:9464"')
    return host, int(port)


def _listen_address(value: str) -> str:
    value = value.strip()
    if value:
        parse_listen(value)
    return value


# "host:port" or empty (off), checked where it is read.
ListenAddress = Annotated[str, AfterValidator(_listen_address)]


class MetricsSettings(_Section):
    listen: ListenAddress = ""


class WebSettings(_Section):
    listen: ListenAddress = ""
    user: str = Field("ingestd", min_length=1)
    password_file: str = ""

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if ":" in value or not value.isprintable():
            raise ValueError("must not contain ':' or control characters")
        return value

    @property
    def loopback(self) -> bool:
        return _is_loopback(parse_listen(self.listen)[0]) if self.listen else True


class CaptionsSettings(_Section):
    default_language: str = Field("eng", min_length=2, max_length=3)


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INGESTD_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    watch_dir: Path
    ledger: Path = DEFAULT_LEDGER
    wistia: WistiaSettings = Field(default_factory=WistiaSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    captions: CaptionsSettings = Field(default_factory=CaptionsSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @model_validator(mode="after")
    def _archive_needed_for_move(self) -> Settings:
        if self.ingest.after_upload == "move" and not self.ingest.archive_dir:
            raise ValueError('ingest.archive_dir: required when ingest.after_upload = "move"')
        return self

    @model_validator(mode="after")
    def _web_shared_only_with_a_password(self) -> Settings:
        if not self.web.loopback and not self.web.password_file:
            raise ValueError(
                f"web.listen: {self.web.listen} is not a loopback address and "
                "web.password_file is not set; set a password file (basic auth), or listen "
                "on 127.0.0.1 behind a proxy with its own authentication"
            )
        return self


def _settings_class(from_file: dict[str, Any] | None) -> type[Settings]:
    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(  # type: ignore[override]
            cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
        ):
            sources = [init_settings, env_settings]
            if from_file is not None:
                sources.append(InitSettingsSource(settings_cls, init_kwargs=from_file))
            return tuple(sources)

    return _Loaded


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if not key:
        return message  # a check across keys; its message names them
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check its spelling and section)"
    return f"{key}: {message}"


def load_settings(path: Path | None, **overrides: Any) -> Settings:
    """Read and validate the settings; relative paths are taken from the config file's folder."""
    from_file = read_config_file(path) if path is not None else None
    try:
        settings = _settings_class(from_file)(**overrides)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"invalid config{where}: {problems}") from None
    except SettingsError as exc:  # an INGESTD_* variable that should hold JSON does not
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"INGESTD_{field.group(1).upper()}" if field else "an INGESTD_* variable"
        raise ConfigError(
            f"invalid config in the environment: {name} is not valid JSON",
            f"unset {name}, or set single keys like {name}__KEY",
        ) from None
    base = path.resolve().parent if path else Path.cwd()
    return _resolve_paths(settings, base)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    settings.watch_dir = (base / settings.watch_dir.expanduser()).resolve()
    settings.ledger = (base / settings.ledger.expanduser()).absolute()
    if settings.ingest.archive_dir:
        settings.ingest.archive_dir = str((base / settings.ingest.archive_dir).resolve())
    if settings.wistia.api_token_file:
        settings.wistia.api_token_file = (base / settings.wistia.api_token_file).absolute()
    if settings.web.password_file:
        settings.web.password_file = str((base / settings.web.password_file).absolute())
    return settings


def read_web_password(settings: Settings) -> str:
    """The status page's password: the first line of `web.password_file`, surrounding
    whitespace stripped; empty when no file is set."""
    if not settings.web.password_file:
        return ""
    text = read_small_file(Path(settings.web.password_file), MAX_TOKEN_BYTES, "password file")
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise ConfigError(
            f"web.password_file: {settings.web.password_file} holds no password",
            "write the password on its first line",
        )
    return password


def resolve_token(settings: Settings) -> str:
    """The API token from the config, the token file, or the systemd credential."""
    token = settings.wistia.api_token.get_secret_value().strip()
    source = "wistia.api_token"
    if not token and settings.wistia.api_token_file:
        source = "wistia.api_token_file"
        token = _read_secret(settings.wistia.api_token_file, source)
    if not token and os.environ.get("CREDENTIALS_DIRECTORY"):
        credential = Path(os.environ["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAME
        if credential.exists():
            source = f"credential {CREDENTIAL_NAME}"
            token = _read_secret(credential, source)
    if not token:
        raise ConfigError(
            "wistia.api_token: no API token configured",
            "set wistia.api_token or wistia.api_token_file, the environment variable "
            "INGESTD_WISTIA__API_TOKEN, or a systemd credential named wistia-token",
        )
    if any(ch.isspace() for ch in token) or not token.isprintable():
        raise ConfigError(f"{source}: the token contains spaces or control characters")
    return token


def _read_secret(path: Path, key: str) -> str:
    try:
        return read_small_file(path, MAX_TOKEN_BYTES, "token file").strip()
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc.reason}", exc.hint) from None
