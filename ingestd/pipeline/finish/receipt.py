"""Receipts (`ingest.receipts`): `<file name>.wistia.json` next to a done file, where it ends
up (the watch folder for keep, the archive for move; none for delete), for the people and
scripts who look at the folder rather than at ingestd.

Written when the job is done and rewritten by a re-sync; atomically: a temporary dotfile
(which the watcher ignores) in the same folder, flushed to disk, then renamed over the old
receipt. Every step works relative to a folder descriptor reached without links
(folder.files.Folder), so a link planted at the receipt's name is replaced, never followed.
Receipts are never sidecars or media (folder.sidecars.is_receipt). One that cannot be written
is noted in the job's history and the log; it never holds the job.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core.clock import iso
from ingestd.core.errors import JobInputError, WistiaError
from ingestd.core.jobs import Job, JobKind, JobState
from ingestd.core.names import wistia_name
from ingestd.folder.files import Folder
from ingestd.folder.sidecars import CAPTIONS_STEP, RECEIPT_SUFFIX
from ingestd.ledger import Ledger
from ingestd.pipeline.finish import fate
from ingestd.wistia.client import WistiaClient

log = logs.get("ingestd.finish")


def receipt_name(media_name: str) -> str:
    return media_name + RECEIPT_SUFFIX


def write_for(
    ledger: Ledger,
    settings: Settings,
    client: WistiaClient,
    job: Job,
    done_at: float | None = None,
) -> None:
    """The receipt of `job` (as the ledger has it now) where its file ends up, if
    `ingest.receipts` asks for one."""
    current = ledger.get(job.id)
    if not settings.ingest.receipts or current is None or current.hashed_id is None:
        return
    place = fate.where_it_ends_up(ledger, settings, current)
    if place is None:
        return
    where, base = place
    try:
        content = receipt(
            current,
            sorted(ledger.steps.sent(job.id)),
            current.media_name or wistia_name(where.name),
            client.media_url(current.hashed_id),
            uploaded_at=ledger.jobs.entered_at(job.id, JobState.PROCESSING),
            done_at=done_at or ledger.jobs.entered_at(job.id, JobState.DONE),
        )
        write_receipt(where.with_name(receipt_name(where.name)), base, content)
    except (OSError, JobInputError, WistiaError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        ledger.note(current, f"could not write the receipt: {why}")
        log.warning("could not write the receipt", error=str(why))


def receipt(
    job: Job,
    steps_sent: list[str],
    name: str,
    url: str,
    *,
    uploaded_at: float | None,
    done_at: float | None,
) -> dict[str, Any]:
    """What the receipt says (SPEC, "Telling other systems"); times are wall times."""
    is_file = job.kind == JobKind.FILE
    return {
        "hashed_id": job.hashed_id,
        "media_id": job.media_id,
        "name": name,
        "project_id": job.project_id,
        "sha256": job.sha256 if is_file else None,
        "size": job.size if is_file else None,
        "uploaded_at": iso(uploaded_at),
        "done_at": iso(done_at),
        "captions": sorted(
            step.removeprefix(CAPTIONS_STEP)
            for step in steps_sent
            if step.startswith(CAPTIONS_STEP)
        ),
        "url": url,
    }


def write_receipt(where: Path, base: Path, content: dict[str, Any]) -> None:
    """Write the receipt at `where` (below `base`, reached without links), replacing any."""
    data = (json.dumps(content, indent=2, ensure_ascii=False) + "\n").encode()
    temporary = f".ingestd-receipt-{secrets.token_hex(6)}"
    with Folder(where.parent, base) as folder:
        fd = os.open(
            temporary,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=folder.fd,
        )
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, where.name, src_dir_fd=folder.fd, dst_dir_fd=folder.fd)
        except BaseException:
            folder.unlink(temporary)
            raise
