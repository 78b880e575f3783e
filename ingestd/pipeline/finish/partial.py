"""A partial version replaced: a version whose first bytes are exactly an earlier done one's
proved that upload partial (a stalled copy that slipped through). Once this whole version is
in Wistia, it takes the partial media's place (`ingest.replace_partial`): swapped into it
(`new_version = "replace"`: swap.py), so the partial's embeds now play the whole file; or,
with `new_version = "add"` or where Wistia refused the swap, the partial media is deleted,
one of the few cases in which ingestd deletes a media. Done once: recorded
(ledger.steps.record_replaced), with both jobs' histories saying how.
"""

from __future__ import annotations

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core.errors import NotFoundError, PermanentError
from ingestd.core.jobs import Job
from ingestd.ledger import Ledger
from ingestd.wistia.client import WistiaClient

log = logs.get("ingestd.finish")


def replace_partial(ledger: Ledger, settings: Settings, client: WistiaClient, job: Job) -> None:
    if job.replaces is None or ledger.steps.replaced(job.id):
        return
    partial = ledger.get(job.replaces)
    swap = ledger.steps.swap(job.id)
    if partial is not None and swap is not None and swap.stage in ("finished", "cleaned"):
        how = (
            f"media {swap.original} (job {partial.id}) held a partial copy of this file; job "
            f"{job.id}'s whole version was swapped into it: its embeds now play the whole file"
        )
        ledger.steps.record_replaced(partial, job, deleted=False, how=how)
        log.info(how)
        return
    if (
        partial is None
        or partial.hashed_id is None
        or partial.replaced_by is not None
        or partial.hashed_id == job.hashed_id
        or ledger.jobs.hashed_id_taken(partial.hashed_id, except_job=partial.id)
    ):
        return  # nothing of its own to delete
    what = f"media {partial.hashed_id} (job {partial.id}) holds a partial copy of this file"
    if not settings.ingest.replace_partial:
        how = f"{what}; left in Wistia (ingest.replace_partial = false)"
        ledger.steps.record_replaced(partial, job, deleted=False, how=how)
        log.warning(how)
        return
    try:
        client.delete_media(partial.hashed_id)
        gone = "deleted it from Wistia"
    except NotFoundError:
        gone = "it was already gone from Wistia"
    except PermanentError as exc:
        how = f"{what}; could not delete it ({exc.reason}): delete it in Wistia"
        ledger.steps.record_replaced(partial, job, deleted=False, how=how)
        log.warning(how)
        return
    how = f"{what}; job {job.id}'s media {job.hashed_id} replaces it: {gone}"
    ledger.steps.record_replaced(partial, job, deleted=True, how=how)
    log.info(how)
