"""The one exception tree of ingestd.

    IngestdError
    ├── ConfigError            the config cannot be used; names the key and how to fix it
    ├── LedgerBusy             another `ingestd run` holds the ledger
    ├── LedgerError            the ledger cannot be read: not there, corrupt, another schema
    ├── JobInputError          one job's own input is bad (empty, unreadable, vanished file)
    ├── FileChanged            the file is no longer the version the job hashed: settle again
    ├── NotComplete            the file is not complete yet: it waits as `settling`
    │   ├── StillWritten           a process has it open for writing
    │   └── IncompleteContainer    its container's headers say bytes are missing
    ├── WatchFolderMissing     the watch folder is gone (an unmounted share): the job waits
    ├── Cancelled              the daemon is stopping; the work goes back to the queue
    └── WistiaError            an answer (or no answer) from Wistia, classified once in wistia.py
        ├── TransientError     try again later: connection errors, timeouts, 5xx, 429
        ├── HoldError          stop uploading for the whole account until a probe succeeds
        │   ├── VideoLimitError    400 "exceeded its video limit"
        │   └── AuthError          401 / 403
        └── PermanentError     this request will never succeed as it is: other 4xx
            ├── NotFoundError      404 (for example a media deleted in Wistia)
            └── MediaFailed        Wistia could not process the media (or took too long)

Each error carries a short `reason` (what happened) and, where the user can act, a `hint`
(what to do). Messages never contain the API token: it only ever travels in a header.
What each of them does to a job is decided in one place: outcomes.decide.
"""

from __future__ import annotations

import os


class IngestdError(Exception):
    """Base of every error ingestd raises on purpose."""

    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.reason} ({self.hint})" if self.hint else self.reason


class ConfigError(IngestdError):
    """The configuration is missing, malformed or unsafe."""


class LedgerBusy(IngestdError):
    """Another daemon already runs on this ledger."""


class LedgerError(IngestdError):
    """The ledger file cannot be used: missing, not a database, from another ingestd."""


class JobInputError(IngestdError):
    """A job's own input is unusable.

    `fatal` jobs fail for good (an empty file); the others are held until the file is fixed.
    """

    def __init__(self, reason: str, hint: str | None = None, *, fatal: bool = False) -> None:
        super().__init__(reason, hint)
        self.fatal = fatal


class FileChanged(IngestdError):
    """The file at the job's path is not the version the job settled on: it settles again."""

    def __init__(self, stat: os.stat_result, reason: str = "file changed before or during upload"):
        super().__init__(reason)
        self.stat = stat


class NotComplete(IngestdError):
    """The file is quiet but not complete (SPEC, pipeline step 2): it goes on settling."""


class StillWritten(NotComplete):
    """A process on this machine has the file open for writing."""


class IncompleteContainer(NotComplete):
    """The file's MP4 or Matroska headers say it is cut short."""


class WatchFolderMissing(IngestdError):
    """The watch folder itself is gone (an unmounted share): not the job's fault, it waits."""


class Cancelled(IngestdError):
    """Raised inside an in-flight request when the daemon is asked to stop."""

    def __init__(self, reason: str = "daemon stopping") -> None:
        super().__init__(reason)


class WistiaError(IngestdError):
    """Anything that went wrong talking to Wistia."""

    def __init__(
        self, reason: str, hint: str | None = None, *, status_code: int | None = None
    ) -> None:
        super().__init__(reason, hint)
        self.status_code = status_code


class TransientError(WistiaError):
    """Worth retrying: the same request may well succeed later."""

    def __init__(
        self,
        reason: str,
        hint: str | None = None,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, hint, status_code=status_code)
        # Seconds Wistia asked us to wait (Retry-After), if it said.
        self.retry_after = retry_after


class HoldError(WistiaError):
    """The whole account cannot upload now; every job waits, none is failed."""

    kind = "hold"


class VideoLimitError(HoldError):
    kind = "video_limit"


class AuthError(HoldError):
    kind = "auth"


class PermanentError(WistiaError):
    """Wistia refused this request for a reason retrying will not change."""


class NotFoundError(PermanentError):
    """Wistia has no such thing (HTTP 404)."""


class ForbiddenError(PermanentError):
    """HTTP 403: the token is fine, but the plan or the token's permissions do not allow this
    one request (a feature such as captions or swap). That request's trouble, not the account's."""


class MediaFailed(PermanentError):
    """Wistia could not process the media, or processing took longer than allowed."""
