"""Everything a media is sent of its sidecars: the steps (steps.py), then the thumbnail
(thumbnail.py). Finishing sends it all once; re-sync sends what changed after done."""

from __future__ import annotations

from ingestd.core.clock import Clock
from ingestd.core.jobs import Job
from ingestd.folder.sidecars import Sidecars
from ingestd.ledger import Ledger
from ingestd.pipeline.finish.steps import SidecarSteps
from ingestd.pipeline.finish.thumbnail import Thumbnails
from ingestd.wistia.client import WistiaClient

THUMBNAIL_STEP = "thumbnail"  # how a thumbnail made the still is named among the steps sent


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
        if thumbnail is not None:
            already = self.thumbnails.is_the_still(ledger, job, thumbnail)
            if not self.thumbnails.apply(ledger, job, thumbnail):
                return None
            if not already:
                sent.append(THUMBNAIL_STEP)
        return sent

    def changed_since_sent(self, ledger: Ledger, job: Job, sidecars: Sidecars) -> bool:
        """Whether `sidecars` (as on disk now) say something the media was not sent: the
        digests recorded per step are the judge, not file times."""
        if self.steps.pending(ledger, job, sidecars):
            return True
        return not self.thumbnails.is_the_still(ledger, job, sidecars.thumbnail)
