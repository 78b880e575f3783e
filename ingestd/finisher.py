"""Finish: apply the sidecars to the processed media, decide the file's fate, mark it done.

Sidecars are read when the job gets here, so a caption dropped after its video still applies.
Each step (a changed name or description, the customizations, each caption language) is
recorded in the ledger with a digest of what was sent once Wistia accepted it; a crash between
two steps re-applies only the unrecorded ones, and every step is idempotent in Wistia anyway
(customizations replace, captions are replaced when they exist). Then `ingest.after_upload`:
keep, move to `archive_dir` (sidecars follow, nothing is overwritten) or delete.

This thread also looks again at jobs `held` for a bad sidecar or an unreadable file once they
were hashed, and lets them go on when the problem is gone.
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
from ingestd.errors import (
    AuthError,
    JobInputError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from ingestd.jobs import Job, JobKind, JobState, resume_state, version_of
from ingestd.ledger import Ledger
from ingestd.sidecars import (
    CAPTIONS_STEP,
    CUSTOMIZATIONS_STEP,
    FATE_STEP,
    METADATA_STEP,
    SidecarError,
    Sidecars,
    digest,
    metadata_digest,
    newest_change,
    own_sidecar_paths,
    read_metadata,
    read_sidecars,
)
from ingestd.stageloop import work_through_jobs
from ingestd.wistia import WistiaClient

log = logs.get("ingestd.finisher")

RECHECK_HELD_SECONDS = 2.0
RETRY_SECONDS = 10.0

Step = tuple[str, str, Callable[[], object]]  # name, digest of what is sent, the sending


class Finisher:
    def __init__(
        self, settings: Settings, ledger_path: Path, client: WistiaClient, stop: threading.Event
    ) -> None:
        self.settings = settings
        self.ledger_path = ledger_path
        self.client = client
        self.stop = stop

    def run(self) -> None:
        next_recheck = 0.0

        def recheck_now_and_then(ledger: Ledger) -> None:
            nonlocal next_recheck
            if time.monotonic() >= next_recheck:
                next_recheck = time.monotonic() + RECHECK_HELD_SECONDS
                self.recheck_held(ledger)

        work_through_jobs(
            self.ledger_path,
            self.stop,
            Ledger.due_finishing,
            self.finish,
            before_each_pass=recheck_now_and_then,
        )

    # --- finishing one job --------------------------------------------------------------

    def finish(self, ledger: Ledger, job: Job) -> None:
        media = Path(job.path)
        try:
            sidecars = read_sidecars(
                media, self.settings.watch_dir, self.settings.captions.default_language
            )
        except SidecarError as exc:
            log.warning("sidecar problem; the job waits until it is fixed", reason=str(exc))
            ledger.move(job, JobState.HELD, exc.reason, reason=str(exc))
            return
        settle = self.settings.ingest.settle_seconds
        if time.time() - newest_change(sidecars.paths) < settle:
            ledger.update(
                job,
                next_attempt_at=time.time() + settle,
                reason="waiting for its sidecar files to stop changing",
            )
            return
        try:
            for step, fingerprint, apply in self._steps(job, sidecars, ledger):
                apply()
                ledger.record_sidecar(job.id, step, fingerprint)
                log.info("applied sidecar", step=step)
            note = self._fate(ledger, job)
        except TransientError as exc:
            log.warning("finishing failed for now; trying again", error=exc.reason)
            wait = exc.retry_after if exc.retry_after is not None else RETRY_SECONDS
            ledger.update(
                job,
                next_attempt_at=time.time() + wait,
                error=exc.reason,
                reason=f"finishing again soon after: {exc.reason}",
            )
            return
        except AuthError as exc:
            ledger.set_hold(exc.kind, str(exc), self.settings.ingest.probe_min_seconds)
            return
        except NotFoundError:
            message = "the media was deleted in Wistia before it was finished"
            ledger.move(job, JobState.FAILED, message, error=message)
            return
        except PermanentError as exc:
            log.error("Wistia refused a sidecar", error=exc.reason)
            ledger.move(job, JobState.FAILED, exc.reason, error=exc.reason)
            return
        except JobInputError as exc:
            log.warning("cannot finish the file's fate", reason=str(exc))
            ledger.move(job, JobState.HELD, exc.reason, reason=str(exc))
            return
        ledger.move(job, JobState.DONE, note, error=None, next_attempt_at=None)
        log.info("done", fate=note)

    def _steps(self, job: Job, sidecars: Sidecars, ledger: Ledger) -> Iterator[Step]:
        """What still has to be sent: each step whose digest the ledger lacks."""
        assert job.hashed_id is not None
        hashed_id = job.hashed_id
        applied = ledger.applied_sidecars(job.id)
        metadata = sidecars.metadata
        fields = {"name": metadata.name or job.media_name or Path(job.path).name}
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
        if mode == "delete":
            for path in [*followers, media]:  # the media last: its presence means "not yet"
                path.unlink(missing_ok=True)
            return f"done; deleted the file and {len(followers)} sidecar file(s)"
        target = self._move_target(ledger, job, media, followers)
        try:
            for path in followers:
                move_without_overwriting(
                    path, target.with_name(target.stem + path.name[len(media.stem) :])
                )
            move_without_overwriting(media, target)
        except OSError as exc:
            raise JobInputError(
                f"cannot move the file to the archive: {exc.strerror or exc}",
                "check that the ingestd user may write to the watch and archive folders",
            ) from None
        return f"done; moved to {target}"

    def _move_target(self, ledger: Ledger, job: Job, media: Path, followers: list[Path]) -> Path:
        """Where the file goes, chosen once and recorded before anything moves."""
        chosen = ledger.applied_sidecars(job.id).get(FATE_STEP)
        if chosen:
            return Path(chosen)
        archive = Path(self.settings.ingest.archive_dir)
        folder = archive / media.parent.relative_to(self.settings.watch_dir)
        for n in range(10_000):
            stem = media.stem if n == 0 else f"{media.stem} ({n})"
            candidate = folder / (stem + media.suffix)
            names = [candidate] + [folder / (stem + p.name[len(media.stem) :]) for p in followers]
            if not any(os.path.lexists(p) for p in names):
                ledger.record_sidecar(job.id, FATE_STEP, str(candidate))
                return candidate
        raise JobInputError(f"no free name for {media.name} in {folder}")

    # --- held jobs ----------------------------------------------------------------------

    def recheck_held(self, ledger: Ledger) -> None:
        """Jobs held for their own problem (after hashing) go on once it is fixed."""
        for job in ledger.jobs_in(JobState.HELD):
            if job.sha256 is None or self.stop.is_set():
                continue  # not hashed yet: the watcher's
            try:
                self._problem(job)
            except JobInputError as exc:
                if str(exc) != job.reason:
                    ledger.update(job, reason=str(exc))
                continue
            with logs.job_context(job):
                target = resume_state(job)
                log.info("problem fixed; going on", to=target.value)
                ledger.move(job, target, "problem fixed", next_attempt_at=None)

    def _problem(self, job: Job) -> None:
        """Raise the JobInputError that still stops this job, if any."""
        media = Path(job.path)
        root = self.settings.watch_dir
        if job.hashed_id is None:
            read_metadata(media, root)
            if job.kind == JobKind.FILE and media.exists() and not os.access(media, os.R_OK):
                raise JobInputError(
                    "cannot read the file: permission denied",
                    "give the ingestd user read permission",
                )
            return
        read_sidecars(media, root, self.settings.captions.default_language)
        if (
            self.settings.ingest.after_upload != "keep"
            and media.exists()
            and not os.access(media.parent, os.W_OK)
        ):
            raise JobInputError(
                f"cannot move or delete files in {media.parent}",
                "give the ingestd user write permission to the folder",
            )


def _is_this_version(media: Path, job: Job) -> bool:
    try:
        return version_of(media.stat()) == job.version
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
