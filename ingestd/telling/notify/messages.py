"""What a notification says: the JSON body every receiver gets (SPEC, "Telling other
systems"), `{"id", "event", "at", "job", "media"}`, with `job` exactly as `status --json`
showed it when the job moved (the outbox stored it then) and `media` its hashed id, name and
page in Wistia (`<account url>/medias/<hashed_id>`; the account's url is asked once).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingestd.core.clock import iso
from ingestd.core.names import wistia_name
from ingestd.ledger import Notification


def body(
    notification: Notification, media_name: str | None, media_url: Callable[[str], str]
) -> str:
    """The body of `notification` (its job's name in Wistia, if known; how to link a media)."""
    job = json.loads(notification.job)
    media: dict[str, Any] | None = None
    if job.get("hashed_id"):
        media = {
            "hashed_id": job["hashed_id"],
            "name": media_name or wistia_name(Path(job["path"]).name),
            "url": media_url(job["hashed_id"]),
        }
    return json.dumps(
        {
            "id": notification.uid,
            "event": notification.event,
            "at": iso(notification.at),
            "job": job,
            "media": media,
        },
        ensure_ascii=False,
    )
