"""Upload: `ingest.workers` threads each claim a queued job and send it to Wistia.

A worker's one job, start to finish (`_process`):
1. claim (queued -> uploading, atomic in the ledger);
2. if an earlier attempt began (`upload_started_at` is set: a crash, a stop, a timeout after
   the body was sent), ask Wistia for a media of that name created since then: found, the
   job moves on without sending the file again;
3. prepare: the form fields from the sidecars, and the file opened safely and checked to be
   the version that was hashed (`prepare`, which the held jobs' recheck runs too);
4. record that this attempt begins (committed before the first byte leaves);
5. stream the file from that descriptor (or ask Wistia to import the URL);
6. uploading -> processing with the media's ids.

Anything else that happens ends in the job's state through the stage's guard and the one
outcome policy (outcomes.py). While the account is on hold, workers only wait, except the one
that wins the probe (probe.py): under a video-limit hold a look at the account, then, when
it shows room or cannot tell, one upload of the smallest waiting file; under an auth hold one
cheap account call. Its success lifts the hold for all.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Self

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core.errors import (
    AuthError,
    FileChanged,
    ForbiddenError,
    HoldError,
    JobInputError,
    PermanentError,
    TransientError,
    VideoLimitError,
    WistiaError,
)
from ingestd.core.jobs import Job, JobKind, JobState, version_of
from ingestd.core.names import display, media_name, wistia_name
from ingestd.core.outcomes import Stage
from ingestd.folder.files import open_regular
from ingestd.folder.sidecars import (
    KNOWN_KEYS,
    METADATA_STEP,
    Metadata,
    metadata_digest,
    read_metadata,
)
from ingestd.folder.urlimport import media_name_of, read_url_file
from ingestd.ledger import Hold, Ledger, Ledgers
from ingestd.pipeline import versions
from ingestd.pipeline.loop import SHORTEST_WAIT_SECONDS, WistiaStage
from ingestd.pipeline.probe import HoldProbes
from ingestd.pipeline.projects import FolderProjects, folder_of
from ingestd.wistia.client import RECONCILE_MARGIN_SECONDS, WistiaClient
from ingestd.wistia.models import Media

log = logs.get("ingestd.uploader")

PROGRESS_EVERY_SECONDS = 1.0


@dataclass
class Upload:
    """What one upload sends: the form fields and either a URL or an open file."""

    fields: dict[str, str]
    metadata: Metadata  # what the sidecars say (the media it replaces, say)
    url: str | None = None  # a .url job: Wistia imports this
    file: int | None = None  # a file job: the descriptor the bytes are read from
    filename: str = ""  # the file's own name, as the multipart part names it

    def close(self) -> None:
        if self.file is not None:
            os.close(self.file)
            self.file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hold_error(hold: Hold) -> HoldError:
    """The error a job meets under `hold`, as if Wistia had just answered so."""
    return AuthError(hold.reason) if hold.kind == "auth" else VideoLimitError(hold.reason)


class Uploader(WistiaStage):
    kind = Stage.UPLOAD

    def __init__(
        self,
        settings: Settings,
        ledgers: Ledgers,
        client: WistiaClient,
        stop: threading.Event,
    ) -> None:
        super().__init__(settings, ledgers, client, stop)
        # Jobs a worker of this daemon is sending now; the claim and the orphan check share
        # the lock, so a job just claimed is never taken for an orphan.
        self._in_flight: set[int] = set()
        self._claim_lock = threading.Lock()
        self._was_inside = True  # inside the upload hours at the last look (for the log)
        self.projects = FolderProjects(client)  # folder name -> Wistia project (one per name)
        self.probes = HoldProbes(lambda: self.settings, client, self.clock)

    # --- the worker thread --------------------------------------------------------------

    def run_worker(self, retire: threading.Event) -> None:
        """Claim and send jobs until the daemon stops or this worker is retired (reload)."""
        self.run_passes(self._pass, JobState.QUEUED, retire=retire)

    def _pass(self, ledger: Ledger, now: float) -> float | None:
        """One job sent (then look again at once), or when the next may be."""
        claimed = self._next_job(ledger)
        if claimed is None:  # nothing to send now: wait, however briefly, before asking again
            chance = self._next_chance(ledger, now)
            return None if chance is None else max(chance, now + SHORTEST_WAIT_SECONDS)
        job, probe = claimed
        try:
            self.guard.run(ledger, job, partial(self._process, probe=probe))
        finally:
            with self._claim_lock:
                self._in_flight.discard(job.id)
        return now

    def _next_job(self, ledger: Ledger) -> tuple[Job, bool] | None:
        """The next job to send, and whether it is the hold's probe (probe.py)."""
        hold = ledger.hold.current()
        if hold is not None and hold.kind == "auth":
            self.probes.token(ledger, hold)  # no upload: allowed outside the upload hours
            return None
        if not self._inside_upload_hours():
            return None
        if hold is not None and not self.probes.may_upload(ledger, hold):
            return None
        with self._claim_lock:
            job = ledger.uploads.claim(self.clock.now(), probe=hold is not None)
            if job is None:
                return None
            self._in_flight.add(job.id)
        return job, hold is not None

    def _next_chance(self, ledger: Ledger, now: float) -> float | None:
        """When what stops the next upload can change: the hold's next look or probe, the
        upload hours opening, or the next retry coming due."""
        hold = ledger.hold.current()
        hours = self.settings.ingest.hours
        local = datetime.fromtimestamp(self.clock.wall())  # the hours are the wall clock's
        if hold is not None and hold.kind == "auth":
            return hold.next_probe_at
        if hours is not None and not hours.open_at(local):
            return self.clock.from_wall(hours.next_opening(local).timestamp())
        if hold is not None:
            return self.probes.next_chance(hold)
        return ledger.jobs.soonest(JobState.QUEUED, now)

    def _inside_upload_hours(self) -> bool:
        """Whether a new upload may start now (`ingest.upload_hours`); logged when it changes."""
        hours = self.settings.ingest.hours
        inside = hours is None or hours.open_at(datetime.fromtimestamp(self.clock.wall()))
        with self._claim_lock:
            if inside != self._was_inside:
                self._was_inside = inside
                if inside:
                    log.info("inside the upload hours: uploads start", hours=str(hours))
                else:
                    log.info("outside the upload hours: no new upload starts", hours=str(hours))
        return inside

    def requeue_orphans(self, ledger: Ledger) -> list[Job]:
        """Jobs left `uploading` by a worker that died: back to the queue (health check)."""
        with self._claim_lock:
            return ledger.uploads.requeue_interrupted(
                "its worker stopped unexpectedly; Wistia is checked before sending again",
                keep=self._in_flight,
            )

    # --- one job ------------------------------------------------------------------------

    def _process(self, ledger: Ledger, job: Job, *, probe: bool = False) -> None:
        """One job, start to finish; `probe`: it was claimed as the account-wide hold's probe."""
        media = self._reconcile(ledger, job) if job.attempted else None
        if media is None:
            job, media = self._send(ledger, job, probe)
        self._uploaded(ledger, job, media, probe)

    def prepare(self, job: Job) -> Upload:
        """Everything local an upload needs, checked: the held jobs' recheck runs it too.

        Raises the job's own problem: a bad sidecar or `.url` file, a file that cannot be
        read or is not a regular file, a file that is not the version hashed (FileChanged).
        """
        path = Path(job.path)
        metadata = read_metadata(path, self.settings.watch_dir)
        if job.kind == JobKind.URL:
            url = read_url_file(path, self.settings.watch_dir)
            return Upload(self.upload_fields(job, media_name_of(url), metadata), metadata, url=url)
        fields = self.upload_fields(job, media_name(path), metadata)
        try:
            fd = open_regular(path, self.settings.watch_dir)
        except FileNotFoundError:
            raise JobInputError(
                "the file vanished before it could be uploaded",
                "put the file back (it is then found again) or ignore this job",
                fatal=True,
            ) from None
        upload = Upload(fields, metadata, file=fd, filename=wistia_name(path.name))
        opened = os.fstat(fd)
        if not job.is_file_hashed(opened):  # the bytes hashed are the bytes uploaded
            upload.close()
            raise FileChanged(opened)
        return upload

    def preflight(self, ledger: Ledger, job: Job) -> None:
        """What stops a job before it is sent (the held jobs' recheck): `prepare`, let go,
        and a `replaces` still naming the media Wistia said it does not have."""
        with self.prepare(job) as upload:
            versions.check_replaces(ledger, job, upload.metadata)

    def _folder(self, job: Job) -> str | None:
        """The folder whose project the job's media goes to (`ingest.project_from_folder`)."""
        if not self.settings.ingest.project_from_folder:
            return None
        return folder_of(Path(job.path), self.settings.watch_dir)

    def _send(self, ledger: Ledger, job: Job, probe: bool) -> tuple[Job, Media]:
        with self.prepare(job) as upload:
            swap = versions.choose(ledger, self.settings, self.client, job, upload.metadata)
            if swap is not None and swap.project:
                # The replacement goes to the project of the media it replaces.
                upload.fields["project_id"] = swap.project
            folder = self._folder(job) if "project_id" not in upload.fields else None
            if folder is not None:
                upload.fields["project_id"] = self.projects.hashed_id_for(ledger, folder)
            hold = ledger.hold.current()
            if hold is not None and not probe:
                # A hold began since this job was claimed: it waits, unsent, with the rest.
                raise hold_error(hold)
            # Committed before the first byte leaves: a crash from here on is reconciled.
            job = ledger.update(
                job,
                # Wall time: an interrupted attempt is found by Wistia's creation time.
                upload_started_at=job.upload_started_at if job.attempted else self.clock.wall(),
                attempt_sha256=job.sha256,
                media_name=upload.fields["name"],
                # What was sent is the media's project: Wistia's upload answer names none.
                project_id=upload.fields.get("project_id"),
                bytes_sent=None if upload.url else 0,
            )
            try:
                if upload.url is not None:
                    log.info("importing from URL")
                    media = self.client.import_url(upload.url, upload.fields)
                else:
                    media = self._stream(ledger, job, upload)
            except PermanentError as refused:
                self._project_gone(ledger, upload.fields.get("project_id"), folder, refused)
                raise
        ledger.steps.record_sent(job.id, METADATA_STEP, metadata_digest(upload.fields))
        return job, media

    def _project_gone(
        self, ledger: Ledger, project: str | None, folder: str | None, refused: PermanentError
    ) -> None:
        """After a refused upload: if the project it named is gone from Wistia, say so.

        Asked with `GET /v1/projects/<id>.json` (404: gone), since what the upload answers for
        a project that is gone is not documented. A folder's project is then found or made
        again (a retry); a project named by a sidecar or the config fails the job, plainly.
        """
        if project is None or isinstance(refused, ForbiddenError):
            return
        if self.client.project_exists(project):
            return
        if folder is None:
            raise PermanentError(
                f"the project {display(project)} is not in this Wistia account "
                f"(Wistia said: {refused.reason})",
                "fix project_id in clip.json, _defaults.json or the config, then "
                "`ingestd retry` the job",
            ) from None
        self.projects.forget(ledger, folder, project)
        raise TransientError(
            f"the project for the folder {display(folder)} is gone in Wistia; "
            "it is found or made again"
        ) from None

    def _stream(self, ledger: Ledger, job: Job, upload: Upload) -> Media:
        assert upload.file is not None
        log.info("uploading", size=job.size)
        progress = _Progress(ledger, job.id, job.size)
        started = time.monotonic()
        try:
            media = self.client.upload_file(upload.file, upload.filename, upload.fields, progress)
        except TransientError:
            self._changed_under_upload(ledger, job, upload.file)  # then that is what happened
            raise
        self.client.meters.upload_seconds.observe(time.monotonic() - started)
        progress.flush()
        changed = os.fstat(upload.file)
        if version_of(changed) != job.version:
            raise FileChanged(changed, _left_behind(media))
        return media

    def _changed_under_upload(self, ledger: Ledger, job: Job, fd: int) -> None:
        """After a failed attempt: if the bytes changed meanwhile, settle again (no attempt).

        The attempt may have made a media of bytes that never settled: it is found by the
        name this attempt recorded, and named in the history (not deleted: SPEC lets ingestd
        delete only a partial copy a done version proves, and a replaced thumbnail).
        """
        changed = os.fstat(fd)
        if version_of(changed) == job.version:
            return
        try:
            stale = self._reconcile(ledger, job)
        except WistiaError:
            stale = None
        raise FileChanged(changed, _left_behind(stale))

    def upload_fields(self, job: Job, default_name: str, metadata: Metadata) -> dict[str, str]:
        """Form fields: from clip.json and _defaults.json, else the config and the file name.

        `name` is always sent, so that an interrupted upload can be found again by name.
        """
        for problem in metadata.unknown:
            log.warning("unknown key in a sidecar, ignored", key=problem, known=KNOWN_KEYS)
        fields = {"name": metadata.name or default_name}
        if metadata.description is not None:
            fields["description"] = metadata.description
        # A sidecar's project wins; then the folder's (found or made when the upload is sent:
        # `_send`); then the configured default.
        project_id = metadata.project_id
        if not project_id and self._folder(job) is None:
            project_id = self.settings.wistia.project_id
        if project_id:
            fields["project_id"] = project_id
        if metadata.contact_id is not None:
            fields["contact_id"] = metadata.contact_id
        return fields

    def _reconcile(self, ledger: Ledger, job: Job) -> Media | None:
        """Did an earlier, interrupted attempt create the media after all?"""
        name = job.media_name
        if name is None:
            return None  # no attempt recorded what it sent
        since = (job.upload_started_at or 0) - RECONCILE_MARGIN_SECONDS
        for media in self.client.medias_named(name):
            created = media.created_epoch
            if created is None or created < since:
                continue
            if ledger.jobs.hashed_id_taken(media.hashed_id, except_job=job.id):
                continue
            if (
                media.original_size is not None
                and job.kind == JobKind.FILE
                and (media.original_size != job.size)
            ):
                continue
            log.info(
                "an earlier attempt reached Wistia; not uploading again", hashed_id=media.hashed_id
            )
            return media
        return None

    def _uploaded(self, ledger: Ledger, job: Job, media: Media, probe: bool) -> None:
        logs.bind_hashed_id(media.hashed_id)
        now = self.clock.now()
        poll = self.settings.ingest.poll_min_seconds
        ledger.move(
            job,
            JobState.PROCESSING,
            f"uploaded as media {media.hashed_id}",
            media_id=media.id,
            hashed_id=media.hashed_id,
            project_id=media.project_hashed_id or job.project_id,
            processing_since=now,
            next_poll_at=now + poll,
            poll_interval=poll,
            bytes_sent=job.size,
            error=None,
            next_attempt_at=None,
        )
        hold = ledger.hold.current()
        # Only an upload that began under the hold (its probe) proves the limit is gone; one
        # that was already on its way when the limit was hit proves nothing.
        if probe and hold is not None and hold.kind == "video_limit":
            ledger.hold.clear("video_limit")
            log.info("upload succeeded: the video limit hold is lifted")
        log.info("uploaded", media_id=media.id)
        if hold is None or probe:
            self.probes.refresh(ledger)  # the media count `status` shows


class _Progress:
    """Upload progress into the ledger, at most once a second (it is only for `status`)."""

    def __init__(self, ledger: Ledger, job_id: int, total: int | None) -> None:
        self._ledger = ledger
        self._job_id = job_id
        self._total = total
        self._last = 0.0
        self._sent = 0

    def __call__(self, sent: int) -> None:
        self._sent = sent
        now = time.monotonic()
        # Also when the last byte is read: the wait for Wistia's answer shows as 100%.
        if now - self._last >= PROGRESS_EVERY_SECONDS or sent == self._total:
            self._last = now
            self._ledger.uploads.record_progress(self._job_id, sent)

    def flush(self) -> None:
        self._ledger.uploads.record_progress(self._job_id, self._sent)


def _left_behind(media: Media | None) -> str:
    """Why the job settles again, naming the media made of bytes that changed, if any."""
    if media is None:
        return "file changed while it was being sent"
    return (
        f"file changed while it was being sent; media {media.hashed_id}, made of the bytes "
        "sent, is left in Wistia (delete it there if it is not wanted)"
    )
