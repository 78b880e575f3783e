"""Receipts (`ingest.receipts`): `<file name>.wistia.json` next to a done file, where it ends
up (the watch folder for keep, the archive for move; none for delete), for the people and
scripts who look at the folder rather than at ingestd.

Written atomically: a temporary dotfile (which the watcher ignores) in the same folder,
flushed to disk, then renamed over the old receipt. Every step works relative to a folder
descriptor reached without links (files.Folder), so a link planted at the receipt's name is
replaced, never followed. Receipts are never sidecars or media (sidecars.is_receipt).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from ingestd.core.jobs import Job, JobKind
from ingestd.folder.files import Folder
from ingestd.folder.sidecars import CAPTIONS_STEP, RECEIPT_SUFFIX
from ingestd.telling.views import iso


def receipt_name(media_name: str) -> str:
    return media_name + RECEIPT_SUFFIX


def receipt(
    job: Job, applied: dict[str, str], name: str, url: str, done_at: float
) -> dict[str, Any]:
    """What the receipt says (SPEC, "Telling other systems")."""
    is_file = job.kind == JobKind.FILE
    return {
        "hashed_id": job.hashed_id,
        "media_id": job.media_id,
        "name": name,
        "project_id": job.project_id,
        "sha256": job.sha256 if is_file else None,
        "size": job.size if is_file else None,
        "uploaded_at": iso(job.processing_since),
        "done_at": iso(done_at),
        "captions": sorted(
            step.removeprefix(CAPTIONS_STEP) for step in applied if step.startswith(CAPTIONS_STEP)
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
