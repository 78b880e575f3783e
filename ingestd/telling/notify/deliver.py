"""The notifications stage: delivering the outbox, each receiver in a lane of its own.

The ledger writes one notification per receiver (the webhook, the command) in the very
transaction that moves the job (ledger.outbox), so a crash can lose neither the move nor its
notification. This stage delivers them, oldest first, each receiver in a lane of its own (a
thread that takes that receiver's due notifications in turn): a slow, dripping or dead
receiver holds up only its own lane, never another receiver and never an upload. Every attempt
ends within `notify.timeout_seconds` (webhook.py, command.py).

The body is fixed at the first attempt and stored (messages.py), so every retry (and the other
receiver) gets exactly the same bytes and the same `id`: a receiver drops repeats by `id`. A
failed attempt is retried with backoff (5 s, doubling, at most 10 minutes) until a 2xx answer
or exit status 0, for `notify.max_age_hours` (measured on the steady clock); then the
notification is dropped with a log line.
"""

from __future__ import annotations

import json
import sqlite3
import threading

from ingestd import logs
from ingestd.config.settings import NotifySettings, Settings
from ingestd.core.backoff import Backoff
from ingestd.core.errors import WistiaError
from ingestd.core.jobs import JobState
from ingestd.ledger import Ledger, Ledgers, Notification, Outbox
from ingestd.pipeline.loop import run_stage
from ingestd.telling.notify import command, messages, webhook
from ingestd.telling.views import job_view_text
from ingestd.wistia.client import WistiaClient

log = logs.get("ingestd.notifications")

WEBHOOK, COMMAND = "webhook", "command"
RETRY = Backoff(first=5.0, cap=600.0, jitter=1.0)
BATCH = 20


def receivers(notify: NotifySettings) -> list[str]:
    return [name for name, on in ((WEBHOOK, notify.webhook_url), (COMMAND, notify.command)) if on]


def outbox_for(notify: NotifySettings) -> Outbox:
    """What the ledger notifies, and to whom, by `[notify]`; jobs shown as `status --json`."""
    return Outbox(frozenset(notify.events), tuple(receivers(notify)), job_view_text)


class Notifier:
    def __init__(
        self,
        settings: Settings,
        ledgers: Ledgers,
        client: WistiaClient,
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.ledgers = ledgers
        self.client = client
        self.stop = stop
        self.clock = ledgers.clock
        self._lanes: dict[str, threading.Thread] = {}  # receiver -> the lane delivering now

    def reload(self, fresh: Settings) -> None:
        self.settings = fresh

    def run(self) -> None:
        states = (JobState.DONE, JobState.FAILED, JobState.HELD)
        with (
            self.ledgers.opened() as ledger,
            self.ledgers.wakeups.arrivals_while(*states) as wake,
        ):
            run_stage(self.stop, wake, self.clock, lambda now: self._pass(ledger, now, wake))

    def _pass(self, ledger: Ledger, now: float, wake: threading.Event) -> float | None:
        """A lane for each receiver with notifications due and none delivering; the stage
        looks again when a lane ends (it wakes it) or the next notification is due."""
        for receiver in ledger.outbox.receivers_due(now):
            if receiver not in self._busy():
                self._open_lane(receiver, wake)
        soonest = ledger.outbox.soonest(frozenset(self._busy()))
        return None if soonest is None else max(soonest, now + 0.001)

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
                with self.ledgers.opened() as ledger:
                    due = ledger.outbox.due(self.clock.now(), BATCH, receiver)
                    for notification in due:
                        if self.stop.is_set() or not self._contained(ledger, notification):
                            break
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
            ledger.outbox.failed(notification, logs.redact(why), self.clock.now() + wait)
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
            ledger.outbox.forget(notification)
            said.error(
                "dropped a notification never delivered",
                attempts=notification.attempts,
                max_age_hours=notify.max_age_hours,
            )
            return True
        if notification.receiver not in receivers(notify):
            ledger.outbox.forget(notification)
            said.warning("dropped a notification: its receiver is no longer configured")
            return True
        try:
            refused = self._attempt(ledger, notify, notification)
        except WistiaError as exc:  # the account's url, for the media's link, not known yet
            refused = str(exc)
        if refused is not None:
            why = logs.redact(refused)
            wait = RETRY.seconds(notification.attempts + 1)
            ledger.outbox.failed(notification, why, self.clock.now() + wait)
            said.warning(
                "notification not delivered; retried later",
                error=why,
                retry_in_seconds=round(wait, 1),
            )
            return False
        ledger.outbox.forget(notification)
        said.info("notification delivered")
        return True

    def _attempt(
        self, ledger: Ledger, notify: NotifySettings, notification: Notification
    ) -> str | None:
        """One attempt at one receiver: None when it took the notification, else why not."""
        body = notification.body or self._fix_body(ledger, notification)
        if notification.receiver == WEBHOOK:
            secret = notify.webhook_secret.get_secret_value()
            return webhook.post(
                notify.webhook_url, body, notification.event, secret, notify.timeout_seconds
            )
        stored = ledger.get(notification.job_id)  # the exact name (bytes), not its display
        path = stored.path if stored is not None else json.loads(body)["job"].get("path", "")
        return command.run(notify, notification, body, path)

    def _fix_body(self, ledger: Ledger, notification: Notification) -> str:
        """The body, built once (the media's page needs the account's url, asked once) and
        stored before it is first sent; another receiver's attempt may have fixed it first:
        then that one is sent."""
        current = ledger.get(notification.job_id)
        name = current.media_name if current is not None else None
        built = messages.body(notification, name, self.client.media_url)
        ledger.outbox.fix_body(notification, built)
        fixed = ledger.outbox.body(notification)
        return fixed if fixed is not None else built
