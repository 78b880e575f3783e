"""Re-sync after done: sidecars created or changed after a media is done reach that media.

While a done media's file stays in the watch folder (`after_upload = "keep"`), the watcher
marks it due for a re-sync when one of its sidecars (`clip.json`, a caption file, the
thumbnail) or a `_defaults.json` above it changes (`resync_due_at`). This stage then applies
what changed with finishing's own sync (pipeline.finish.sync): each step is recorded with a
digest, so an unchanged sidecar is never sent twice; no new upload; deleting a sidecar
removes nothing.

The job stays `done` throughout. Its history gets an event per sidecar applied; trouble (a bad
sidecar, a media deleted in Wistia, Wistia unreachable) shows as the job's `reason` and is
decided by the outcome policy (Stage.RESYNC), never a state change. Marked jobs are taken a
few at a time, so a `_defaults.json` above thousands of medias is spent within the request
budget (the client's rate limit) like anything else.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core.errors import JobInputError
from ingestd.core.jobs import Job, JobState
from ingestd.core.outcomes import Stage
from ingestd.folder.files import is_this_version, open_folder
from ingestd.folder.sidecars import DEFAULTS_NAME, changed_within, is_receipt, read_sidecars
from ingestd.ledger import Ledger, Ledgers
from ingestd.pipeline.finish import receipt
from ingestd.pipeline.finish.sync import SidecarSync, refusals
from ingestd.pipeline.finish.thumbnail import waiting_for
from ingestd.pipeline.loop import WistiaStage
from ingestd.wistia.client import WistiaClient

log = logs.get("ingestd.resync")

RESYNC_BATCH = 20  # done jobs taken per pass
# A file's times come from the kernel's coarse clock, which may lag the one a read was timed
# with: a change this close before a read still counts as after it (a false alarm is cheap).
READ_MARGIN_SECONDS = 2.0
SIDECAR_SUFFIXES = (".json", ".srt", ".jpg", ".jpeg", ".png")


def enabled(settings: Settings) -> bool:
    return settings.ingest.resync and settings.ingest.after_upload == "keep"


class Resync(WistiaStage):
    kind = Stage.RESYNC

    def __init__(
        self,
        settings: Settings,
        ledgers: Ledgers,
        client: WistiaClient,
        stop: threading.Event,
    ) -> None:
        super().__init__(settings, ledgers, client, stop)
        self.sync = SidecarSync(client, self.clock)

    def run(self) -> None:
        self.run_through_due(
            lambda ledger, now: ledger.resync.due(now, RESYNC_BATCH),
            self.resync,
            lambda ledger, now: ledger.resync.soonest(now),
            woken_by=(JobState.DONE,),
        )

    def resync(self, ledger: Ledger, job: Job) -> None:
        """Apply what changed in one done job's sidecars."""
        read_at = self.clock.wall()  # as the sidecars' own mtimes
        if not enabled(self.settings):
            ledger.update(job, resync_due_at=None)
            return
        if not self._still_here(ledger, job):  # nothing to apply, now or at the next scan
            ledger.update(job, resync_due_at=None, sidecars_read_at=read_at)
            return
        # Stamped before anything is sent: whatever this re-sync ends in (sent, a bad sidecar,
        # the media deleted in Wistia), a scan marks the job again only for a later change.
        # An end that should look again (a retry, a hold, a crash) keeps the mark itself.
        job = ledger.update(job, sidecars_read_at=read_at)
        now = self.clock.now()
        sidecars = read_sidecars(
            Path(job.path), self.settings.watch_dir, self.settings.captions.default_language
        )
        settle = self.settings.ingest.settle_seconds
        if changed_within(sidecars.paths, read_at, settle):
            ledger.update(job, resync_due_at=now + settle)  # still being written: settle
            return
        sent = self.sync.apply(ledger, job, sidecars, resync=True)
        if sent is None:
            assert sidecars.thumbnail is not None
            wait = now + self.settings.ingest.poll_min_seconds
            ledger.update(job, resync_due_at=wait, reason=waiting_for(sidecars.thumbnail))
            return
        for step in sent:
            ledger.note(job, f"re-synced after done: {step}")
        if sent:  # the receipt says what the media has now
            receipt.write_for(ledger, self.settings, self.client, job)
        ledger.resync.finished(job, read_at, refusals(ledger, job))
        if sent:
            log.info("re-synced a done media", steps=sent)

    def _still_here(self, ledger: Ledger, job: Job) -> bool:
        """The done version's file is still at its path, and no newer version owns it."""
        if not is_this_version(job):
            return False
        latest = ledger.jobs.latest_for_path(job.path)
        return latest is not None and latest.id == job.id


