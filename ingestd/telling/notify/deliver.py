"""Notifications: telling other systems that a job is done, failed or held (`[notify]`).

The ledger writes one notification per receiver (the webhook, the command) in the very
transaction that moves the job (ledger._enqueue_notifications: an outbox), so a crash can lose
neither the move nor its notification. This stage delivers them, oldest first, each receiver
in a lane of its own (a thread that takes that receiver's due notifications in turn): a slow,
dripping or dead receiver holds up only its own lane, never another receiver and never an
upload. Every attempt ends within `notify.timeout_seconds`: a webhook's connection is shut at
that moment, whatever the receiver is still sending, and a command's process group killed.

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
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

from ingestd import __version__, logs
from ingestd.config.settings import NotifySettings, Settings
from ingestd.core import liveness
from ingestd.core.clock import Clock
from ingestd.core.errors import WistiaError
from ingestd.core.jobs import JobState
from ingestd.core.outcomes import Backoff
from ingestd.folder.files import wistia_name
from ingestd.ledger import Ledger, Notification, arrivals_while
from ingestd.pipeline.loop import idle_wait
from ingestd.redact import redact
from ingestd.telling.views import iso
from ingestd.wistia.client import WistiaClient

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
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.ledger_path = ledger_path
        self.client = client
        self.stop = stop
        self.clock = clock if clock is not None else Clock()
        self._lanes: dict[str, threading.Thread] = {}  # receiver -> the lane delivering now

    def run(self) -> None:
        ledger = Ledger(self.ledger_path, clock=self.clock)
        states = (JobState.DONE, JobState.FAILED, JobState.HELD)
        try:
            with arrivals_while(*states) as wake:
                while not self.stop.is_set():
                    liveness.beat()
                    wake.clear()
                    now = self.clock.now()
                    for receiver in ledger.receivers_due(now):
                        if receiver not in self._busy():
                            self._open_lane(receiver, wake)
                    soonest = ledger.soonest_notification(frozenset(self._busy()))
                    wake.wait(idle_wait(soonest, now))
        finally:
            ledger.close()

    def _busy(self) -> set[str]:
        """The receivers whose lane is delivering now."""
        self._lanes = {r: lane for r, lane in self._lanes.items() if lane.is_alive()}
        return set(self._lanes)

    def _open_lane(self, receiver: str, wake: threading.Event) -> None:
        """One receiver's due notifications, delivered in turn on a thread of their own, until
        one is not delivered (that receiver then waits for its retry); the stage is woken
        when the lane ends."""

        def deliver_due() -> None:
            try:
                ledger = Ledger(self.ledger_path, clock=self.clock)
                try:
                    due = ledger.due_notifications(self.clock.now(), BATCH, receiver)
                    for notification in due:
                        if self.stop.is_set() or not self._contained(ledger, notification):
                            break
                finally:
                    ledger.close()
            except sqlite3.Error as exc:  # the ledger's trouble: the next pass tries again
                log.warning("notifications: cannot use the ledger", error=str(exc))
            finally:
                wake.set()

        # A daemon thread: a delivery under way never holds up the daemon's stop.
        lane = threading.Thread(target=deliver_due, name=f"notify-{receiver}", daemon=True)
        self._lanes[receiver] = lane
        lane.start()

    # --- one notification -----------------------------------------------------------------

    def _contained(self, ledger: Ledger, notification: Notification) -> bool:
        """`deliver`, with a surprise kept to this notification: retried later, with backoff,
        like a refusal; the lane goes on with the next one. False when it was not
        delivered."""
        try:
            return self.deliver(ledger, notification)
        except sqlite3.Error:
            raise  # the ledger's trouble
        except Exception as exc:
            log.exception("notification could not be sent", notification=notification.uid)
            wait = RETRY.seconds(notification.attempts + 1)
            why = f"internal error: {type(exc).__name__}: {exc}"
            ledger.notification_failed(notification, redact(why), self.clock.now() + wait)
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
        if self.clock.now() - notification.queued_at > notify.max_age_hours * 3600:
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
        try:
            body = notification.body or self._fix_body(ledger, notification)
            if notification.receiver == WEBHOOK:
                self._post(notify, notification, body)
            else:
                self._run_command(notify, notification, body, ledger)
        except (DeliveryFailed, WistiaError) as exc:
            why = redact(str(exc))
            wait = RETRY.seconds(notification.attempts + 1)
            ledger.notification_failed(notification, why, self.clock.now() + wait)
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
        content = body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"ingestd/{__version__}",
            "X-Ingestd-Event": notification.event,
        }
        secret = notify.webhook_secret.get_secret_value()
        if secret:
            headers["X-Ingestd-Signature"] = signature(secret, content)
        refused = post_within(notify.webhook_url, content, headers, notify.timeout_seconds)
        if refused is not None:
            raise DeliveryFailed(refused)

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


def post_within(url: str, content: bytes, headers: dict[str, str], seconds: float) -> str | None:
    """POST `content` to `url`, all of it within `seconds`: None when a 2xx answered it,
    else why not. httpx's timeouts count per read (a receiver dripping a byte at a time
    never trips them) and it has no total one, so this is the standard library's client on
    a socket of our own: at the deadline the socket is shut down, which ends whatever read
    or write is under way, and the connection is closed. No redirect is followed."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=seconds)
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    cutoff = threading.Timer(seconds, cut)
    cutoff.daemon = True
    cutoff.start()
    try:
        connection.connect()
        if expired.is_set():  # the deadline passed while connecting: cut() found no socket
            raise TimeoutError
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=content, headers=headers)
        response = connection.getresponse()
        accepted = 200 <= response.status < 300
        answer = "" if accepted else _text(response.read(MAX_ANSWER_CHARACTERS))
        if expired.is_set():  # cut off mid-answer (http.client takes the cut for the end)
            raise TimeoutError
        if accepted:
            return None
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            return f"webhook did not answer within {seconds:g} s"
        return f"webhook: {type(exc).__name__}: {exc}"
    finally:
        cutoff.cancel()
        connection.close()
    answer = answer[:MAX_ANSWER_CHARACTERS]
    return f"webhook answered HTTP {response.status}" + (f": {answer}" if answer else "")


def _text(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return "".join(ch if ch.isprintable() else " " for ch in text)[:MAX_OUTPUT_CHARACTERS]
