"""Upload: `ingest.workers` threads each claim a queued job and send it to Wistia.

A worker's one job, start to finish:
1. claim (queued -> uploading, atomic in the ledger);
2. if an earlier attempt began (`upload_started_at` is set: a crash, a stop, a timeout after
   the body was sent), ask Wistia for a media of that name created since then: found, the
   job moves on without sending the file again;
3. record that this attempt begins (committed before the first byte leaves);
4. stream the file (or ask Wistia to import the URL), recording progress for `status`;
5. uploading -> processing with the media's ids, or back to queued / held / failed, by the
   error class wistia.py decided.

While the account is on hold (video limit), workers only wait, except the one that wins the
probe: it tries one upload, and its success lifts the hold for all.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from ingestd import logs
from ingestd.config import Settings
from ingestd.errors import (
    Cancelled,
    HoldError,
    JobInputError,
    PermanentError,
    TransientError,
)
from ingestd.jobs import Job, JobKind, JobState, version_of
from ingestd.ledger import Ledger, StaleTransition
from ingestd.sidecars import KNOWN_KEYS, METADATA_STEP, metadata_digest, read_metadata
from ingestd.urlimport import media_name_of, read_url_file
from ingestd.wistia import MAX_NAME_LENGTH, Media, WistiaClient, backoff_seconds

log = logs.get("ingestd.uploader")

IDLE_WAIT_SECONDS = 0.25
PROGRESS_EVERY_SECONDS = 1.0
# Wistia's clock and ours may differ a little: look this much further back when reconciling.
RECONCILE_MARGIN_SECONDS = 300.0
WATCH_FOLDER_WAIT_SECONDS = 10.0


def media_name(path: Path) -> str:
    """The name Wistia itself would choose: the file name with its extension, max 255."""
    name = path.name
    if len(name) <= MAX_NAME_LENGTH:
        return name
    keep = MAX_NAME_LENGTH - len(path.suffix)
    return name[:keep] + path.suffix if keep > 0 else name[:MAX_NAME_LENGTH]


class Uploader:
    def __init__(
        self,
        settings: Settings,
        ledger_path: Path,
        client: WistiaClient,
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.ledger_path = ledger_path
        self.client = client
        self.stop = stop
        # Jobs a worker of this daemon is sending now; the claim and the orphan check share
        # the lock, so a job just claimed is never taken for an orphan.
        self._in_flight: set[int] = set()
        self._claim_lock = threading.Lock()
        # Workers numbered at or above this retire after their current job (config reload).
        self.wanted_workers = settings.ingest.workers

    # --- the worker thread --------------------------------------------------------------

    def run_worker(self, number: int = 0) -> None:
        ledger = Ledger(self.ledger_path)
        try:
            while not self.stop.is_set() and number < self.wanted_workers:
                job = self._next_job(ledger)
                if job is None:
                    self.stop.wait(IDLE_WAIT_SECONDS)
                    continue
                try:
                    with logs.job_context(job):
                        self._process(ledger, job)
                finally:
                    with self._claim_lock:
                        self._in_flight.discard(job.id)
        finally:
            ledger.close()

    def _next_job(self, ledger: Ledger) -> Job | None:
        hold = ledger.hold()
        if hold is not None:
            if hold.kind != "video_limit":
                return None  # auth: the daemon probes with a cheap account call
            interval = min(hold.probe_interval * 2, self.settings.ingest.probe_max_seconds)
            if not ledger.take_probe(hold.kind, interval):
                return None
        with self._claim_lock:
            job = ledger.claim_upload()
            if job is not None:
                self._in_flight.add(job.id)
        if job is not None and hold is not None:
            log.info("probing whether uploads are possible again", job_id=job.id)
        return job

    def requeue_orphans(self, ledger: Ledger) -> list[Job]:
        """Jobs left `uploading` by a worker that died: back to the queue (health check)."""
        with self._claim_lock:
            return ledger.requeue_interrupted(
                "its worker stopped unexpectedly; Wistia is checked before sending again",
                keep=self._in_flight,
            )

    # --- one job ------------------------------------------------------------------------

    def _process(self, ledger: Ledger, job: Job) -> None:
        began = time.time()
        try:
            media = self._reconcile(ledger, job) if job.upload_started_at else None
            if media is None:
                job, media = self._send(ledger, job)
                if media is None:
                    return
            self._uploaded(ledger, job, media, began)
        except Cancelled:
            ledger.move(
                job,
                JobState.QUEUED,
                "daemon stopping; the upload starts again later",
                reason="interrupted by a stop; waiting to start again",
            )
        except HoldError as exc:
            self._hold(ledger, job, exc)
        except TransientError as exc:
            if self._watch_folder_missing(ledger, job):
                return  # an unmounted share, not the network: no attempt is counted
            changed = self._changed_since_settled(job, after_upload=True)
            if changed is not None:
                # The attempt may have made a media of bytes that never settled: find it
                # (by the name this attempt recorded, so read the job as the ledger has it).
                current = ledger.get(job.id) or job
                stale = self._reconcile_quietly(ledger, current)
                self._resettle(ledger, current, changed, media=stale)
                return
            self._retry_later(ledger, job, exc)
        except StaleTransition:
            log.warning("the job was moved by someone else meanwhile; leaving it")
        except PermanentError as exc:
            log.error("upload refused", error=exc.reason)
            ledger.move(job, JobState.FAILED, exc.reason, error=exc.reason)
        except JobInputError as exc:
            if not self._watch_folder_missing(ledger, job):
                self._bad_input(ledger, job, exc)
        except Exception as exc:
            log.exception("unexpected error while uploading")
            self._retry_later(ledger, job, TransientError(f"internal error: {exc!r}"))

    def _send(self, ledger: Ledger, job: Job) -> tuple[Job, Media | None]:
        path = Path(job.path)
        if job.kind == JobKind.URL:
            url = read_url_file(path)
            fields = self.upload_fields(job, default_name=media_name_of(url))
            job = ledger.update(
                job,
                upload_started_at=job.upload_started_at or time.time(),
                media_name=fields["name"],
            )
            log.info("importing from URL", url=url)
            media = self.client.import_url(url, fields)
            self._record_metadata_sent(ledger, job, fields)
            return job, media
        fields = self.upload_fields(job, default_name=media_name(path))
        changed = self._changed_since_settled(job)
        if changed is not None:
            self._resettle(ledger, job, changed)
            return job, None
        # Committed before the first byte leaves: a crash from here on is reconciled.
        job = ledger.update(
            job,
            upload_started_at=job.upload_started_at or time.time(),
            media_name=fields["name"],
            bytes_sent=0,
        )
        log.info("uploading", size=job.size)
        progress = _Progress(ledger, job.id, job.size)
        try:
            media = self.client.upload_file(path, fields, progress)
        except FileNotFoundError:
            raise JobInputError(
                "the file vanished before it could be uploaded", fatal=True
            ) from None
        except PermissionError as exc:
            raise JobInputError(f"cannot read the file: {exc.strerror}") from None
        progress.flush()
        changed = self._changed_since_settled(job, after_upload=True)
        if changed is not None:
            self._resettle(ledger, job, changed, media=media)
            return job, None
        self._record_metadata_sent(ledger, job, fields)
        return job, media

    def _record_metadata_sent(self, ledger: Ledger, job: Job, fields: dict[str, str]) -> None:
        """What name and description Wistia has, so finishing sends only a later change."""
        ledger.record_sidecar(job.id, METADATA_STEP, metadata_digest(fields))

    def upload_fields(self, job: Job, default_name: str) -> dict[str, str]:
        """Form fields: from clip.json and _defaults.json, else the config and the file name.

        `name` is always sent, so that an interrupted upload can be found again by name.
        """
        metadata = read_metadata(Path(job.path), self.settings.watch_dir)
        for problem in metadata.unknown:
            log.warning("unknown key in a sidecar, ignored", key=problem, known=KNOWN_KEYS)
        fields = {"name": metadata.name or default_name}
        if metadata.description is not None:
            fields["description"] = metadata.description
        project_id = metadata.project_id or self.settings.wistia.project_id
        if project_id:
            fields["project_id"] = project_id
        if metadata.contact_id is not None:
            fields["contact_id"] = metadata.contact_id
        return fields

    def _changed_since_settled(
        self, job: Job, *, after_upload: bool = False
    ) -> os.stat_result | None:
        """The file's new stat if it is no longer the version that settled, else None."""
        try:
            stat = Path(job.path).stat()
        except FileNotFoundError:
            if after_upload:
                return None  # we read it to the end through our open handle: it was complete
            raise JobInputError(
                "the file vanished before it could be uploaded",
                "put the file back (it is then found again) or ignore this job",
                fatal=True,
            ) from None
        if version_of(stat) == job.version:
            return None
        return stat

    def _resettle(
        self, ledger: Ledger, job: Job, stat: os.stat_result, media: Media | None = None
    ) -> None:
        """The file changed under the job: drop what was sent, settle the new bytes.

        The media goes first: a crash in between leaves the job `uploading`, and the restart
        finds no media of that name and resettles. Then the job forgets its attempt, so that a
        later claim cannot take an old media for the new bytes.
        """
        if media is not None:
            self._discard(media)
        log.warning("file changed while it was being sent; waiting for it to settle again")
        ledger.move(
            job,
            JobState.SETTLING,
            "file changed before or during upload",
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            sha256=None,
            settle_since=time.time(),
            bytes_sent=None,
            upload_started_at=None,
            media_name=None,
        )

    def _discard(self, media: Media) -> None:
        """Delete a media that holds bytes of a version that never settled."""
        try:
            self.client.delete_media(media.hashed_id)
            log.info(
                "deleted the media of a file that changed while it was sent",
                hashed_id=media.hashed_id,
            )
        except (TransientError, PermanentError) as exc:
            log.warning(
                "could not delete the media of a changed file; delete it in Wistia",
                hashed_id=media.hashed_id,
                error=exc.reason,
            )

    def _reconcile_quietly(self, ledger: Ledger, job: Job) -> Media | None:
        try:
            return self._reconcile(ledger, job)
        except (TransientError, PermanentError):
            return None

    def _watch_folder_missing(self, ledger: Ledger, job: Job) -> bool:
        """An unmounted share is not a vanished file: the job waits, nothing is counted."""
        if self.settings.watch_dir.is_dir():
            return False
        log.warning("the watch folder is missing (an unmounted share?); the job waits")
        current = ledger.get(job.id)
        if current is not None and current.state == JobState.UPLOADING:
            ledger.move(
                current,
                JobState.QUEUED,
                "watch folder missing",
                next_attempt_at=time.time() + WATCH_FOLDER_WAIT_SECONDS,
                reason=f"the watch folder {self.settings.watch_dir} is missing",
            )
        return True

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
            if ledger.hashed_id_taken(media.hashed_id, except_job=job.id):
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

    def _uploaded(self, ledger: Ledger, job: Job, media: Media, began: float) -> None:
        logs.bind_hashed_id(media.hashed_id)
        now = time.time()
        poll = self.settings.ingest.poll_min_seconds
        ledger.move(
            job,
            JobState.PROCESSING,
            f"uploaded as media {media.hashed_id}",
            media_id=media.id,
            hashed_id=media.hashed_id,
            processing_since=now,
            next_poll_at=now + poll,
            poll_interval=poll,
            bytes_sent=job.size,
            error=None,
            next_attempt_at=None,
        )
        hold = ledger.hold()
        # Only an upload that began under the hold (a probe) proves the limit is gone; one
        # that was already on its way when the limit was hit proves nothing.
        if hold is not None and hold.kind == "video_limit" and hold.since <= began:
            ledger.clear_hold("video_limit")
            log.info("upload succeeded: the video limit hold is lifted")
        log.info("uploaded", media_id=media.id)

    # --- failures -----------------------------------------------------------------------

    def _hold(self, ledger: Ledger, job: Job, exc: HoldError) -> None:
        """An account-wide stop: the job waits in the queue, no attempt is counted."""
        current = ledger.hold()
        interval = (
            current.probe_interval
            if current is not None and current.kind == exc.kind
            else self.settings.ingest.probe_min_seconds
        )
        hold = ledger.set_hold(exc.kind, str(exc), interval)
        log.error(
            "uploads on hold for the whole account",
            reason=exc.reason,
            hint=exc.hint,
            next_probe_in=round(hold.next_probe_at - time.time()),
        )
        ledger.move(job, JobState.QUEUED, f"on hold: {exc.reason}", reason=f"hold: {exc.reason}")

    def _retry_later(self, ledger: Ledger, job: Job, exc: TransientError) -> None:
        attempts = job.attempts + 1
        limit = self.settings.ingest.max_attempts
        if attempts >= limit:
            message = f"gave up after {attempts} attempts; last error: {exc.reason}"
            log.error("upload failed", error=exc.reason, attempts=attempts)
            ledger.move(job, JobState.FAILED, message, attempts=attempts, error=exc.reason)
            return
        ingest = self.settings.ingest
        wait = backoff_seconds(attempts, exc, ingest.retry_min_seconds, ingest.retry_max_seconds)
        when = time.time() + wait
        log.warning(
            "upload attempt failed; will retry",
            error=exc.reason,
            attempts=attempts,
            retry_in=round(wait, 1),
        )
        ledger.move(
            job,
            JobState.QUEUED,
            f"attempt {attempts} of {limit} failed: {exc.reason}",
            attempts=attempts,
            error=exc.reason,
            next_attempt_at=when,
            reason=f"retry {attempts + 1} of {limit} after: {exc.reason}",
        )

    def _bad_input(self, ledger: Ledger, job: Job, exc: JobInputError) -> None:
        current = ledger.get(job.id)
        if current is None or current.state != JobState.UPLOADING:
            return
        log.warning("cannot upload this file", reason=exc.reason)
        if exc.fatal:
            ledger.move(current, JobState.FAILED, exc.reason, error=exc.reason)
        else:
            ledger.move(current, JobState.HELD, exc.reason, reason=str(exc))


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
            self._ledger.record_progress(self._job_id, sent)

    def flush(self) -> None:
        self._ledger.record_progress(self._job_id, self._sent)
