"""Which paths are media: an extension listed in `ingest.extensions` (or `.url`), no part of the
path ignored (`ingest.ignore`: dotfiles, `*.part`, ...), not a receipt, not inside the archive.
And the walk of the watch folder that finds them, never through a link."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from pathlib import Path

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core.jobs import JobKind
from ingestd.core.names import display
from ingestd.folder.sidecars import is_receipt

log = logs.get("ingestd.watcher")

URL_EXTENSION = "url"


class MediaFilter:
    """Which paths are media: extension listed (or `.url`), no ignored part, not archived."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.watch_dir
        self.extensions = set(settings.ingest.extensions)
        self.ignore = list(settings.ingest.ignore)
        archive = settings.ingest.archive_dir
        self.archive = Path(archive) if archive else None

    def kind(self, path: Path) -> JobKind | None:
        """The job kind for a path, or None when it is not ours to touch."""
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return None
        if self.archive and path.is_relative_to(self.archive):
            return None
        if any(self.ignored(part) for part in relative.parts) or is_receipt(path.name):
            return None
        extension = path.suffix.lower().lstrip(".")
        if extension == URL_EXTENSION:
            return JobKind.URL
        return JobKind.FILE if extension in self.extensions else None

    def ignored(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.ignore)

    def walk(self, top: Path | None = None) -> Iterator[Path]:
        """Every candidate path under `top` (the root); ignored folders not entered.

        os.fwalk opens each folder relative to its parent's descriptor and checks it is the
        folder it listed, so a folder swapped for a link while the scan runs is not entered.
        """
        for folder, dirs, files, _fd in os.fwalk(top or self.root, onerror=_log_walk_error):
            dirs[:] = [d for d in dirs if not self.ignored(d)]
            base = Path(folder)
            if self.archive and base.is_relative_to(self.archive):
                dirs[:] = []
                continue
            for name in files:
                path = base / name
                if self.kind(path) is not None:
                    yield path


def _log_walk_error(error: OSError) -> None:
    log.warning("cannot scan folder", folder=display(error.filename), error=error.strerror)
