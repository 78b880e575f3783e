"""Replacing a media in place (Swap): once a new version's own media (the replacement) is
processed, Wistia puts its file behind the media it replaces (the original), which keeps its
hashed id, embeds, links and stats. The choice was made before the upload (versions.py).

Each step is recorded in the ledger (ledger.steps.swap) before and after it is made, so that a
crash between any two neither swaps twice nor leaves the job without its media:

    chosen      the original (before the upload)
    requesting  about to ask: `PUT .../medias/<original>/swap` (recorded first, with the time)
    requested   Wistia took it: its background job, followed until `finished` or `failed`
    finished    the original holds this version: the job now carries the original's ids
    cleaned     the leftover replacement deleted (if Wistia still listed it): done with it
    refused     403, 400 (another media type), a failed background job, the original gone:
                the new version stays a media of its own, and the done job says why

Found `requesting` after a restart (or a network error while asking), nobody knows whether
Wistia took the swap: the original is watched instead of asked again, and only if it has not
changed after three times as long as Wistia took to process this version (at least
UNSURE_WAIT_SECONDS, at most an hour) is the swap asked again. (Should Wistia have taken it
after all and be slower than that, the second swap puts the same file behind the original
once more, in the reading of Swap the sandbox serves by default.) A swap into a media an older
version is still about to swap into waits for it, and an older version never swaps its bytes
back behind a newer one's: the newest bytes end up behind the kept hashed id.
"""

from __future__ import annotations

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core.backoff import Backoff
from ingestd.core.clock import Clock
from ingestd.core.errors import NotFoundError, PermanentError, TransientError
from ingestd.core.jobs import Job, JobState
from ingestd.ledger import Ledger, Swap
from ingestd.wistia.client import RECONCILE_MARGIN_SECONDS, WistiaClient

log = logs.get("ingestd.finish")

# After an unknown outcome of asking (a crash, a network error), how long the original is
# watched at least (and at most) for the swap to show before it is asked again.
UNSURE_WAIT_SECONDS = 30.0
UNSURE_WAIT_MAX_SECONDS = 3600.0


