"""Projects from folders: a media below `<watch_dir>/<Name>/` goes to the Wistia project named
exactly `<Name>` (`ingest.project_from_folder`).

The project is found by listing `GET /v1/projects.json` (every page) or made with
`POST /v1/projects.json`, and remembered in the ledger: one look-up per folder, not per file.
Each folder name has its own lock, so workers uploading into a new folder at once make one
project, not several; and because the list is read before anything is made, a crash between
making the project and remembering it finds that project again after the restart instead of
making a second one. A project deleted in Wistia meanwhile is forgotten when an upload is
refused for it, and found or made again on the next attempt.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ingestd import logs
from ingestd.core.names import display, wistia_name
from ingestd.ledger import Ledger
from ingestd.wistia.client import WistiaClient
from ingestd.wistia.models import PER_PAGE, Project

log = logs.get("ingestd.projects")

# A list of projects longer than this many pages is not read to its end (100 per page).
MAX_PAGES = 1000


def folder_of(path: Path, watch_dir: Path) -> str | None:
    """The name of the top folder below the watch folder that holds `path`, as Wistia gets
    names (undecodable bytes replaced); None for a file directly in the watch folder."""
    try:
        parts = path.relative_to(watch_dir).parts
    except ValueError:
        return None
    return wistia_name(parts[0]) if len(parts) >= 2 else None


class FolderProjects:
    """Folder name -> Wistia project, shared by the upload workers."""

    def __init__(self, client: WistiaClient) -> None:
        self.client = client
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def hashed_id_for(self, ledger: Ledger, name: str) -> str:
        """The project for folder `name`: remembered, else found by name, else made."""
        with self._lock_for(name):
            known = self._known_or_found(ledger, name)
            if known is not None:
                return known
            project = self.client.create_project(name)
            log.info(
                "created a project for a folder", folder=display(name), project=project.hashed_id
            )
            ledger.projects.remember(name, project.hashed_id)
            return project.hashed_id

    def every_project(self) -> dict[str, str]:
        """Every project's name -> the oldest project of that name, from one walk of the list
        (adoption asks for many folders at once: one walk, not one per folder)."""
        found: dict[str, Project] = {}
        for page in range(1, MAX_PAGES + 1):
            projects, held = self.client.projects(page)
            for project in projects:
                if project.name not in found or project.id < found[project.name].id:
                    found[project.name] = project
            if held < PER_PAGE:
                break
        return {name: project.hashed_id for name, project in found.items()}

    def _known_or_found(self, ledger: Ledger, name: str) -> str | None:
        """Remembered, else found by name in Wistia (and remembered); None: not there."""
        known = ledger.projects.named(name)
        if known is not None:
            return known
        project = self._find(name)
        if project is None:
            return None
        log.info("found the project for a folder", folder=display(name), project=project.hashed_id)
        ledger.projects.remember(name, project.hashed_id)
        return project.hashed_id

    def forget(self, ledger: Ledger, name: str, hashed_id: str) -> None:
        with self._lock_for(name):
            ledger.projects.forget(name, hashed_id)
        log.warning(
            "the folder's project is gone in Wistia; it is found or made again",
            folder=display(name),
            project=hashed_id,
        )

    def _find(self, name: str) -> Project | None:
        """The oldest project named exactly `name`, from every page of the list."""
        for page in range(1, MAX_PAGES + 1):
            projects, held = self.client.projects(page)
            matching = [p for p in projects if p.name == name]
            if matching:
                return min(matching, key=lambda p: p.id)
            if held < PER_PAGE:
                return None
        return None

    def _lock_for(self, name: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(name, threading.Lock())
