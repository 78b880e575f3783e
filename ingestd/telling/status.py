"""Read-only views of the ledger for `ingestd status`: a table for people, JSON for programs.

The JSON shape is a contract (SPEC, "Command line"): `counts`, `hold`, `jobs` with at least
`id`, `path`, `state`, `attempts`, `error`, `reason`, `media_id`, `hashed_id`; and for one job
`{"job": {...}, "events": [...]}`. Keys are only ever added.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ingestd import logs
from ingestd.config.limits import UploadHours
from ingestd.core.clock import iso
from ingestd.core.jobs import Job, JobState
from ingestd.core.names import display
from ingestd.ledger import Event, Ledger, LedgerLock
from ingestd.telling.views import job_view


def event_view(event: Event) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "from": event.from_state,
        "to": event.to_state,
        "note": event.note,
    }


def daemon_view(ledger: Ledger) -> dict[str, Any]:
    holder = LedgerLock(ledger.path).holder()
    if holder is None:
        return {"running": False, "pid": None, "since": None}
    return {"running": True, "pid": holder.get("pid"), "since": iso(holder.get("since"))}


def snapshot(
    ledger: Ledger,
    *,
    all_jobs: bool = False,
    settle_seconds: float | None = None,
    hours: UploadHours | None = None,
) -> dict[str, Any]:
    """Everything `status --json` prints."""
    now = time.time()
    jobs = ledger.jobs.active_and_recent(None if all_jobs else 100)
    return {**summary(ledger), "jobs": [job_view(job, settle_seconds, now, hours) for job in jobs]}


def empty_snapshot(ledger_path: Path) -> dict[str, Any]:
    """What `status --json` prints before the daemon ever made a ledger."""
    return {
        "counts": {state.value: 0 for state in JobState},
        "hold": None,
        "account": None,
        "adoption": None,
        "daemon": {"running": False, "pid": None, "since": None},
        "ledger": str(ledger_path),
        "notifications": {"waiting": 0, "last_error": None, "receivers": {}},
        "jobs": [],
    }


def summary(ledger: Ledger) -> dict[str, Any]:
    """The counts, the hold and the daemon: all `status --check` needs, without the jobs."""
    counts = {state.value: 0 for state in JobState}
    counts.update(ledger.jobs.counts())
    hold = ledger.hold.current()
    return {
        "counts": counts,
        "hold": None
        if hold is None
        else {
            "kind": hold.kind,
            "reason": hold.reason,
            "since": iso(hold.since),
            # Under a video limit with the account full, no upload probe is sent until a look
            # at the account (next_check_at) shows room.
            "next_probe_at": None if hold.full else iso(hold.next_probe_at),
            "next_check_at": iso(hold.next_check_at),
            "room": hold.room,
        },
        "account": account_view(ledger),
        "adoption": adoption_view(ledger),
        "daemon": daemon_view(ledger),
        "ledger": str(ledger.path),
        "notifications": ledger.outbox.waiting(),
    }


def waiting_words(notifications: dict[str, Any]) -> str:
    """How many notifications wait, and for which kinds of receiver: `3 notification(s)
    waiting to be delivered (2 for slack, 1 for webhook)` (a notification to two receivers
    counts once in the number, once for each)."""
    line = f"{notifications['waiting']} notification(s) waiting to be delivered"
    kinds = notifications.get("receivers") or {}
    if kinds:
        line += " (" + ", ".join(f"{n} for {kind}" for kind, n in kinds.items()) + ")"
    return line


def account_view(ledger: Ledger) -> dict[str, Any] | None:
    """How full the account was at the daemon's last look (`GET /v1/account.json`)."""
    media = ledger.facts.account_media()
    if media is None:
        return None
    return {
        "media_count": media.count,
        "video_limit": media.limit,
        "checked_at": iso(media.at),
        "shown": media.shown(),
    }


def adoption_view(ledger: Ledger) -> dict[str, Any] | None:
    """The files older than the ledger being looked for in Wistia before their upload."""
    progress = ledger.adoption.progress()
    if progress is None:
        return None
    return {
        "files": progress.files,
        "checked": progress.checked,
        "shown": f"looking for {progress.files:,} files in Wistia before uploading them: "
        f"{progress.checked:,} checked",
    }


def as_json(view: dict[str, Any], *, indent: int | None = None) -> str:
    """The JSON text of a view, redacted: what `status --json` prints and the status page's
    API answers, from this one function. (The encoder escapes every control character; with
    no indent it is the fast C one.)"""
    return logs.redact(json.dumps(view, indent=indent))


def history(
    ledger: Ledger,
    job: Job,
    settle_seconds: float | None = None,
    hours: UploadHours | None = None,
) -> dict[str, Any]:
    return {
        "job": job_view(job, settle_seconds, hours=hours),
        "events": [event_view(e) for e in ledger.jobs.events(job.id)],
    }


# --- for people ---------------------------------------------------------------------------------


def _shown(text: str) -> str:
    """Text on one line, whatever it contains: control characters escaped, so that a name or
    a reason cannot move the terminal's cursor or change its colours."""
    return display(text)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _clock(text: str | None) -> str:
    return text.replace("T", " ").replace("Z", " UTC") if text else ""