def changed_unseen(ledger: Ledger, watch_dir: Path) -> list[int]:
    """The done jobs with a sidecar (or a `_defaults.json` above them) changed since their
    sidecars were last read, found by file times: changes made while the daemon was
    stopped, whose events the kernel dropped, or made while the job was finishing. One
    listing per folder. A false alarm costs a read of the sidecars, never a request: the
    digests of what was sent decide what is sent again."""
    by_folder: dict[str, list[tuple[int, str, float]]] = {}
    for job_id, path, read_at in ledger.resync.read_at():
        folder, name = os.path.split(path)  # strings, not Paths: this runs over every done job
        stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
        by_folder.setdefault(folder, []).append((job_id, stem, read_at - READ_MARGIN_SECONDS))
    defaults = _DefaultsTimes(watch_dir)
    marked = []
    for folder, jobs in by_folder.items():
        newest = _sidecar_times_by_stem(Path(folder), watch_dir)
        above = defaults.newest_above(Path(folder))
        for job_id, stem, read_at in jobs:
            if max(newest.get(stem, 0.0), above) > read_at:
                marked.append(job_id)
    return marked


def _changed_at(entry: os.stat_result) -> float:
    # ctime too: `mv` of an older file keeps its mtime but is a change here.
    return max(entry.st_mtime, entry.st_ctime)


def _sidecar_times_by_stem(folder: Path, watch_dir: Path) -> dict[str, float]:
    """stem -> when a sidecar of a media with that stem last changed (`clip.en.srt` counts
    for `clip`). Broader than the sidecar rules on purpose: an extra mark costs nothing. The
    folder is reached from the watch folder without following a link (files.open_folder)."""
    newest: dict[str, float] = {}
    try:
        fd = open_folder(folder, watch_dir)
    except (OSError, JobInputError):
        return newest  # gone, unreadable, or a link now: its files are not here to re-sync
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                name = entry.name
                if not name.lower().endswith(SIDECAR_SUFFIXES) or is_receipt(name):
                    continue
                try:
                    changed = _changed_at(entry.stat(follow_symlinks=False))
                except OSError:
                    continue
                stem = name.rsplit(".", 1)[0]
                stems = [stem]
                if name.lower().endswith(".srt") and "." in stem:
                    stems.append(stem.rsplit(".", 1)[0])
                for one in stems:
                    newest[one] = max(newest.get(one, 0.0), changed)
    except OSError:
        pass  # the folder went away while listed
    finally:
        os.close(fd)
    return newest


class _DefaultsTimes:
    """When the `_defaults.json` files in a folder and above it last changed, each looked
    at once per scan."""

    def __init__(self, watch_dir: Path) -> None:
        self.watch_dir = watch_dir
        self._own: dict[Path, float] = {}

    def newest_above(self, folder: Path) -> float:
        if not folder.is_relative_to(self.watch_dir):
            return 0.0
        newest = 0.0
        while True:
            newest = max(newest, self._own_time(folder))
            if folder == self.watch_dir:
                return newest
            folder = folder.parent

    def _own_time(self, folder: Path) -> float:
        if folder not in self._own:
            try:
                self._own[folder] = _changed_at(os.lstat(folder / DEFAULTS_NAME))
            except OSError:
                self._own[folder] = 0.0
        return self._own[folder]
