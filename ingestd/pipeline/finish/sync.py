"""Everything a media is sent of its sidecars: the steps (steps.py), then the thumbnail
(thumbnail.py). Finishing sends it all once; re-sync sends what changed after done.

A step Wistia refuses with a 403 is skipped until its sidecar changes (ledger.steps.refused);
`refusals` words them for the job's reason."""

from __future__ import annotations

from ingestd import logs
from ingestd.core.clock import Clock
from ingestd.core.errors import ForbiddenError
from ingestd.core.jobs import Job
from ingestd.folder.sidecars import Sidecars
from ingestd.ledger import Ledger
from ingestd.pipeline.finish.steps import SidecarSteps
from ingestd.pipeline.finish.thumbnail import THUMBNAIL_STEP, Thumbnails
from ingestd.wistia.client import WistiaClient

log = logs.get("ingestd.finish")


class SidecarSync:
    def __init__(self, client: WistiaClient, clock: Clock) -> None:
        self.steps = SidecarSteps(client)
        self.thumbnails = Thumbnails(client, clock)

    def apply(
        self, ledger: Ledger, job: Job, sidecars: Sidecars, *, resync: bool = False
    ) -> list[str] | None:
        """Send every step the ledger has no digest for, then the thumbnail; the names of the
        steps sent, or None while Wistia still processes the thumbnail (what was sent is
        recorded: the next look goes on from there)."""
        sent = self.steps.send(ledger, job, sidecars, resync=resync)
        thumbnail = sidecars.thumbnail
        if thumbnail is not None and not self.thumbnails.settled(ledger, job, thumbnail):
            try:
                if not self.thumbnails.apply(ledger, job, thumbnail):
                    return None
            except ForbiddenError as refused:
                ledger.steps.record_refused(job, THUMBNAIL_STEP, thumbnail.digest, refused.reason)
                log.warning("Wistia refused the thumbnail", reason=refused.reason)
            else:
                sent.append(THUMBNAIL_STEP)
        return sent

    def changed_since_sent(self, ledger: Ledger, job: Job, sidecars: Sidecars) -> bool:
        """Whether `sidecars` (as on disk now) say something the media was not sent: the
        digests recorded per step are the judge, not file times."""
        if self.steps.pending(ledger, job, sidecars):
            return True
        thumbnail = sidecars.thumbnail
        return thumbnail is not None and not self.thumbnails.settled(ledger, job, thumbnail)


def refusals(ledger: Ledger, job: Job) -> str | None:
    """What Wistia refused of this job's sidecars, as the done job's reason (None: nothing)."""
    refused = ledger.steps.refused(job.id)
    if not refused:
        return None
    said = "; ".join(f"{step}: {refusal.reason}" for step, refusal in refused.items())
    return f"Wistia refused {', '.join(refused)} (skipped until the sidecar changes): {said}"
