"""Sidecar steps: what a media is sent of its sidecars, each step once per digest.

    metadata          the name and description (a media update)
    customizations    the player's customizations, merged into the media's (PUT: keys not
                      named are kept, a null deletes one)
    tags              the merged tags (a media update with tags[], which replaces its tags)
    captions:<lang>   one caption file per language: created, or replaced where Wistia has
                      captions in that language already

Each step is recorded in the ledger (ledger.steps.sent) with a digest of what was sent, once
Wistia accepted it: a crash between two steps sends again only the unrecorded ones, an
unchanged sidecar is never sent twice, and every step is idempotent in Wistia anyway.

A step Wistia refuses with a 403 (the plan lacks the feature, or the token the scope) is that
step's trouble alone: recorded as refused with its digest and reason (ledger.steps.refused),
skipped, and tried again only when what it would send changes; the job goes on to `done`,
its reason saying what was refused. Finishing and re-sync both send through here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingestd import logs
from ingestd.core.errors import ForbiddenError, NotFoundError, PermanentError
from ingestd.core.jobs import Job
from ingestd.core.names import wistia_name
from ingestd.folder.sidecars import (
    CAPTIONS_STEP,
    CUSTOMIZATIONS_STEP,
    METADATA_STEP,
    TAGS_STEP,
    Sidecars,
    digest,
    metadata_digest,
)
from ingestd.ledger import Ledger
from ingestd.wistia.client import WistiaClient

log = logs.get("ingestd.finish")


@dataclass(frozen=True)
class Step:
    """One thing to send: its name, the digest of what it sends, and the sending."""

    name: str
    digest: str
    send: Callable[[], object]


class SidecarSteps:
    def __init__(self, client: WistiaClient) -> None:
        self.client = client

    def pending(
        self, ledger: Ledger, job: Job, sidecars: Sidecars, *, resync: bool = False
    ) -> list[Step]:
        """What still has to be sent: each step whose digest the ledger lacks. A re-sync
        sends only what sidecars say (a deleted clip.json changes nothing back)."""
        assert job.hashed_id is not None
        hashed_id = job.hashed_id
        sent = ledger.steps.sent(job.id)
        metadata = sidecars.metadata
        fields = {"name": metadata.name or job.media_name or wistia_name(Path(job.path).name)}
        if metadata.description is not None:
            fields["description"] = metadata.description
        wanted: list[Step] = []
        if not resync or metadata.name is not None or metadata.description is not None:
            wanted.append(
                Step(
                    METADATA_STEP,
                    metadata_digest(fields),
                    lambda: self._update_metadata(ledger, job, fields),
                )
            )
        if metadata.customizations is not None:
            customizations = metadata.customizations
            wanted.append(
                Step(
                    CUSTOMIZATIONS_STEP,
                    digest(customizations),
                    lambda: self.client.merge_customizations(hashed_id, customizations),
                )
            )
        if metadata.tags:
            tags = list(metadata.tags)
            wanted.append(
                Step(TAGS_STEP, digest(tags), lambda: self.client.set_tags(hashed_id, tags))
            )
        for caption in sidecars.captions:
            wanted.append(
                Step(
                    CAPTIONS_STEP + caption.language,
                    caption.digest,
                    lambda c=caption: self._send_captions(hashed_id, c.language, c.text),
                )
            )
        refused = ledger.steps.refused(job.id)
        return [
            step
            for step in wanted
            if sent.get(step.name) != step.digest
            and (step.name not in refused or refused[step.name].digest != step.digest)
        ]

    def send(
        self, ledger: Ledger, job: Job, sidecars: Sidecars, *, resync: bool = False
    ) -> list[str]:
        """Send every pending step, each recorded once Wistia accepted it (or refused it:
        403); the names of the steps sent."""
        names = []
        for step in self.pending(ledger, job, sidecars, resync=resync):
            try:
                step.send()
            except ForbiddenError as refused:
                ledger.steps.record_refused(job, step.name, step.digest, refused.reason)
                log.warning("Wistia refused a sidecar step", step=step.name, reason=refused.reason)
                continue
            ledger.steps.record_sent(job.id, step.name, step.digest)
            log.info("applied sidecar", step=step.name)
            names.append(step.name)
        return names

    def _update_metadata(self, ledger: Ledger, job: Job, fields: dict[str, str]) -> None:
        assert job.hashed_id is not None
        self.client.update_media(job.hashed_id, fields)
        ledger.update(job, media_name=fields["name"])  # its name in Wistia, for receipts

    def _send_captions(self, hashed_id: str, language: str, text: str) -> None:
        """Create; Wistia answers 400 when captions in that language exist: replace them."""
        try:
            self.client.create_captions(hashed_id, language, text)
        except PermanentError as exc:
            if exc.status_code != 400 or isinstance(exc, NotFoundError):
                raise
            try:
                self.client.replace_captions(hashed_id, language, text)
            except NotFoundError:
                raise exc from None  # they did not exist: the 400 meant something else
