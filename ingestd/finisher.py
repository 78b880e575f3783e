"""Finish: apply the sidecars to the processed media, decide the file's fate, mark it done.

Sidecars are read when the job gets here, so a caption dropped after its video still applies.
Each step (a changed name or description, the customizations, each caption language) is
recorded in the ledger with a digest of what was sent once Wistia accepted it; a crash between
two steps re-applies only the unrecorded ones, and every step is idempotent in Wistia anyway
(customizations replace, captions are replaced when they exist). Then `ingest.after_upload`:
keep, move to `archive_dir` (sidecars follow, nothing is overwritten) or delete.

Whatever goes wrong (a bad sidecar, Wistia's answer, a move that fails) ends in the job's state
through the guard and the outcome policy; `preflight` is also what the held jobs' recheck runs.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ingestd import logs
from ingestd.config import Settings
from ingestd.errors import JobInputError, NotFoundError, PermanentError
from ingestd.files import display, wistia_name
from ingestd.jobs import Job, JobState, version_of
from ingestd.ledger import Ledger
from ingestd.outcomes import Stage
from ingestd.sidecars import (
    CAPTIONS_STEP,
    CUSTOMIZATIONS_STEP,
    FATE_STEP,
    METADATA_STEP,
    Sidecars,
    digest,
    metadata_digest,
    newest_change,
    own_sidecar_paths,
    read_sidecars,
)
from ingestd.stageloop import Guard, work_through_jobs
from ingestd.wistia import WistiaClient

log = logs.get("ingestd.finisher")

Step = tuple[str, str, Callable[[], object]]  # name, digest of what is sent, the sending


class Finisher:
    def __init__(
        self,
        settings: Settings,
        ledger_path: Path,
        client: WistiaClient,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ledger_path = ledger_path
        self.client = client
        self.stop = stop
        self.guard = Guard(Stage.FINISH, settings, clock)

    def run(self) -> None:
        work_through_jobs(
            self.ledger_path, self.stop, Ledger.due_finishing, self.guard, self.finish
        )

    # --- finishing one job --------------------------------------------------------------

    def finish(self, ledger: Ledger, job: Job) -> None:
        sidecars = self.preflight(job)
        now, settle = self.guard.clock(), self.settings.ingest.settle_seconds
        if now - newest_change(sidecars.paths) < settle:
            reason = "waiting for its sidecar files to stop changing"
            ledger.update(job, next_attempt_at=now + settle, reason=reason)
            return
        for step, fingerprint, send in self._steps(job, sidecars, ledger):
            send()
            ledger.record_sidecar(job.id, step, fingerprint)
            log.info("applied sidecar", step=step)
        note = self._fate(ledger, job)
        ledger.move(job, JobState.DONE, note, error=None, next_attempt_at=None)
        log.info("done", fate=note)

    def preflight(self, job: Job) -> Sidecars:
        """The local checks of finishing, which the held jobs' recheck runs too: the sidecars
        read and valid, and the file's fate possible."""
        media = Path(job.path)
        sidecars = read_sidecars(
            media, self.settings.watch_dir, self.settings.captions.default_language
        )
        ingest = self.settings.ingest
        if ingest.after_upload == "keep" or not _is_this_version(media, job):
            return sidecars
        folders = [media.parent] + ([Path(ingest.archive_dir)] if ingest.archive_dir else [])
        for folder in folders:
            if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
                raise JobInputError(
                    f"cannot move or delete files in {display(folder)}",
                    "give the ingestd user write permission to the folder",
                )
        return sidecars

    def _steps(self, job: Job, sidecars: Sidecars, ledger: Ledger) -> Iterator[Step]:
        """What still has to be sent: each step whose digest the ledger lacks."""
        assert job.hashed_id is not None
        hashed_id = job.hashed_id
        applied = ledger.applied_sidecars(job.id)
        metadata = sidecars.metadata
        fields = {"name": metadata.name or job.media_name or wistia_name(Path(job.path).name)}
        if metadata.description is not None:
            fields["description"] = metadata.description
        wanted: list[Step] = [
            (
                METADATA_STEP,
                metadata_digest(fields),
                lambda: self.client.update_media(hashed_id, fields),
            ),
        ]
        if metadata.customizations is not None:
            customizations = metadata.customizations
            wanted.append(
                (
                    CUSTOMIZATIONS_STEP,
                    digest(customizations),
                    lambda: self.client.set_customizations(hashed_id, customizations),
                )
            )
        for caption in sidecars.captions:
            wanted.append(
                (
                    CAPTIONS_STEP + caption.language,
                    caption.digest,
                    lambda c=caption: self._send_captions(hashed_id, c.language, c.text),
                )
            )
        for step, fingerprint, apply in wanted:
            if applied.get(step) != fingerprint:
                yield step, fingerprint, apply

    def _send_captions(self, hashed_id: str, language: str, text: str) -> None:
        """Create; Wistia answers 400 when captions in that language exist: replace them."""
        try:
            self.client.create_captions(hashed_id, language, text)
        except PermanentError as exc:
            if exc.status_code != 400 or isinstance(exc, NotFoundError):
                raise
            try:
                self.client.replace_captions(hashed_id, language, text)
            except NotFoundError:
                raise exc from None  # they did not exist: the 400 meant something else

    # --- the file's fate ----------------------------------------------------------------

    def _fate(self, ledger: Ledger, job: Job) -> str:
        mode = self.settings.ingest.after_upload
        if mode == "keep":
            return "done; the file stays where it is"
        media = Path(job.path)
        if not _is_this_version(media, job):
            return "done; the file at its path is gone or is a newer version, so it was left"
        followers = own_sidecar_paths(media)
        try:
            if mode == "delete":
                for path in [*followers, media]:  # the media last: its presence means "not yet"
                    path.unlink(missing_ok=True)
                return f"done; deleted the file and {len(followers)} sidecar file(s)"
            target = self._move_target(ledger, job, media, followers)
            for path in followers:
                move_without_overwriting(
                    path, target.with_name(_follower_name(target, media, path))
                )
            move_without_overwriting(media, target)
        except OSError as exc:
            raise JobInputError(
                f"cannot {mode} the file: {exc.strerror or exc}",
                "check that the ingestd user may write to the watch and archive folders",
            ) from None
        return f"done; moved to {display(target)}"

    def _move_target(self, ledger: Ledger, job: Job, media: Path, followers: list[Path]) -> Path:
        """Where the file goes, chosen once and recorded before anything moves."""
        chosen = ledger.applied_sidecars(job.id).get(FATE_STEP)
        if chosen:
            try:
                return Path(os.fsdecode(bytes.fromhex(chosen)))
            except ValueError:
                return Path(chosen)  # recorded as text by an older ingestd
        archive = Path(self.settings.ingest.archive_dir)
        folder = archive / media.parent.relative_to(self.settings.watch_dir)
        for n in range(10_000):
            stem = media.stem if n == 0 else f"{media.stem} ({n})"
            candidate = folder / (stem + media.suffix)
            names = [candidate] + [folder / _follower_name(candidate, media, p) for p in followers]
            if not any(os.path.lexists(p) for p in names):
                # As bytes, in hex: the ledger keeps text, and a name need not be UTF-8.
                ledger.record_sidecar(job.id, FATE_STEP, os.fsencode(candidate).hex())
                return candidate
        raise JobInputError(f"no free name for {display(media.name)} in {display(folder)}")


def _follower_name(target: Path, media: Path, follower: Path) -> str:
    """A sidecar's name beside the moved media: `clip.fr.srt` follows `clip.mp4` as
    `clip (1).fr.srt` when the media became `clip (1).mp4`."""
    return target.stem + follower.name[len(media.stem) :]


def _is_this_version(media: Path, job: Job) -> bool:
    try:
        return version_of(os.lstat(media)) == job.version
    except OSError:
        return False


def move_without_overwriting(source: Path, target: Path) -> None:
    """Move a file; never replace what is at `target`. Safe to repeat after a crash."""
    if not source.exists():
        return  # moved already
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)  # fails if target exists: no overwrite, ever
    except FileExistsError:
        if not os.path.samefile(source, target):
            raise
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
            raise
        _copy_across_filesystems(source, target)
    source.unlink()


def _copy_across_filesystems(source: Path, target: Path) -> None:
    partial = target.with_name(f".{target.name}.ingestd-partial")
    shutil.copy2(source, partial)
    try:
        os.link(partial, target)
    finally:
        partial.unlink(missing_ok=True)