class Swaps:
    def __init__(self, client: WistiaClient, clock: Clock) -> None:
        self.client = client
        self.clock = clock

    def carry_out(self, ledger: Ledger, settings: Settings, job: Job) -> Job | None:
        """Take the job's swap as far as it goes now. Returns the job to finish (carrying
        the kept hashed id once swapped, its own where refused), or None while Wistia works
        (the job's next look and reason are set)."""
        swap = ledger.steps.swap(job.id)
        if swap is None or swap.stage == "unknown":
            return job
        assert job.hashed_id is not None
        if swap.stage == "chosen":
            if self._waits_for_an_older_version(ledger, settings, job, swap):
                return None
            if (newer := ledger.steps.swapped_after(job, swap.original)) is not None:
                return self._yield_to(ledger, job, swap, newer)
            swap = ledger.steps.record_swap(
                job,
                "requesting",
                replacement=job.hashed_id,
                requested_at=self.clock.wall(),
            )
            swap = self._ask(ledger, job, swap)
        elif swap.stage == "requesting":
            swap = self._after_unsure_ask(ledger, settings, job, swap)
        if swap.stage == "requested":
            swap = self._follow(ledger, settings, job, swap)
        if swap.stage in ("requesting", "requested"):
            return None
        if swap.stage == "finished":
            job = self._take_original(ledger, job, swap)
            swap = self._clean(ledger, job, swap)
        if swap.stage == "cleaned":
            return ledger.get(job.id) or job
        return job  # refused: the new version keeps its own media

    # --- before asking ----------------------------------------------------------------------

    def _waits_for_an_older_version(
        self, ledger: Ledger, settings: Settings, job: Job, swap: Swap
    ) -> bool:
        """An older version about to swap into the same media goes first."""
        older = ledger.steps.swap_pending_before(job, swap.original)
        if older is None:
            return False
        why = f"waiting for job {older}, an earlier version, to replace {swap.original} first"
        self._later(ledger, settings, job, why)
        return True

    def _yield_to(self, ledger: Ledger, job: Job, swap: Swap, newer: int) -> Job:
        """A newer version replaced the original already: this one's bytes must not go back
        behind it. Its own upload, made only to be swapped in, is a leftover: deleted."""
        why = (
            f"job {newer}, a newer version, replaced {swap.original} already; this version's "
            f"own upload {job.hashed_id} was a leftover"
        )
        ledger.steps.record_swap(job, "refused", why, reason=why, replacement=job.hashed_id)
        self._delete_leftover(job.hashed_id)
        return ledger.update(job, hashed_id=swap.original)

    # --- asking --------------------------------------------------------------------------------

    def _ask(self, ledger: Ledger, job: Job, swap: Swap) -> Swap:
        assert swap.replacement is not None
        try:
            background, api = self.client.swap(swap.original, swap.replacement)
        except TransientError as exc:
            if exc.status_code is not None:
                # Wistia answered, and not with a swap: nothing was made; ask again later.
                ledger.steps.record_swap(job, "chosen")
            raise  # otherwise unsure: `requesting` stays, and the original is watched
        except NotFoundError:
            return self._refuse(ledger, job, swap, f"{swap.original} is no longer in Wistia")
        except PermanentError as exc:  # 403: the plan lacks Swap; 400: another media type
            return self._refuse(ledger, job, swap, exc.reason)
        note = (
            f"asked Wistia to swap {swap.replacement} into {swap.original} "
            f"(background job {background.id})"
        )
        log.info("swap asked", original=swap.original, replacement=swap.replacement)
        return ledger.steps.record_swap(
            job, "requested", note, background_job=background.id, api=api
        )

    def _after_unsure_ask(self, ledger: Ledger, settings: Settings, job: Job, swap: Swap) -> Swap:
        """`requesting` found again: whether Wistia took the swap shows on the original."""
        if self._original_swapped(job, swap):
            note = f"the swap of {swap.replacement} into {swap.original} was made"
            return ledger.steps.record_swap(job, "finished", note)
        asked = swap.requested_at or 0.0
        if self.clock.wall() - asked < self._unsure_wait(ledger, job):
            self._later(
                ledger,
                settings,
                job,
                f"waiting to see whether Wistia took the swap into {swap.original} "
                "(asked just before a restart or a network error)",
            )
            return swap
        swap = ledger.steps.record_swap(job, "requesting", requested_at=self.clock.wall())
        return self._ask(ledger, job, swap)

    @staticmethod
    def _unsure_wait(ledger: Ledger, job: Job) -> float:
        """Three times as long as Wistia took to process this version, within bounds."""
        began = ledger.jobs.entered_at(job.id, JobState.PROCESSING)
        ready = ledger.jobs.entered_at(job.id, JobState.FINISHING)
        took = ready - began if began is not None and ready is not None else 0.0
        return min(UNSURE_WAIT_MAX_SECONDS, max(UNSURE_WAIT_SECONDS, 3 * took))

    def _original_swapped(self, job: Job, swap: Swap) -> bool:
        try:
            original = self.client.media(swap.original)
        except NotFoundError:
            return False
        updated = original.updated_epoch
        if updated is None or updated < (swap.requested_at or 0.0) - RECONCILE_MARGIN_SECONDS:
            return False
        size = original.original_size
        return job.size is None or size is None or size == job.size

    # --- following Wistia's background job ---------------------------------------------------

    def _follow(self, ledger: Ledger, settings: Settings, job: Job, swap: Swap) -> Swap:
        assert swap.background_job is not None
        try:
            background = self.client.background_job(swap.background_job, swap.api or "modern")
        except NotFoundError:
            # Wistia forgot the job: what it did shows on the original.
            if self._original_swapped(job, swap):
                background = None
            else:
                return self._refuse(ledger, job, swap, "Wistia lost the swap's background job")
        if background is None or background.state == "finished":
            note = f"Wistia swapped {swap.replacement} into {swap.original}: it plays this version"
            log.info("swapped", original=swap.original, replacement=swap.replacement)
            return ledger.steps.record_swap(job, "finished", note)
        if background.state == "failed":
            return self._refuse(ledger, job, swap, "Wistia's swap job failed")
        limit = settings.ingest.processing_timeout_seconds
        if self.clock.wall() - (swap.requested_at or 0.0) > limit:
            return self._refuse(ledger, job, swap, f"Wistia's swap did not end in {limit:.0f} s")
        self._later(
            ledger,
            settings,
            job,
            f"Wistia is swapping it into {swap.original} ({background.state})",
        )
        return swap

    # --- after --------------------------------------------------------------------------------

    def _take_original(self, ledger: Ledger, job: Job, swap: Swap) -> Job:
        """The job now carries the original's ids (and its project); the still the earlier
        version set is this one's to replace."""
        original = self.client.media(swap.original)
        changes: dict[str, object] = {"hashed_id": swap.original, "media_id": original.id}
        if original.project_hashed_id:
            changes["project_id"] = original.project_hashed_id
        earlier = ledger.jobs.earlier_version(job)
        if earlier is not None and earlier.hashed_id == swap.original:
            ledger.steps.inherit_thumbnail(earlier.id, job)
            ledger.note(earlier, f"replaced in place by job {job.id}, a newer version")
        return ledger.update(job, **changes)

    def _clean(self, ledger: Ledger, job: Job, swap: Swap) -> Swap:
        """The replacement, if Wistia still lists it, is the swap's leftover: deleted (one of
        the few cases in which ingestd deletes a media)."""
        assert swap.replacement is not None
        gone = self._delete_leftover(swap.replacement)
        return ledger.steps.record_swap(
            job, "cleaned", f"the leftover media {swap.replacement} {gone}"
        )

    def _delete_leftover(self, hashed_id: str | None) -> str:
        if hashed_id is None:
            return "was not there"
        try:
            self.client.delete_media(hashed_id)
        except NotFoundError:
            return "was gone from Wistia already"
        log.info("deleted the swap's leftover", media=hashed_id)
        return "was deleted"

    def _refuse(self, ledger: Ledger, job: Job, swap: Swap, why: str) -> Swap:
        reason = (
            f"could not replace {swap.original} in place: {why}; "
            f"this version is media {job.hashed_id}"
        )
        log.warning("swap refused", original=swap.original, reason=why)
        return ledger.steps.record_swap(job, "refused", reason, reason=reason)

    def _later(self, ledger: Ledger, settings: Settings, job: Job, reason: str) -> None:
        ingest = settings.ingest
        wait = Backoff(ingest.poll_min_seconds, ingest.poll_max_seconds).after(job.poll_interval)
        ledger.update(
            job, next_attempt_at=self.clock.now() + wait, poll_interval=wait, reason=reason
        )


def swap_reason(ledger: Ledger, job: Job) -> str | None:
    """What the done job says of its swap: why the earlier media was not replaced."""
    swap = ledger.steps.swap(job.id)
    return swap.reason if swap is not None and swap.stage == "refused" else None
