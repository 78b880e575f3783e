"""Notifications: telling other systems that a job is done, failed or held (`[notify]`).

The ledger writes one notification per receiver (the webhook, the command) in the very
transaction that moves the job (ledger._enqueue_notifications: an outbox), so a crash can lose
neither the move nor its notification. This stage delivers them, oldest first, on its own
thread: a slow or dead receiver holds up only other notifications, never an upload.

The body is fixed at the first attempt and stored, so every retry (and the other receiver)
gets exactly the same bytes and the same `id`: a receiver drops repeats by `id`. A failed
attempt is retried with backoff (5 s, doubling, at most 10 minutes) until a 2xx answer or
exit status 0, for `notify.max_age_hours`; then the notification is dropped with a log line.

Neither receiver ever gets the Wistia token: the webhook is its own HTTP client with no auth,
and the command runs without a shell, in an environment without ingestd's own variables.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from ingestd import __version__, liveness, logs
from ingestd.config import NotifySettings, Settings
from ingestd.errors import WistiaError
from ingestd.files import wistia_name
from ingestd.jobs import JobState
from ingestd.ledger import Ledger, Notification, arrivals_while
from ingestd.outcomes import Backoff
from ingestd.redact import redact
from ingestd.stageloop import idle_wait
from ingestd.views import iso
from ingestd.wistia import WistiaClient

log = logs.get("ingestd.notifications")

WEBHOOK, COMMAND = "webhook", "command"
RETRY = Backoff(first=5.0, cap=600.0, jitter=1.0)
BATCH = 20
# What a command may print that is logged; what a webhook answers that is quoted.
MAX_OUTPUT_CHARACTERS = 2000
MAX_ANSWER_CHARACTERS = 200
# The variables ingestd's own process may carry secrets in: never passed to the command.
_PRIVATE_VARIABLES = ("INGESTD_", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_")


class DeliveryFailed(Exception):
    """One attempt failed; the text says why (it becomes the notification's last error)."""


def receivers(notify: NotifySettings) -> list[str]:
    return [name for name, on in ((WEBHOOK, notify.webhook_url), (COMMAND, notify.command)) if on]


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    def __init__(
        self,
        settings: Settings,
        ledger_path: Path,
        client: WistiaClient,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ledger_path = ledger_path
        self.client = client
        self.stop = stop
        self.clock = clock
        self._http = httpx.Client(
            headers={"User-Agent": f"ingestd/{__version__}"}, follow_redirects=False
        )
        self._webhook: threading.Thread | None = None  # the last POST's thread

    def run(self) -> None:
        ledger = Ledger(self.ledger_path)
        states = (JobState.DONE, JobState.FAILED, JobState.HELD)
        try:
            with arrivals_while(*states) as wake:
                while not self.stop.is_set():
                    liveness.beat()
                    wake.clear()
                    now = self.clock()
                    due = ledger.due_notifications(now, BATCH)
                    failing: set[str] = set()  # a receiver that failed waits for the next pass
                    for notification in due:
                        if self.stop.is_set():
                            break
                        if notification.receiver in failing:
                            continue
                        if not self._contained(ledger, notification):
                            failing.add(notification.receiver)
                    if not due:
                        wake.wait(idle_wait(ledger.soonest_notification(), now))
        finally:
            ledger.close()
            self._http.close()

    # --- one notification -----------------------------------------------------------------

    def _contained(self, ledger: Ledger, notification: Notification) -> bool:
        """`deliver`, with a surprise kept to this notification: retried later, with backoff,
        like a refusal; the stage goes on with the next one. False when it was not
        delivered."""
        try:
            return self.deliver(ledger, notification)
        except sqlite3.Error:
            raise  # the ledger's trouble: the supervisor restarts the stage
        except Exception as exc:
            log.exception("notification could not be sent", notification=notification.uid)
            wait = RETRY.seconds(notification.attempts + 1)
            why = f"internal error: {type(exc).__name__}: {exc}"
            ledger.notification_failed(notification, redact(why), self.clock() + wait)
            return False

    def deliver(self, ledger: Ledger, notification: Notification) -> bool:
        """One attempt; True when it was delivered (or dropped for good)."""
        notify = self.settings.notify
        said = log.bind(
            notification=notification.uid,
            receiver=notification.receiver,
            state=notification.event,
            job_id=notification.job_id,
        )
        if self.clock() - notification.at > notify.max_age_hours * 3600:
            ledger.forget_notification(notification)
            said.error(
                "dropped a notification never delivered",
                attempts=notification.attempts,
                max_age_hours=notify.max_age_hours,
            )
            return True
        if notification.receiver not in receivers(notify):
            ledger.forget_notification(notification)
            said.warning("dropped a notification: its receiver is no longer configured")
            return True
        liveness.beat(notify.timeout_seconds * 2 + 30)  # one attempt may take this long
        try:
            body = notification.body or self._fix_body(ledger, notification)
            if notification.receiver == WEBHOOK:
                self._post(notify, notification, body)
            else:
                self._run_command(notify, notification, body, ledger)
        except (DeliveryFailed, WistiaError) as exc:
            why = redact(str(exc))
            wait = RETRY.seconds(notification.attempts + 1)
            ledger.notification_failed(notification, why, self.clock() + wait)
            said.warning(
                "notification not delivered; retried later",
                error=why,
                retry_in_seconds=round(wait, 1),
            )
            return False
        ledger.forget_notification(notification)
        said.info("notification delivered")
        return True

    def _fix_body(self, ledger: Ledger, notification: Notification) -> str:
        """The body, built once (the media's page needs the account's url, asked once) and
        stored before it is first sent."""
        job = json.loads(notification.job)
        media = None
        if job.get("hashed_id"):
            current = ledger.get(notification.job_id)
            name = current.media_name if current is not None else None
            media = {
                "hashed_id": job["hashed_id"],
                "name": name or wistia_name(Path(job["path"]).name),
                "url": self.client.media_url(job["hashed_id"]),
            }
        body = json.dumps(
            {
                "id": notification.uid,
                "event": notification.event,
                "at": iso(notification.at),
                "job": job,
                "media": media,
            },
            ensure_ascii=False,
        )
        ledger.fix_notification_body(notification, body)
        # Another receiver's attempt may have fixed it first: send what the ledger has.
        fixed = ledger.notification_body(notification)
        return fixed if fixed is not None else body

    def _post(self, notify: NotifySettings, notification: Notification, body: str) -> None:
        """POST, waiting at most `timeout_seconds` in all: httpx's timeouts apply per read, so
        a receiver dripping a byte at a time is cut off here. The abandoned request ends on
        its own (its reads time out); until it has, the webhook is not tried again."""
        if self._webhook is not None and self._webhook.is_alive():
            raise DeliveryFailed("the webhook's previous answer has not ended yet")
        content = body.encode()
        headers = {"Content-Type": "application/json", "X-Ingestd-Event": notification.event}
        secret = notify.webhook_secret.get_secret_value()
        if secret:
            headers["X-Ingestd-Signature"] = signature(secret, content)
        outcome: list[str | None] = []

        def send() -> None:
            outcome.append(self._send(notify, content, headers))

        self._webhook = threading.Thread(target=send, name="webhook", daemon=True)
        self._webhook.start()
        self._webhook.join(notify.timeout_seconds)
        if not outcome:
            raise DeliveryFailed(f"webhook did not answer within {notify.timeout_seconds:g} s")
        if outcome[0] is not None:
            raise DeliveryFailed(outcome[0])

    def _send(self, notify: NotifySettings, content: bytes, headers: dict[str, str]) -> str | None:
        """One POST; None when a 2xx answered it, else why not."""
        try:
            with self._http.stream(
                "POST",
                notify.webhook_url,
                content=content,
                headers=headers,
                timeout=notify.timeout_seconds,
            ) as response:
                if 200 <= response.status_code < 300:
                    return None
                answer = _first_characters(response)
        except httpx.HTTPError as exc:
            return f"webhook: {type(exc).__name__}: {exc}"
        return f"webhook answered HTTP {response.status_code}" + (f": {answer}" if answer else "")

    def _run_command(
        self, notify: NotifySettings, notification: Notification, body: str, ledger: Ledger
    ) -> None:
        """Run the command, without a shell, in its own process group: stdin the body, output
        to a temporary file (what it prints is logged, bounded), at most `timeout_seconds`;
        then its whole group is killed, so nothing it left running lingers or holds a pipe."""
        job = json.loads(body)["job"]
        stored = ledger.get(notification.job_id)
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_PRIVATE_VARIABLES)}
        env.update(
            INGESTD_EVENT=notification.event,
            INGESTD_JOB_ID=str(notification.job_id),
            # The exact name (a name that is not UTF-8 goes as its own bytes), not its display.
            INGESTD_PATH=stored.path if stored is not None else job.get("path") or "",
            INGESTD_HASHED_ID=job.get("hashed_id") or "",
        )
        with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as stdin:
            stdin.write(body.encode())
            stdin.seek(0)
            try:
                process = subprocess.Popen(
                    notify.command,
                    stdin=stdin,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=env,
                    close_fds=True,
                    start_new_session=True,  # its own group: killed whole; no Ctrl-C of ours
                )
            except OSError as exc:
                raise DeliveryFailed(f"command could not start: {exc.strerror or exc}") from None
            try:
                status = process.wait(timeout=notify.timeout_seconds)
            except subprocess.TimeoutExpired:
                status = None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever it left behind
            process.wait()
            output.seek(0)
            printed = _text(output.read(MAX_OUTPUT_CHARACTERS * 4))
        if printed:
            log.info("notification command output", output=printed)
        if status is None:
            raise DeliveryFailed(f"command did not finish within {notify.timeout_seconds:g} s")
        if status != 0:
            raise DeliveryFailed(f"command exited with status {status}")


def _first_characters(response: httpx.Response) -> str:
    """The start of a refusal's body, for the log: read bounded, never the whole answer."""
    taken = b""
    for chunk in response.iter_bytes():
        taken += chunk
        if len(taken) >= MAX_ANSWER_CHARACTERS:
            break
    return _text(taken)[:MAX_ANSWER_CHARACTERS]


def _text(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return "".join(ch if ch.isprintable() else " " for ch in text)[:MAX_OUTPUT_CHARACTERS]
