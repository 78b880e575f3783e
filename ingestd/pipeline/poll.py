"""Wait for processing: learn when each uploaded media is `ready` (or `failed`) in Wistia.

One thread, in sweeps. A sweep happens when some job's poll is due (each job's interval grows
from `ingest.poll_min_seconds`, times 1.5, up to `ingest.poll_max_seconds`):

1. one `GET /v1/medias.json?sort_by=updated&sort_direction=0&per_page=100` answers for every
   media on that page, due or not. Further pages are read only while they may still hold a
   media being waited for: the list is sorted by last change, and a media changes (its status
   moves on) no earlier than it was created, so once a page ends with medias changed before
   the oldest waited-for upload began, no later page can hold it;
2. a due media that no page showed is asked about on its own (`GET /v1/medias/<id>.json`), at
   its own growing interval.

So many medias in processing cost about one request per sweep, not one each. Polls also take
from their own share of the request budget (wistia.POLL_SHARE), so that they can never crowd
out uploads. `ready` -> finishing; everything else (Wistia's `failed`, a 404 for a media
deleted in Wistia, processing longer than `ingest.processing_timeout_seconds`, network trouble)
ends in the job's state through the guard and the outcome policy. Under an auth hold nothing
is sent. With `ingest.batch_polling = false` every due media is asked about on its own.
"""

from __future__ import annotations

import functools
import threading

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core import liveness
from ingestd.core.errors import Cancelled, HoldError, MediaFailed, WistiaError
from ingestd.core.jobs import Job, JobState
from ingestd.core.outcomes import Stage
from ingestd.ledger import Ledger, Ledgers
from ingestd.pipeline.loop import WistiaStage, policy_for
from ingestd.wistia.client import WistiaClient
from ingestd.wistia.models import PER_PAGE, Media

log = logs.get("ingestd.poller")

# Wistia's clock and ours may differ: a page is worth reading if it may hold medias changed up
# to this long before our oldest waited-for upload began.
CLOCK_MARGIN_SECONDS = 300.0
# However many medias change at once, a sweep reads at most this many pages.
MAX_PAGES = 10
# After a list failed, medias are asked about one by one for this long before a list is tried
# again: a list that keeps failing must not cost every sweep its retries.
LIST_REST_SECONDS = 300.0


class Poller(WistiaStage):
    kind = Stage.POLL

    def __init__(
        self,
        settings: Settings,
        ledgers: Ledgers,
        client: WistiaClient,
        stop: threading.Event,
    ) -> None:
        super().__init__(settings, ledgers, client, stop)
        self._lists_after = 0.0  # no list before this moment (one failed)

    def run(self) -> None:
        self.run_passes(self._pass, JobState.PROCESSING)

    def _pass(self, ledger: Ledger, now: float) -> float | None:
        hold = ledger.hold.current()
        if hold is not None and hold.kind == "auth":
            return None  # nothing is asked of Wistia under an auth hold
        due = ledger.jobs.due_polls(now)
        if due:
            self.sweep(ledger, due)
            return now
        return ledger.jobs.soonest(JobState.PROCESSING, now)

    # --- one sweep ------------------------------------------------------------------------

    def sweep(self, ledger: Ledger, due: list[Job]) -> None:
        """Learn the state of every due media, with as few requests as the list allows."""
        seen: dict[str, Media] = {}
        if self.settings.ingest.batch_polling and self.clock.now() >= self._lists_after:
            try:
                seen = self._list(due)
            except (HoldError, Cancelled) as error:  # the account's, not the jobs': once
                with logs.job_context(due[0]):
                    self.guard.outcome(ledger, due[0], error)
                return
            except WistiaError as error:  # no list: each due media is asked on its own
                self._lists_after = self.clock.now() + LIST_REST_SECONDS
                log.warning(
                    "could not list the medias; polling each one on its own for a while",
                    error=error.reason,
                    retry_list_in_seconds=LIST_REST_SECONDS,
                )
            else:
                self._learn(ledger, seen)
        for job in due:
            if job.hashed_id not in seen and not self.stop.is_set():
                liveness.beat()
                self.guard.run(ledger, job, self.poll)  # asked on its own

    def _list(self, due: list[Job]) -> dict[str, Media]:
        """The first pages of medias by last change: as many as may hold a due media."""
        waiting = {job.hashed_id for job in due}
        # Compared with Wistia's `updated`: on the wall clock.
        began = self.clock.to_wall(min(job.processing_since or 0.0 for job in due))
        began -= CLOCK_MARGIN_SECONDS
        seen: dict[str, Media] = {}
        for page in range(1, MAX_PAGES + 1):
            medias, listed = self.client.medias_by_update(page)
            seen.update((media.hashed_id, media) for media in medias)
            if listed < PER_PAGE or not medias or waiting <= seen.keys():
                break
            changed = medias[-1].updated_epoch
            if changed is None or changed < began:
                break  # later pages hold only medias changed before any due one was uploaded
        return seen

    def _learn(self, ledger: Ledger, seen: dict[str, Media]) -> None:
        """Every job in processing whose media the list showed takes what it says, due or
        not: the answer is already paid for. The jobs are read after the list came back, so
        one moved meanwhile is not among them."""
        for job in ledger.jobs.processing_with(list(seen)):
            liveness.beat()
            self.guard.run(ledger, job, functools.partial(self._take, media=seen[job.hashed_id]))

    # --- one media ------------------------------------------------------------------------

    def poll(self, ledger: Ledger, job: Job) -> None:
        """Ask Wistia about this one media."""
        assert job.hashed_id is not None
        self._take(ledger, job, self.client.media(job.hashed_id))

    def _take(self, ledger: Ledger, job: Job, media: Media) -> None:
        """What Wistia says of the media moves the job on, or sets its next poll. A job seen
        in a list for another's sake takes it as its own poll: any answer "still processing"
        lets the next question wait longer, and the list shows the media's change anyway."""
        now = self.clock.now()
        if media.state == "ready":
            log.info("processed by Wistia")
            ledger.move(
                job,
                JobState.FINISHING,
                "ready in Wistia",
                next_poll_at=None,
                # The Data API says where the media is (Wistia's default project included).
                project_id=media.project_hashed_id or job.project_id,
            )
            return
        if media.state == "failed":
            raise MediaFailed("Wistia could not process the media (status failed)")
        limit = self.settings.ingest.processing_timeout_seconds
        if now - (job.processing_since or now) > limit:
            raise MediaFailed(f"still {media.state} in Wistia after {limit:.0f} s; giving up")
        interval = policy_for(self.settings.ingest).poll.after(job.poll_interval)
        ledger.update(
            job,
            next_poll_at=now + interval,
            poll_interval=interval,
            reason=f"Wistia is processing it ({media.state})",
        )
