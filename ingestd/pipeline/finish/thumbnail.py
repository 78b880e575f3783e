"""The thumbnail: `clip.jpg` uploaded as an image media into the video's project, then, once
Wistia has processed it, made the video's still; the image it replaced is deleted.

Each stage is recorded (ledger.steps.thumbnail) as it happens, so a restart goes on where it
was: `sending` before the image leaves (a crash after Wistia made the image but before its
answer was recorded finds that image again by name, type, size and time, and does not send it
twice), `uploaded` with the image's hashed id, `failed` when Wistia could not process it (the
job is held until the image is replaced), `still` once it is the video's still.
"""

from __future__ import annotations

from ingestd import logs
from ingestd.core.clock import Clock
from ingestd.core.errors import JobInputError, NotFoundError, PermanentError, VideoLimitError
from ingestd.core.jobs import Job
from ingestd.core.names import display, wistia_name
from ingestd.folder.sidecars import Thumbnail as ThumbnailFile
from ingestd.ledger import Image, Ledger
from ingestd.wistia.client import RECONCILE_MARGIN_SECONDS, WistiaClient

log = logs.get("ingestd.finish")

THUMBNAIL_STEP = "thumbnail"  # how a thumbnail made the still is named among the steps


class Thumbnails:
    def __init__(self, client: WistiaClient, clock: Clock) -> None:
        self.client = client
        self.clock = clock

    def check(self, ledger: Ledger, job: Job, thumbnail: ThumbnailFile | None) -> None:
        """Raises the job's problem when this very image is one Wistia could not process."""
        failed = ledger.steps.thumbnail(job.id).failed
        if thumbnail is not None and failed is not None and failed.digest == thumbnail.digest:
            raise failed_thumbnail(thumbnail)

    def apply(self, ledger: Ledger, job: Job, thumbnail: ThumbnailFile) -> bool:
        """Make `thumbnail` the video's still: True when it is, False while Wistia still
        processes the image."""
        assert job.hashed_id is not None
        records = ledger.steps.thumbnail(job.id)
        still = records.still
        if still is not None and still.digest == thumbnail.digest:
            return True
        uploaded = records.uploaded
        if uploaded is None or uploaded.digest != thumbnail.digest:
            if uploaded is not None and (still is None or uploaded.hashed_id != still.hashed_id):
                self._delete_image(uploaded.hashed_id)  # uploaded for a thumbnail replaced since
            image = self._sent_before(ledger, records.sending, thumbnail)
            if image is None:
                image = self._upload(ledger, job, thumbnail)
            uploaded = Image(thumbnail.digest, image)
            ledger.steps.record_thumbnail(job.id, "uploaded", uploaded)
        assert uploaded.hashed_id is not None
        state = self.client.media(uploaded.hashed_id).state
        if state == "failed":
            ledger.steps.record_thumbnail(job.id, "failed", Image(thumbnail.digest))
            raise failed_thumbnail(thumbnail)
        if state != "ready":
            return False
        self.client.set_still(job.hashed_id, uploaded.hashed_id)
        if still is not None and still.hashed_id != uploaded.hashed_id:
            self._delete_image(still.hashed_id)  # the thumbnail this one replaced
        ledger.steps.record_thumbnail(job.id, "still", uploaded)
        log.info("the thumbnail is the still", image=uploaded.hashed_id)
        return True

    def settled(self, ledger: Ledger, job: Job, thumbnail: ThumbnailFile) -> bool:
        """Nothing more to do for this image: it is the still, or Wistia refused it (403)."""
        still = ledger.steps.thumbnail(job.id).still
        if still is not None and still.digest == thumbnail.digest:
            return True
        refused = ledger.steps.refused(job.id).get(THUMBNAIL_STEP)
        return refused is not None and refused.digest == thumbnail.digest

    def _upload(self, ledger: Ledger, job: Job, thumbnail: ThumbnailFile) -> str:
        assert job.hashed_id is not None
        hold = ledger.hold.current()
        if hold is not None and hold.kind == "video_limit":
            # The image is a media too: under the hold it waits with the uploads (no upload
            # while the account is full), and goes on when the hold lifts.
            raise VideoLimitError(hold.reason)
        project = job.project_id or self.client.media(job.hashed_id).project_hashed_id
        name = wistia_name(thumbnail.path.name)
        fields = {"name": name, **({"project_id": project} if project else {})}
        # Wall time: compared with Wistia's clock when a crash made the answer unknown.
        began = Image(thumbnail.digest, began_at=self.clock.wall())
        ledger.steps.record_thumbnail(job.id, "sending", began)
        image = self.client.upload_image(name, thumbnail.data, thumbnail.content_type, fields)
        log.info("uploaded the thumbnail as an image", image=image.hashed_id)
        return image.hashed_id

    def _sent_before(
        self, ledger: Ledger, sending: Image | None, thumbnail: ThumbnailFile
    ) -> str | None:
        """The image an upload of this very thumbnail made before a crash cut it short (its
        answer never recorded): found by name, type, size and time, so it is not sent twice."""
        if sending is None or sending.digest != thumbnail.digest or sending.began_at is None:
            return None
        since = sending.began_at - RECONCILE_MARGIN_SECONDS
        for media in self.client.medias_named(wistia_name(thumbnail.path.name)):
            created = media.created_epoch
            if (
                media.type != "Image"
                or created is None
                or created < since
                or media.original_size not in (None, len(thumbnail.data))
                or ledger.steps.image_known(media.hashed_id)
            ):
                continue
            log.info(
                "an earlier thumbnail upload reached Wistia; not sending it again",
                image=media.hashed_id,
            )
            return media.hashed_id
        return None

    def _delete_image(self, hashed_id: str | None) -> None:
        """Delete an image ingestd uploaded for a thumbnail that a newer one replaced (one of
        the cases in which ingestd deletes a media)."""
        if hashed_id is None:
            return
        try:
            self.client.delete_media(hashed_id)
            log.info("deleted the image of a replaced thumbnail", image=hashed_id)
        except NotFoundError:
            pass  # gone already
        except PermanentError as exc:
            log.warning(
                "could not delete a replaced thumbnail's image", image=hashed_id, error=exc.reason
            )


def waiting_for(thumbnail: ThumbnailFile) -> str:
    """The reason a job shows while Wistia processes its thumbnail."""
    return f"waiting for Wistia to process the thumbnail {display(thumbnail.path.name)}"


def failed_thumbnail(thumbnail: ThumbnailFile) -> JobInputError:
    return JobInputError(
        f"Wistia could not process the thumbnail {display(thumbnail.path.name)}",
        "replace it with another JPEG or PNG image; the job goes on by itself",
    )
