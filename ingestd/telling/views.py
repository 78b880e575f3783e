"""How a job looks to programs: the object `status --json` prints for each job, which the
notifications and receipts carry too. One shape, from one place (SPEC, "Command line")."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from ingestd.config.limits import UploadHours
from ingestd.core.clock import iso
from ingestd.core.jobs import Job, JobState
from ingestd.core.names import as_text


def waiting_reason(
    job: Job, settle_seconds: float | None, now: float, hours: UploadHours | None = None
) -> str | None:
    """Why the job waits: the ledger's reason, for a settling file how long it has been
    still, for a queued one outside the upload hours when they open (before its own reason,
    a retry's, which waits for the hours too)."""
    if job.state == JobState.QUEUED and hours is not None:
        moment = datetime.fromtimestamp(now)
        if not hours.open_at(moment):
            opens = hours.next_opening(moment).strftime("%H:%M")
            closed = f"outside the upload hours ({hours}): uploads start at {opens}"
            return f"{closed}; {job.reason}" if job.reason else closed
    if job.reason:
        return job.reason
    if job.state == JobState.SETTLING and job.settle_since is not None:
        still = max(0.0, now - job.settle_since)
        target = f" of {settle_seconds:g}" if settle_seconds is not None else ""
        return f"waiting for the file to stop changing (unchanged for {still:.1f}{target} s)"
    return None


def job_view(
    job: Job,
    settle_seconds: float | None = None,
    now: float | None = None,
    hours: UploadHours | None = None,
) -> dict[str, Any]:
    now = time.time() if now is None else now
    progress = speed = seconds_left = None
    if job.state == JobState.UPLOADING and job.size and job.bytes_sent is not None:
        progress = round(min(1.0, job.bytes_sent / job.size), 4)
        speed, seconds_left = _pace(job, now)
    return {
        "id": job.id,
        "path": as_text(job.path),  # JSON escapes control characters itself
        "kind": job.kind,
        "state": job.state.value,
        "attempts": job.attempts,
        "error": job.error,
        "reason": waiting_reason(job, settle_seconds, now, hours),
        "media_id": job.media_id,
        "hashed_id": job.hashed_id,
        "size": job.size,
        "sha256": job.sha256,
        "bytes_sent": job.bytes_sent,
        "progress": progress,
        "speed": speed,
        "seconds_left": seconds_left,
        "next_retry_at": iso(job.next_attempt_at) if job.state == JobState.QUEUED else None,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
    }


def job_view_text(job: Job, at: float) -> str:
    """The job as `status --json` shows it at `at`, as JSON text (what a notification
    carries: the ledger's outbox stores it when the job moves)."""
    return json.dumps(job_view(job, now=at), ensure_ascii=False)


def _pace(job: Job, now: float) -> tuple[int | None, int | None]:
    """Bytes per second on average since this attempt began (the claim set `updated_at`;
    progress does not move it), and the seconds left at that pace."""
    assert job.size is not None and job.bytes_sent is not None
    elapsed = now - job.updated_at
    if elapsed < 1.0 or job.bytes_sent <= 0:
        return None, None
    speed = job.bytes_sent / elapsed
    return round(speed), round(max(0, job.size - job.bytes_sent) / speed)
