"""The finisher: the stage that owns `finishing`, from a media ready in Wistia to `done`.

One job's finish, in order, each step recorded so a crash neither loses nor repeats one:

1. its sidecars read (when the job gets here, so a caption dropped after its video still
   applies);
2. a new version swapped into the media it replaces, Wistia's background job followed, the
   leftover deleted (swap.py): from then on the job carries the kept hashed id;
3. the sidecars sent to that media: steps, then the thumbnail (sync.py); a step Wistia
   refuses (403) is skipped and named in the done job's reason; sent again if a sidecar
   changed while it was being sent (the digests judge);
4. the partial media this version proves partial, if it was not swapped into (partial.py);
5. the file's fate: keep, move or delete (fate.py), chosen and recorded before anything moves;
6. the receipt (receipt.py), then `done`.

Whatever goes wrong (a bad sidecar, Wistia's answer, a move that fails) ends in the job's
state through the guard and the outcome policy; `preflight` is also what the held jobs'
recheck runs.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core.jobs import Job, JobState
from ingestd.core.outcomes import Stage
from ingestd.folder.sidecars import Sidecars, changed_within, read_sidecars
from ingestd.ledger import Ledger, Ledgers
from ingestd.pipeline.finish import fate, receipt
from ingestd.pipeline.finish.partial import replace_partial
from ingestd.pipeline.finish.swap import Swaps, swap_reason
from ingestd.pipeline.finish.sync import SidecarSync, refusals
from ingestd.pipeline.finish.thumbnail import waiting_for
from ingestd.pipeline.loop import WistiaStage
from ingestd.wistia.client import WistiaClient

log = logs.get("ingestd.finish")


class Finisher(WistiaStage):
    kind = Stage.FINISH

    def __init__(
        self,
        settings: Settings,
        ledgers: Ledgers,
        client: WistiaClient,
        stop: threading.Event,
    ) -> None:
        super().__init__(settings, ledgers, client, stop)
        self.sync = SidecarSync(client, self.clock)
        self.swaps = Swaps(client, self.clock)

    def run(self) -> None:
        self.run_through_due(
            lambda ledger, now: ledger.jobs.due_finishing(now),
            self.finish,
            lambda ledger, now: ledger.jobs.soonest(JobState.FINISHING, now),
            woken_by=(JobState.FINISHING,),
        )

    # --- finishing one job --------------------------------------------------------------

    def finish(self, ledger: Ledger, job: Job) -> None:
        # Once the file's fate was chosen (recorded first), its sidecars were all sent: a
        # restart goes straight on with the fate, whatever of the sidecars has moved already.
        read_at = None
        if not fate.begun(ledger, job):
            read_at = self.clock.wall()  # as the sidecars' own mtimes
            sidecars = self.preflight(ledger, job)
            now, settle = self.clock.now(), self.settings.ingest.settle_seconds
            if changed_within(sidecars.paths, self.clock.wall(), settle):
                reason = "waiting for its sidecar files to stop changing"
                ledger.update(job, next_attempt_at=now + settle, reason=reason)
                return
            swapped = self.swaps.carry_out(ledger, self.settings, job)
            if swapped is None:
                return  # Wistia is swapping it in: looked at again (reason and time set)
            job = swapped
            if self.sync.apply(ledger, job, sidecars) is None:
                assert sidecars.thumbnail is not None
                wait = now + self.settings.ingest.poll_min_seconds
                ledger.update(job, next_attempt_at=wait, reason=waiting_for(sidecars.thumbnail))
                return
            if self.sync.changed_since_sent(ledger, job, self._read(job)):
                reason = "a sidecar changed while it was being sent; sending it again"
                ledger.update(job, next_attempt_at=self.clock.now(), reason=reason)
                log.info(reason)
                return
            replace_partial(ledger, self.settings, self.client, job)
        note = fate.carry_out(ledger, self.settings, job)
        receipt.write_for(ledger, self.settings, self.client, job, done_at=self.clock.wall())
        # What Wistia refused of the sidecars (a 403) stays said on the done job.
        # What could not be done stays said on the done job: the earlier media not replaced,
        # what Wistia refused of the sidecars (a 403).
        said = [why for why in (swap_reason(ledger, job), refusals(ledger, job)) if why]
        changes: dict[str, object] = {
            "error": None,
            "next_attempt_at": None,
            "reason": "; ".join(said) or None,
        }
        if read_at is not None:
            changes["sidecars_read_at"] = read_at
        ledger.move(job, JobState.DONE, note, **changes)
        log.info("done", fate=note)

    def preflight(self, ledger: Ledger, job: Job) -> Sidecars:
        """The local checks of finishing, which the held jobs' recheck runs too: the sidecars
        read and valid, not a thumbnail Wistia could not process, and the file's fate
        possible."""
        sidecars = self._read(job)
        self.sync.thumbnails.check(ledger, job, sidecars.thumbnail)
        fate.check(self.settings, job)
        return sidecars

    def _read(self, job: Job) -> Sidecars:
        return read_sidecars(
            Path(job.path), self.settings.watch_dir, self.settings.captions.default_language
        )