def render(view: dict[str, Any], *, alerts: bool = True) -> str:
    """The status text; `alerts=False` leaves out the hold and the waiting notifications
    (`status --watch` shows them above its bars)."""
    lines: list[str] = []
    daemon = view["daemon"]
    if daemon["running"]:
        lines.append(f"daemon: running (pid {daemon['pid']}, since {_clock(daemon['since'])})")
    else:
        lines.append("daemon: not running")
    lines.append(f"ledger: {view['ledger']}")
    counts = view["counts"]
    lines.append("jobs:   " + "   ".join(f"{state} {counts[state]}" for state in counts))
    hold = view["hold"] if alerts else None
    if hold:
        lines.append("")
        lines.append(f"ON HOLD ({hold['kind']}), every upload waits: {_shown(hold['reason'])}")
        if hold.get("next_probe_at") is None:
            probe = "no upload probe while the account is full"
        else:
            probe = f"next probe {_clock(hold['next_probe_at'])}"
        if hold.get("next_check_at") is not None:
            probe += f"; next look at the account {_clock(hold['next_check_at'])}"
        lines.append(f"        since {_clock(hold['since'])}; {probe}")
    account = view.get("account")
    if account and account.get("shown"):
        lines.append(f"wistia: {account['shown']} (as of {_clock(account['checked_at'])})")
    adoption = view.get("adoption")
    if adoption:
        lines.append(f"wistia: {adoption['shown']}")
    waiting = view["notifications"]
    if alerts and waiting["waiting"]:
        lines.append(f"notify: {_shown(waiting_words(waiting))}")
        if waiting["last_error"]:
            lines.append(f"        last delivery error: {_shown(waiting['last_error'])}")
    active = [j for j in view["jobs"] if j["state"] not in ("done", "failed")]
    recent = [j for j in view["jobs"] if j["state"] in ("done", "failed")]
    if active:
        lines += [
            "",
            "ACTIVE",
            f"  {'ID':>6}  {'STATE':<10}  {'ATTEMPTS':>8}  {'PROGRESS':<20}  PATH",
        ]
        for job in active:
            lines.append(
                f"  {job['id']:>6}  {job['state']:<10}  {job['attempts']:>8}  "
                f"{_progress(job):<20}  {_shown(job['path'])}"
            )
            if job["next_retry_at"]:
                lines.append(f"  {'':>6}  next retry {_clock(job['next_retry_at'])}")
            if job["reason"]:
                lines.append(f"  {'':>6}  why: {_shown(job['reason'])}")
            if job["error"]:
                lines.append(f"  {'':>6}  last error: {_shown(job['error'])}")
    if recent:
        lines += [
            "",
            "RECENT",
            f"  {'ID':>6}  {'STATE':<10}  {'HASHED ID':<12}  {'WHEN':<23}  PATH",
        ]
        for job in recent:
            lines.append(
                f"  {job['id']:>6}  {job['state']:<10}  {job['hashed_id'] or '-':<12}  "
                f"{_clock(job['updated_at']):<23}  {_shown(job['path'])}"
            )
            if job["state"] == "failed" and job["error"]:
                lines.append(f"  {'':>6}  error: {_shown(job['error'])}")
    if not view["jobs"]:
        lines += ["", "no jobs yet: drop a video in the watch folder"]
    return "\n".join(lines)


def _progress(job: dict[str, Any]) -> str:
    if job["state"] == "uploading" and job["progress"] is not None:
        return f"{job['progress'] * 100:.0f}% of {_size(job['size'])}"
    if job["size"] is not None:
        return _size(job["size"])
    return ""


def render_history(view: dict[str, Any]) -> str:
    job = view["job"]
    lines = [
        f"job {job['id']}: {job['state']}",
        f"  path:      {_shown(job['path'])}",
        f"  size:      {_size(job['size'])}",
        f"  sha256:    {job['sha256'] or '-'}",
        f"  media:     {job['hashed_id'] or '-'} (id {job['media_id'] or '-'})",
        f"  attempts:  {job['attempts']}",
    ]
    if job["reason"]:
        lines.append(f"  why:       {_shown(job['reason'])}")
    if job["error"]:
        lines.append(f"  error:     {_shown(job['error'])}")
    if job["next_retry_at"]:
        lines.append(f"  next try:  {_clock(job['next_retry_at'])}")
    lines += ["", "history:"]
    for event in view["events"]:
        arrow = f"{event['from'] or 'new'} -> {event['to']}"
        if event["from"] == event["to"]:
            arrow = f"{event['to']} (a note)"  # something happened; the state stayed
        lines.append(f"  {_clock(event['at'])}  {arrow:<26}  {_shown(event['note'] or '')}")
    return "\n".join(lines)


# --- for monitoring (Nagios / Icinga plugin conventions) -----------------------------------------

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
_WORDS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


def health(view: dict[str, Any]) -> tuple[int, str]:
    """The exit code and the one line a monitoring check prints.

    CRITICAL: the daemon is not running, or the token is refused (nothing moves).
    WARNING: uploads are held by the video limit, or jobs are failed or held.
    """
    counts = view["counts"]
    hold = view["hold"]
    daemon = view["daemon"]
    problems: list[tuple[int, str]] = []
    if not daemon["running"]:
        problems.append((CRITICAL, "daemon not running"))
    if hold and hold["kind"] == "auth":
        problems.append((CRITICAL, f"on hold: {_shown(hold['reason'])}"))
    elif hold:
        problems.append((WARNING, f"on hold: {_shown(hold['reason'])}"))
    if counts.get("failed"):
        problems.append((WARNING, f"{counts['failed']} failed"))
    if counts.get("held"):
        problems.append((WARNING, f"{counts['held']} held"))
    code = max((c for c, _ in problems), default=OK)
    if problems:
        summary = "; ".join(text for _, text in problems)
    else:
        summary = f"running since {_clock(daemon['since'])}, {counts.get('done', 0)} done"
    perfdata = " ".join(f"{state}={n}" for state, n in counts.items())
    return code, f"INGESTD {_WORDS[code]} - {summary} | {perfdata}"
