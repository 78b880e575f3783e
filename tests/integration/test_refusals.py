"""One refused request is that request's trouble, not the account's (issue 21): a 403 (the plan
lacks the feature) or a 401 `unauthorized_scope` (the token lacks the permission) on a
finishing step skips that step and leaves the job `done` with a reason; on an upload it fails
that job. Neither ever sets the account-wide hold."""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import closing

from ingestd.core.jobs import JobState
from tests.conftest import DaemonProcess, wait_until, write_media

SRT = "1\n00:00:00,000 --> 00:00:02,000\nHello\n"


class HoldWatch:
    """Samples `status --json`'s hold in the background: the hold must never appear."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.seen: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait_until(self.daemon.ledger_path.exists, what="the ledger")
        uri = f"file:{self.daemon.ledger_path}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=5)) as ledger:
            for _ in range(600):  # bounded: at most a minute of sampling
                if self._stop.wait(0.1):
                    return
                for kind, reason in ledger.execute("SELECT kind, reason FROM hold"):
                    self.seen.append({"kind": kind, "reason": reason})

    def stop(self) -> list[dict]:
        self._stop.set()
        self._thread.join(5)
        return self.seen


def test_a_403_on_customizations_leaves_the_job_done_with_a_reason_and_no_hold(
    daemon_factory,
) -> None:
    daemon = daemon_factory()
    daemon.sandbox.faults.update(forbidden=("customizations",))
    daemon.sandbox.store.processing_seconds = 0.5
    styled = daemon.watch / "styled.mp4"
    (daemon.watch / "styled.json").write_text(
        json.dumps({"customizations": {"playerColor": "ff0000"}}), encoding="utf-8"
    )
    (daemon.watch / "styled.srt").write_text(SRT, encoding="utf-8")
    write_media(styled, seed=1)
    daemon.start()
    holds = HoldWatch(daemon)
    others = [daemon.watch / f"plain{n}.mp4" for n in range(3)]
    for n, clip in enumerate(others):
        write_media(clip, seed=10 + n)  # uploads go on while the step is refused

    job = daemon.wait_state(styled, JobState.DONE)
    for clip in others:
        daemon.wait_state(clip, JobState.DONE)
    assert holds.stop() == []
    assert "customizations" in job.reason and "not available on your current plan" in job.reason
    media = daemon.sandbox.store.medias[job.hashed_id]
    assert media.customizations == {} and media.captions == {"eng": SRT}  # the rest applied
    history = daemon.status_json(str(job.id))["events"]
    assert any("Wistia refused customizations" in (e["note"] or "") for e in history)
    refused = [r for r in daemon.sandbox.records if r.status == 403]
    assert len(refused) == 1  # skipped, not retried while the sidecar is unchanged

    # The plan is upgraded and the sidecar changed: the step is tried again, and applied.
    daemon.sandbox.faults.update(forbidden=())
    (daemon.watch / "styled.json").write_text(
        json.dumps({"customizations": {"playerColor": "00ff00"}}), encoding="utf-8"
    )
    wait_until(lambda: media.customizations.get("playerColor") == "00ff00", what="re-sync")
    wait_until(lambda: daemon.job_for(styled).reason is None, what="the reason cleared")
    assert daemon.job_for(styled).state == JobState.DONE


def test_a_token_without_the_captions_scope_skips_captions_only(daemon_factory) -> None:
    daemon = daemon_factory()
    daemon.sandbox.faults.update(scope_denied=("captions",))
    clip = daemon.watch / "talk.mp4"
    (daemon.watch / "talk.srt").write_text(SRT, encoding="utf-8")
    (daemon.watch / "talk.json").write_text(json.dumps({"name": "The talk"}), encoding="utf-8")
    write_media(clip, seed=2)
    daemon.start()
    job = daemon.wait_state(clip, JobState.DONE)
    assert "captions:eng" in job.reason and "unauthorized_scope" in job.reason
    assert daemon.sandbox.store.medias[job.hashed_id].name == "The talk"
    assert daemon.status_json()["hold"] is None
    assert '"hold"' not in daemon.logs() and "on hold" not in daemon.logs()


def test_a_403_on_upload_fails_that_job_with_wistias_message(daemon_factory) -> None:
    daemon = daemon_factory()
    daemon.sandbox.faults.update(forbidden=("upload",))
    clip = daemon.watch / "blocked.mp4"
    write_media(clip, seed=3)
    daemon.start()
    job = daemon.wait_state(clip, JobState.FAILED)
    assert "HTTP 403" in job.error and "not available on your current plan" in job.error
    assert job.attempts == 0 and daemon.status_json()["hold"] is None
    assert len([r for r in daemon.sandbox.records if r.is_upload]) == 1  # not retried
