"""Wait for processing: poll each uploaded media until Wistia says `ready` or `failed`.

One thread. Each job is polled at a growing interval (from `ingest.poll_min_seconds`, times
1.5, up to `ingest.poll_max_seconds`), so a long processing queue costs few requests.
`ready` -> finishing; `failed` in Wistia, a 404 (deleted in Wistia) or processing longer
than `ingest.processing_timeout_seconds` -> failed. Polling goes on under a video-limit hold;
under an auth hold nothing is sent.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ingestd import logs
from ingestd.config import Settings
from ingestd.errors import AuthError, NotFoundError, PermanentError, TransientError
from ingestd.jobs import Job, JobState
from ingestd.ledger import Ledger
from ingestd.stageloop import work_through_jobs
from ingestd.wistia import WistiaClient

log = logs.get("ingestd.poller")

GROWTH = 1.5


class Poller:
    def __init__(
        self, settings: Settings, ledger_path: Path, client: WistiaClient, stop: threading.Event
    ) -> None:
        self.settings = settings
        self.ledger_path = ledger_path
        self.client = client
        self.stop = stop

    def run(self) -> None:
        work_through_jobs(self.ledger_path, self.stop, Ledger.due_polls, self.poll)

    def poll(self, ledger: Ledger, job: Job) -> None:
        assert job.hashed_id is not None
        try:
            media = self.client.media(job.hashed_id)
        except NotFoundError:
            log.error("media was deleted in Wistia")
            message = "the media was deleted in Wistia (404) before processing finished"
            ledger.move(job, JobState.FAILED, message, error=message)
            return
        except AuthError as exc:
            ledger.set_hold(exc.kind, str(exc), self.settings.ingest.probe_min_seconds)
            log.error("Wistia refused the token; everything waits", hint=exc.hint)
            return
        except TransientError as exc:
            log.warning("could not poll the media; trying later", error=exc.reason)
            self._again(ledger, job)
            return
        except PermanentError as exc:
            ledger.move(job, JobState.FAILED, exc.reason, error=exc.reason)
            return
        if media.state == "ready":
            log.info("processed by Wistia")
            ledger.move(job, JobState.FINISHING, "ready in Wistia", next_poll_at=None)
        elif media.state == "failed":
            message = "Wistia could not process the media (status failed)"
            log.error(message)
            ledger.move(job, JobState.FAILED, message, error=message)
        elif time.time() - (job.processing_since or 0) > (
            self.settings.ingest.processing_timeout_seconds
        ):
            limit = self.settings.ingest.processing_timeout_seconds
            message = f"still {media.state} in Wistia after {limit:.0f} s; giving up"
            log.error("processing took too long", limit_seconds=limit)
            ledger.move(job, JobState.FAILED, message, error=message)
        else:
            self._again(ledger, job, status=media.state)

    def _again(self, ledger: Ledger, job: Job, status: str | None = None) -> None:
        ingest = self.settings.ingest
        interval = min(
            (job.poll_interval or ingest.poll_min_seconds) * GROWTH, ingest.poll_max_seconds
        )
        reason = f"Wistia is processing it ({status})" if status else job.reason
        ledger.update(
            job, next_poll_at=time.time() + interval, poll_interval=interval, reason=reason
        )
