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
Wistia took the swap. What both medias held before the ask (their file sizes, and the
original's last change by Wistia's clock) is recorded with `requesting`, so what Wistia shows
afterwards decides: the original holding the replacement's size is the swap made (where the
sizes are the same: the original changed since that moment, or the replacement gone). Not
made, the original is watched rather than asked again, and only if it has not changed after
three times as long as Wistia took to process this version (at least UNSURE_WAIT_SECONDS, at
most an hour) is the swap asked again; a 404 to that ask is judged the same way. A 429 or
503 to the ask turned it away: asked again later.

A swap into a media an older version is still about to swap into waits for it; an older
version waits while a newer one is asking to swap into the same media, then yields (made: its
own upload is the leftover, deleted by the same two steps, `finished` then `cleaned`) or swaps
(refused). The newest bytes end up behind the kept hashed id. A leftover Wistia will not let
ingestd delete (403) is named in the history; the swap stands.
"""

from __future__ import annotations

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core.backoff import Backoff
from ingestd.core.clock import Clock
from ingestd.core.errors import NotFoundError, PermanentError, TransientError
from ingestd.core.jobs import Job, JobKind, JobState
from ingestd.ledger import Ledger, Swap
from ingestd.wistia.client import RECONCILE_MARGIN_SECONDS, WistiaClient

log = logs.get("ingestd.finish")

# After an unknown outcome of asking (a crash, a network error), how long the original is
# watched at least (and at most) for the swap to show before it is asked again.
UNSURE_WAIT_SECONDS = 30.0
UNSURE_WAIT_MAX_SECONDS = 3600.0
# Answers that turn a request away before anything is done: the swap was not made.
NOT_TAKEN = (429, 503)


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
            if self._waits_for_another_version(ledger, settings, job, swap):
                return None
            if (newer := ledger.steps.swapped_after(job, swap.original)) is not None:
                swap = self._yield_to(ledger, job, swap, newer)
            else:
                swap = self._ask_first(ledger, job, swap)
        elif swap.stage == "requesting":
            swap = self._after_unsure_ask(ledger, settings, job, swap)
        if swap.stage == "requested":
            swap = self._follow(ledger, settings, job, swap)
        if swap.stage in ("requesting", "requested"):
            return None
        if swap.stage == "finished":
            taken = self._take_original(ledger, job, swap)
            if taken is None:
                return ledger.get(job.id) or job  # the original is gone: refused
            job = taken
            swap = self._clean(ledger, job, swap)
        if swap.stage == "cleaned":
            return ledger.get(job.id) or job
        return job  # refused: the new version keeps its own media

    # --- before asking ----------------------------------------------------------------------

    def _waits_for_another_version(
        self, ledger: Ledger, settings: Settings, job: Job, swap: Swap
    ) -> bool:
        """An older version about to swap into the same media goes first; a newer one
        asking to swap into it now is waited for (made: this one yields; refused: this one
        swaps)."""
        older = ledger.steps.swap_pending_before(job, swap.original)
        if older is not None:
            why = f"waiting for job {older}, an earlier version, to replace {swap.original} first"
            self._later(ledger, settings, job, why)
            return True
        newer = ledger.steps.swapping_after(job, swap.original)
        if newer is not None:
            why = f"waiting for job {newer}, a newer version, swapping into {swap.original} now"
            self._later(ledger, settings, job, why)
            return True
        return False

    def _yield_to(self, ledger: Ledger, job: Job, swap: Swap, newer: int) -> Swap:
        """A newer version replaced the original already: this one's bytes must not go back
        behind it. The job ends with the original, like a swap made, and its own upload, made
        only to be swapped in, is the leftover the same steps delete (`finished`, then
        `cleaned`: a crash between them deletes it after the restart)."""
        why = (
            f"job {newer}, a newer version, replaced {swap.original} already; this version's "
            f"own upload {job.hashed_id} was a leftover"
        )
        return ledger.steps.record_swap(job, "finished", why, reason=why, replacement=job.hashed_id)

    # --- asking --------------------------------------------------------------------------------

    def _ask_first(self, ledger: Ledger, job: Job, swap: Swap) -> Swap:
        """What the original and the replacement hold before asking (what a crash while
        asking is judged by), recorded with `requesting`; then the ask."""
        assert job.hashed_id is not None
        try:
            original = self.client.media(swap.original)
        except NotFoundError:
            return self._refuse(ledger, job, swap, f"{swap.original} is no longer in Wistia")
        size = job.size if job.kind == JobKind.FILE else None
        if size is None:  # a URL import: what Wistia made of it
            size = self.client.media(job.hashed_id).original_size
        swap = ledger.steps.record_swap(
            job,
            "requesting",
            replacement=job.hashed_id,
            requested_at=self.clock.wall(),
            before_size=original.original_size,
            before_updated=original.updated_epoch,
            replacement_size=size,
        )
        return self._ask(ledger, job, swap)

    def _ask(self, ledger: Ledger, job: Job, swap: Swap) -> Swap:
        assert swap.replacement is not None
        try:
            background, api = self.client.swap(swap.original, swap.replacement)
        except TransientError as exc:
            if exc.status_code in NOT_TAKEN:
                # Wistia turned the request away before doing anything: ask again later.
                ledger.steps.record_swap(job, "chosen")
            raise  # otherwise unsure: `requesting` stays, and the original is watched
        except NotFoundError as exc:
            # Which of the two is gone? The original, or the replacement (which a swap that
            # was made may have taken away): what Wistia shows decides.
            if self._original_swapped(job, swap):
                return ledger.steps.record_swap(job, "finished", _made(swap))
            return self._refuse(ledger, job, swap, f"Wistia answered 404: {exc.reason}")
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
            return ledger.steps.record_swap(job, "finished", _made(swap))
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
        """Whether the swap asked without an answer was made, by what Wistia shows now.

        The original holding the replacement's file size, where that differs from its own
        before the ask, says so. Where the sizes cannot tell (the same size): the original
        changed since the moment before the ask, by Wistia's own clock, or the replacement
        gone (ingestd deletes it only after the swap). A swap asked by an ingestd that did not
        record what the original held: the original changed around the ask, as before."""
        try:
            original = self.client.media(swap.original)
        except NotFoundError:
            return False
        before, wanted = swap.before_size, swap.replacement_size
        if before is not None and wanted is not None and before != wanted:
            return original.original_size == wanted
        updated = original.updated_epoch
        if swap.before_updated is not None:
            if updated is not None and updated > swap.before_updated:
                return True
            return self._replacement_gone(swap)
        if self._replacement_gone(swap):
            return True
        if updated is None or updated < (swap.requested_at or 0.0) - RECONCILE_MARGIN_SECONDS:
            return False
        size = original.original_size
        return wanted is None or size is None or size == wanted

    def _replacement_gone(self, swap: Swap) -> bool:
        if swap.replacement is None:
            return False
        try:
            self.client.media(swap.replacement)
        except NotFoundError:
            return True
        return False

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

    def _take_original(self, ledger: Ledger, job: Job, swap: Swap) -> Job | None:
        """The job now carries the original's ids (and its project); the still the earlier
        version set is this one's to replace. None: the original was deleted in Wistia since
        the swap (refused: the job keeps its own media)."""
        try:
            original = self.client.media(swap.original)
        except NotFoundError:
            self._refuse(ledger, job, swap, f"{swap.original} was deleted in Wistia")
            return None
        changes: dict[str, object] = {"hashed_id": swap.original, "media_id": original.id}
        if original.project_hashed_id:
            changes["project_id"] = original.project_hashed_id
        earlier = ledger.jobs.earlier_version(job)
        yielded = swap.reason is not None  # the newer version's still is its own
        if not yielded and earlier is not None and earlier.hashed_id == swap.original:
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

    def _delete_leftover(self, hashed_id: str) -> str:
        try:
            self.client.delete_media(hashed_id)
        except NotFoundError:
            return "was gone from Wistia already"
        except PermanentError as exc:  # 403: the token may not delete; the swap stands
            log.warning("could not delete the swap's leftover", media=hashed_id, error=exc.reason)
            return f"could not be deleted (Wistia said: {exc.reason}); delete it in Wistia"
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
    """What the done job says of its swap: why the earlier media was not replaced (refused),
    or why this version's own bytes are not behind it (it yielded to a newer one)."""
    swap = ledger.steps.swap(job.id)
    return swap.reason if swap is not None and swap.stage != "unknown" else None


def _made(swap: Swap) -> str:
    return f"the swap of {swap.replacement} into {swap.original} was made"
