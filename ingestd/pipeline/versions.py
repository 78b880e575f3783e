"""What a new version replaces in place (SPEC "New versions replace in place"), chosen and
recorded before its upload, so that the upload goes to the same project and a crash later
finds the choice made.

- a clip.json `"replaces": "<hashed id>"`: that media, asked of Wistia first (a media Wistia
  does not have holds the job, and its recheck asks again only once the sidecar names another);
- else, with `ingest.new_version = "replace"`, the media the latest version of the same path
  ended with (done, or still on its way);
- a version that proves an earlier upload partial (settle.py) replaces that one, with
  `ingest.replace_partial`; with `new_version = "add"` the partial is deleted instead, once
  this version is done (finish/partial.py).

The swap itself, and everything after it, is finishing's (finish/swap.py).
"""

from __future__ import annotations

from ingestd.config.settings import Settings
from ingestd.core.errors import JobInputError, NotFoundError
from ingestd.core.jobs import Job
from ingestd.folder.sidecars import Metadata
from ingestd.ledger import Ledger, Swap
from ingestd.ledger.steps import SwapHow
from ingestd.wistia.client import WistiaClient


def unknown_original(hashed_id: str) -> JobInputError:
    return JobInputError(
        f'clip.json says this file "replaces" {hashed_id}, but Wistia has no media {hashed_id}',
        'fix or remove "replaces" in clip.json; the job goes on by itself',
    )


def check_replaces(ledger: Ledger, job: Job, metadata: Metadata) -> None:
    """The held job's recheck: still naming the media Wistia said it does not have."""
    swap = ledger.steps.swap(job.id)
    if swap is not None and swap.stage == "unknown" and metadata.replaces == swap.original:
        raise unknown_original(swap.original)


def choose(
    ledger: Ledger, settings: Settings, client: WistiaClient, job: Job, metadata: Metadata
) -> Swap | None:
    """Record which media this version replaces, if any, and return it."""
    chosen = ledger.steps.swap(job.id)
    if chosen is not None and chosen.stage not in ("unknown", "chosen"):
        return chosen  # under way already: a choice is made once per version
    if metadata.replaces:
        try:
            media = client.media(metadata.replaces)
        except NotFoundError:
            ledger.steps.record_unknown_original(job, metadata.replaces)
            raise unknown_original(metadata.replaces) from None
        ledger.steps.choose_swap(job, metadata.replaces, "replaces", media.project_hashed_id)
        return ledger.steps.swap(job.id)
    earlier = ledger.jobs.earlier_version(job)
    ingest = settings.ingest
    how: SwapHow | None = None  # None: nothing in Wistia to replace, or not to be replaced
    if earlier is not None and earlier.hashed_id is not None:
        if job.replaces == earlier.id:  # this version proves that upload partial
            partial = ingest.replace_partial and ingest.new_version == "replace"
            how = "partial" if partial else None
        elif ingest.new_version == "replace":
            how = "path"
    if how is None or earlier is None:
        ledger.steps.forget_swap(job)
        return None
    # An earlier version still on its way into the kept media replaces that one, not its own
    # upload (which becomes a leftover): this version goes to the media the path keeps.
    its_swap = ledger.steps.swap(earlier.id)
    original = earlier.hashed_id
    # (Also once it is `finished`: until it takes the original's ids, its hashed id is still
    # its own upload, which is about to be deleted as the leftover.)
    if its_swap is not None and its_swap.stage not in ("unknown", "refused"):
        original = its_swap.original
    ledger.steps.choose_swap(job, original, how, earlier.project_id)
    return ledger.steps.swap(job.id)
