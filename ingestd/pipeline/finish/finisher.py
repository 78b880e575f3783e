"""Finish: apply the sidecars to the processed media, decide the file's fate, mark it done.

Sidecars are read when the job gets here, so a caption dropped after its video still applies.
Each step (a changed name or description, the customizations, each caption language) is
recorded in the ledger with a digest of what was sent once Wistia accepted it; a crash between
two steps re-applies only the unrecorded ones, and every step is idempotent in Wistia anyway
(customizations replace, captions are replaced when they exist). Then `ingest.after_upload`:
keep, move to `archive_dir` (sidecars follow, nothing is overwritten) or delete. Before the
fate, a version that proved an earlier done one partial deletes that partial media.

Whatever goes wrong (a bad sidecar, Wistia's answer, a move that fails) ends in the job's state
through the guard and the outcome policy; `preflight` is also what the held jobs' recheck runs.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core import liveness
from ingestd.core.clock import Clock
from ingestd.core.errors import JobInputError, NotFoundError, PermanentError, WistiaError
from ingestd.core.jobs import Job, JobState, version_of
from ingestd.core.outcomes import Stage
from ingestd.folder.files import Folder, NotRegularFile, display, fit_stem, wistia_name
from ingestd.folder.sidecars import (
    CAPTIONS_STEP,
    CUSTOMIZATIONS_STEP,
    FATE_STEP,
    METADATA_STEP,
    THUMBNAIL_FAILED_STEP,
    THUMBNAIL_SENDING_STEP,
    THUMBNAIL_STEP,
    THUMBNAIL_UPLOAD_STEP,
    Sidecars,
    Thumbnail,
    changed_within,
    digest,
    metadata_digest,
    own_sidecar_names,
    read_sidecars,
)
from ingestd.ledger import Ledger, arrivals_while
from ingestd.pipeline.finish.receipt import receipt, receipt_name, write_receipt
from ingestd.pipeline.loop import Guard, work_through_jobs
from ingestd.wistia.client import RECONCILE_MARGIN_SECONDS, WistiaClient

log = logs.get("ingestd.finisher")

Step = tuple[str, str, Callable[[], object]]  # name, digest of what is sent, the sending
# Recorded once the partial media this job replaces was dealt with.
REPLACE_PARTIAL_STEP = "replace-partial"


class Finisher:
    def __init__(
        self,
        settings: Settings,
        ledger_path: Path,
        client: WistiaClient,
        stop: threading.Event,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.ledger_path = ledger_path
        self.client = client
        self.stop = stop
        self.guard = Guard(Stage.FINISH, settings, clock)
        self.clock = self.guard.clock

    def run(self) -> None:
        with arrivals_while(JobState.FINISHING) as wake:
            work_through_jobs(
                self.ledger_path,
                self.stop,
                Ledger.due_finishing,
                self.guard,
                self.finish,
                wake=wake,
                soonest=lambda ledger, now: ledger.soonest(JobState.FINISHING, now),
            )

    # --- finishing one job --------------------------------------------------------------

    def finish(self, ledger: Ledger, job: Job) -> None:
        # Once the file's fate began (recorded first), its sidecars were all sent: a restart
        # goes straight on with the fate, whatever of the sidecars has moved already.
        read_at = None
        if FATE_STEP not in ledger.applied_sidecars(job.id):
            read_at = self.clock.wall()  # as the sidecars' own mtimes
            sidecars = self.preflight(ledger, job)
            now, settle = self.clock.now(), self.settings.ingest.settle_seconds
            if changed_within(sidecars.paths, self.clock.wall(), settle):
                reason = "waiting for its sidecar files to stop changing"
                ledger.update(job, next_attempt_at=now + settle, reason=reason)
                return
            if self.apply_sidecars(ledger, job, sidecars) is None:
                wait = now + self.thumbnail_wait
                ledger.update(job, next_attempt_at=wait, reason=thumbnail_waiting(sidecars))
                return
            if self._changed_while_sent(ledger, job):
                reason = "a sidecar changed while it was being sent; sending it again"
                ledger.update(job, next_attempt_at=self.clock.now(), reason=reason)
                log.info(reason)
                return
            self._replace_partial(ledger, job)
        note = self._fate(ledger, job)
        self.write_receipt(ledger, job, done_at=self.clock.wall())
        changes: dict[str, object] = {"error": None, "next_attempt_at": None}
        if read_at is not None:
            changes["sidecars_read_at"] = read_at
        ledger.move(job, JobState.DONE, note, **changes)
        log.info("done", fate=note)

    def _changed_while_sent(self, ledger: Ledger, job: Job) -> bool:
        """Whether the sidecars on disk now say something the media was not sent: an edit
        made after they were read. The digests recorded per step are the judge."""
        sidecars = read_sidecars(
            Path(job.path), self.settings.watch_dir, self.settings.captions.default_language
        )
        if any(True for _ in self._steps(job, sidecars, ledger)):
            return True
        thumbnail = sidecars.thumbnail
        still = _digest_and_id(ledger.applied_sidecars(job.id).get(THUMBNAIL_STEP))
        return thumbnail is not None and (still is None or still[0] != thumbnail.digest)

    def preflight(self, ledger: Ledger, job: Job) -> Sidecars:
        """The local checks of finishing, which the held jobs' recheck runs too: the sidecars
        read and valid, not a thumbnail Wistia could not process, and the file's fate
        possible."""
        media = Path(job.path)
        sidecars = read_sidecars(
            media, self.settings.watch_dir, self.settings.captions.default_language
        )
        thumbnail = sidecars.thumbnail
        if thumbnail and ledger.applied_sidecars(job.id).get(THUMBNAIL_FAILED_STEP) == (
            thumbnail.digest
        ):
            raise _thumbnail_failed(thumbnail)
        self._check_fate(job, media)
        return sidecars

    def _check_fate(self, job: Job, media: Path) -> None:
        """What would stop the move or delete, found before anything is sent or moved."""
        ingest = self.settings.ingest
        if ingest.after_upload == "keep" or not is_this_version(job):
            return
        _check_writable_folder(media.parent)
        if ingest.after_upload == "move":
            archive = Path(ingest.archive_dir)
            _check_writable_folder(archive / media.parent.relative_to(self.settings.watch_dir))

    @property
    def thumbnail_wait(self) -> float:
        """How soon a job whose thumbnail Wistia is processing is looked at again."""
        return self.settings.ingest.poll_min_seconds

    def apply_sidecars(
        self, ledger: Ledger, job: Job, sidecars: Sidecars, *, resync: bool = False
    ) -> list[str] | None:
        """Send every sidecar step the ledger has no digest for, then the thumbnail; the
        names of the steps sent, or None while Wistia still processes the thumbnail (what was
        sent is recorded: the next look goes on from there)."""
        sent = []
        for step, fingerprint, send in self._steps(job, sidecars, ledger, resync=resync):
            send()
            ledger.record_sidecar(job.id, step, fingerprint)
            log.info("applied sidecar", step=step)
            sent.append(step)
        if sidecars.thumbnail is not None:
            before = ledger.applied_sidecars(job.id).get(THUMBNAIL_STEP)
            if not self._thumbnail(ledger, job, sidecars):
                return None
            if ledger.applied_sidecars(job.id).get(THUMBNAIL_STEP) != before:
                sent.append(THUMBNAIL_STEP)
        return sent

    def _steps(
        self, job: Job, sidecars: Sidecars, ledger: Ledger, *, resync: bool = False
    ) -> Iterator[Step]:
        """What still has to be sent: each step whose digest the ledger lacks. A re-sync
        sends only what sidecars say (a deleted clip.json changes nothing back)."""
        assert job.hashed_id is not None
        hashed_id = job.hashed_id
        applied = ledger.applied_sidecars(job.id)
        metadata = sidecars.metadata
        fields = {"name": metadata.name or job.media_name or wistia_name(Path(job.path).name)}
        if metadata.description is not None:
            fields["description"] = metadata.description
        wanted: list[Step] = []
        if not resync or metadata.name is not None or metadata.description is not None:
            wanted.append(
                (
                    METADATA_STEP,
                    metadata_digest(fields),
                    lambda: self._update_metadata(ledger, job, fields),
                )
            )
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

    def _update_metadata(self, ledger: Ledger, job: Job, fields: dict[str, str]) -> None:
        assert job.hashed_id is not None
        self.client.update_media(job.hashed_id, fields)
        ledger.update(job, media_name=fields["name"])  # its name in Wistia, for receipts

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

    # --- the thumbnail ------------------------------------------------------------------

    def _thumbnail(self, ledger: Ledger, job: Job, sidecars: Sidecars) -> bool:
        """The thumbnail uploaded as an image media (to the video's project), then, once
        Wistia has processed it, made the video's still; the image it replaced is deleted.
        True when done, False while Wistia still processes the image. Each step is recorded,
        so a restart goes on where it was."""
        thumbnail = sidecars.thumbnail
        assert thumbnail is not None and job.hashed_id is not None
        applied = ledger.applied_sidecars(job.id)
        still = _digest_and_id(applied.get(THUMBNAIL_STEP))
        if still is not None and still[0] == thumbnail.digest:
            return True
        uploaded = _digest_and_id(applied.get(THUMBNAIL_UPLOAD_STEP))
        if uploaded is None or uploaded[0] != thumbnail.digest:
            if uploaded is not None and (still is None or uploaded[1] != still[1]):
                self._delete_image(uploaded[1])  # uploaded for a thumbnail replaced since
            image = self._sent_before(ledger, applied, thumbnail)
            if image is None:
                image = self._upload_thumbnail(ledger, job, thumbnail)
            ledger.record_sidecar(job.id, THUMBNAIL_UPLOAD_STEP, f"{thumbnail.digest} {image}")
            uploaded = (thumbnail.digest, image)
        state = self.client.media(uploaded[1]).state
        if state == "failed":
            ledger.record_sidecar(job.id, THUMBNAIL_FAILED_STEP, thumbnail.digest)
            raise _thumbnail_failed(thumbnail)
        if state != "ready":
            return False
        self.client.set_still(job.hashed_id, uploaded[1])
        if still is not None and still[1] != uploaded[1]:
            self._delete_image(still[1])  # the thumbnail this one replaced
        ledger.record_sidecar(job.id, THUMBNAIL_STEP, f"{thumbnail.digest} {uploaded[1]}")
        log.info("the thumbnail is the still", image=uploaded[1])
        return True

    def _upload_thumbnail(self, ledger: Ledger, job: Job, thumbnail: Thumbnail) -> str:
        assert job.hashed_id is not None
        project = job.project_id or self.client.media(job.hashed_id).project_hashed_id
        name = wistia_name(thumbnail.path.name)
        fields = {"name": name, **({"project_id": project} if project else {})}
        began = f"{thumbnail.digest} {self.clock.wall()}"  # compared with Wistia's clock
        ledger.record_sidecar(job.id, THUMBNAIL_SENDING_STEP, began)
        image = self.client.upload_image(name, thumbnail.data, thumbnail.content_type, fields)
        log.info("uploaded the thumbnail as an image", image=image.hashed_id)
        return image.hashed_id

    def _sent_before(
        self, ledger: Ledger, applied: dict[str, str], thumbnail: Thumbnail
    ) -> str | None:
        """The image an upload of this very thumbnail made before a crash cut it short (its
        answer never recorded): found by name, type, size and time, so it is not sent twice."""
        digest, _, began = applied.get(THUMBNAIL_SENDING_STEP, "").partition(" ")
        if digest != thumbnail.digest:
            return None
        since = float(began) - RECONCILE_MARGIN_SECONDS
        for media in self.client.medias_named(wistia_name(thumbnail.path.name)):
            created = media.created_epoch
            if (
                media.type != "Image"
                or created is None
                or created < since
                or media.original_size not in (None, len(thumbnail.data))
                or ledger.image_recorded(media.hashed_id, (THUMBNAIL_UPLOAD_STEP, THUMBNAIL_STEP))
            ):
                continue
            log.info(
                "an earlier thumbnail upload reached Wistia; not sending it again",
                image=media.hashed_id,
            )
            return media.hashed_id
        return None

    def _delete_image(self, hashed_id: str) -> None:
        """Delete an image ingestd uploaded for a thumbnail that a newer one replaced (one of
        the two cases in which ingestd deletes a media)."""
        try:
            self.client.delete_media(hashed_id)
            log.info("deleted the image of a replaced thumbnail", image=hashed_id)
        except NotFoundError:
            pass  # gone already
        except PermanentError as exc:
            log.warning(
                "could not delete a replaced thumbnail's image", image=hashed_id, error=exc.reason
            )

    # --- the receipt --------------------------------------------------------------------

    def write_receipt(self, ledger: Ledger, job: Job, done_at: float | None = None) -> None:
        """`<file name>.wistia.json` where the file ends up (`ingest.receipts`); rewritten by
        a re-sync. A receipt that cannot be written is noted in the job's history and the
        log; it never holds the job."""
        current = ledger.get(job.id)
        if not self.settings.ingest.receipts or current is None or current.hashed_id is None:
            return
        applied = ledger.applied_sidecars(job.id)
        place = self._where_it_ends_up(current, applied)
        if place is None:
            return
        where, base = place
        try:
            content = receipt(
                current,
                applied,
                current.media_name or wistia_name(where.name),
                self.client.media_url(current.hashed_id),
                done_at if done_at is not None else ledger.done_at(job.id) or self.clock.wall(),
            )
            write_receipt(where.with_name(receipt_name(where.name)), base, content)
        except (OSError, JobInputError, WistiaError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            ledger.note(current, f"could not write the receipt: {why}")
            log.warning("could not write the receipt", error=str(why))

    def _where_it_ends_up(self, job: Job, applied: dict[str, str]) -> tuple[Path, Path] | None:
        """The done file's final path and the configured folder it is below, if it has one."""
        mode = self.settings.ingest.after_upload
        if mode == "keep":
            media = Path(job.path)
            return (media, self.settings.watch_dir) if is_this_version(job) else None
        chosen = applied.get(FATE_STEP)
        if mode == "move" and chosen and chosen != "delete":
            return _recorded_target(chosen), Path(self.settings.ingest.archive_dir)
        return None

    # --- a partial version replaced ------------------------------------------------------

    def _replace_partial(self, ledger: Ledger, job: Job) -> None:
        """This version proved an earlier done one partial (its bytes begin this file): now
        that this one is in Wistia, whole, the partial media goes (`ingest.replace_partial`).
        One of the two cases in which ingestd deletes a media; done once (recorded)."""
        if job.replaces is None or REPLACE_PARTIAL_STEP in ledger.applied_sidecars(job.id):
            return
        partial = ledger.get(job.replaces)
        if (
            partial is None
            or partial.hashed_id is None
            or partial.replaced_by is not None
            or partial.hashed_id == job.hashed_id
            or ledger.hashed_id_taken(partial.hashed_id, except_job=partial.id)
        ):
            return  # nothing of its own to delete
        what = f"media {partial.hashed_id} (job {partial.id}) holds a partial copy of this file"
        if not self.settings.ingest.replace_partial:
            how = f"{what}; left in Wistia (ingest.replace_partial = false)"
            ledger.record_replaced(partial, job, REPLACE_PARTIAL_STEP, deleted=False, how=how)
            log.warning(how)
            return
        try:
            self.client.delete_media(partial.hashed_id)
            gone = "deleted it from Wistia"
        except NotFoundError:
            gone = "it was already gone from Wistia"
        except PermanentError as exc:
            how = f"{what}; could not delete it ({exc.reason}): delete it in Wistia"
            ledger.record_replaced(partial, job, REPLACE_PARTIAL_STEP, deleted=False, how=how)
            log.warning(how)
            return
        how = f"{what}; job {job.id}'s media {job.hashed_id} replaces it: {gone}"
        ledger.record_replaced(partial, job, REPLACE_PARTIAL_STEP, deleted=True, how=how)
        log.info(how)

    # --- the file's fate ----------------------------------------------------------------

    def _fate(self, ledger: Ledger, job: Job) -> str:
        """Keep, delete or move the file and its own sidecars. Every step works in folders
        reached without links (files.Folder): a folder swapped for a link after the checks
        cannot send a delete or a move anywhere else."""
        mode = self.settings.ingest.after_upload
        if mode == "keep":
            return "done; the file stays where it is"
        media = Path(job.path)
        try:
            with Folder(media.parent, self.settings.watch_dir) as source:
                entry = source.entry(media.name)
                if entry is None or not job.is_file_hashed(entry):
                    return "done; the file at its path is gone or is a newer version: left"
                followers = [
                    name
                    for name in own_sidecar_names(media.name, source.names())
                    if _regular(source.entry(name))
                ]
                if mode == "delete":
                    ledger.record_sidecar(job.id, FATE_STEP, "delete")  # before anything goes
                    for name in [*followers, media.name]:  # the media last: "not yet" while there
                        source.unlink(name)
                    return f"done; deleted the file and {len(followers)} sidecar file(s)"
                target = self._move(ledger, job, source, followers)
        except (OSError, NotRegularFile) as exc:
            reason = exc.reason if isinstance(exc, NotRegularFile) else exc.strerror or exc
            raise JobInputError(
                f"cannot {mode} the file: {reason}",
                "check that the ingestd user may write to the watch and archive folders",
            ) from None
        return f"done; moved to {display(target)}"

    def _move(self, ledger: Ledger, job: Job, source: Folder, followers: list[str]) -> Path:
        media = Path(job.path)
        archive = Path(self.settings.ingest.archive_dir)
        folder = archive / media.parent.relative_to(self.settings.watch_dir)
        archive.mkdir(parents=True, exist_ok=True)  # configured, so trusted; below it: no links
        with Folder(folder, archive, create=True) as target:
            name = self._move_target(ledger, job, target, followers)
            for follower in followers:
                source.move_to(
                    follower, target, _follower_name(name, media.name, follower), liveness.beat
                )
            source.move_to(media.name, target, name, liveness.beat)
        return folder / name

    def _move_target(self, ledger: Ledger, job: Job, target: Folder, followers: list[str]) -> str:
        """The name the file gets in the archive, chosen once and recorded before anything
        moves; never one that is taken, and never longer than the file system allows."""
        chosen = ledger.applied_sidecars(job.id).get(FATE_STEP)
        if chosen and chosen != "delete":
            return _recorded_target(chosen).name
        media = Path(job.path)
        tails = [media.suffix] + [f[len(media.stem) :] for f in followers]
        for n in range(10_000):
            stem = fit_stem(media.stem, tails, f" ({n})" if n else "")
            names = [stem + media.suffix] + [stem + tail for tail in tails[1:]]
            if all(target.entry(name) is None for name in names):
                # As bytes, in hex: the ledger keeps text, and a name need not be UTF-8.
                chosen_path = target.path / names[0]
                ledger.record_sidecar(job.id, FATE_STEP, os.fsencode(chosen_path).hex())
                return names[0]
        raise JobInputError(f"no free name for {display(media.name)} in {display(target.path)}")


def thumbnail_waiting(sidecars: Sidecars) -> str:
    """The reason a job shows while Wistia processes its thumbnail."""
    assert sidecars.thumbnail is not None
    name = display(sidecars.thumbnail.path.name)
    return f"waiting for Wistia to process the thumbnail {name}"


def _digest_and_id(recorded: str | None) -> tuple[str, str] | None:
    """A thumbnail step as recorded: (the image's digest, its media's hashed id)."""
    if not recorded or " " not in recorded:
        return None
    digest_, hashed_id = recorded.split(" ", 1)
    return digest_, hashed_id


def _thumbnail_failed(thumbnail: Thumbnail) -> JobInputError:
    return JobInputError(
        f"Wistia could not process the thumbnail {display(thumbnail.path.name)}",
        "replace it with another JPEG or PNG image; the job goes on by itself",
    )


def _regular(entry: os.stat_result | None) -> bool:
    return entry is not None and stat.S_ISREG(entry.st_mode)


def _follower_name(target: str, media: str, follower: str) -> str:
    """A sidecar's name beside the moved media: `clip.fr.srt` follows `clip.mp4` as
    `clip (1).fr.srt` when the media became `clip (1).mp4`."""
    return Path(target).stem + follower[len(Path(media).stem) :]


def _recorded_target(chosen: str) -> Path:
    """The archive path the fate step recorded: as bytes, in hex (a name need not be UTF-8)."""
    try:
        return Path(os.fsdecode(bytes.fromhex(chosen)))
    except ValueError:
        return Path(chosen)  # recorded as text by an older ingestd


def is_this_version(job: Job) -> bool:
    """The file at the job's path is the version the job uploaded (a link is not followed)."""
    try:
        return version_of(os.lstat(job.path)) == job.version
    except OSError:
        return False


def _check_writable_folder(folder: Path) -> None:
    """`folder` is, or can be made, a folder the ingestd user may write to."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or existing.is_symlink():
        raise JobInputError(
            f"cannot move or delete files in {display(folder)}: "
            f"{display(existing)} is not a folder",
            "make it a folder, or change ingest.archive_dir",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise JobInputError(
            f"cannot move or delete files in {display(existing)}",
            "give the ingestd user write permission to the folder",
        )
