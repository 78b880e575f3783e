"""The notifications stage: delivering the outbox, each receiver in a lane of its own.

The ledger writes one notification per receiver (the webhook, the command, each URL of
`notify.urls`) in the very transaction that moves the job (ledger.outbox), so a crash can lose
neither the move nor its notification. This stage delivers them, oldest first, each receiver
in a lane of its own (a thread that takes that receiver's due notifications in turn): a slow,
dripping or dead receiver holds up only its own lane, never another receiver and never an
upload. Every attempt ends within `notify.timeout_seconds` (webhook.py, command.py,
people.py).

For programs (the webhook, the command) the body is fixed at the first attempt and stored
(messages.py), so every retry (and the other receiver) gets exactly the same bytes and the
same `id`: a receiver drops repeats by `id`.

For people (`notify.urls`, through Apprise: people.py) each event is worded (words.py). With
`notify.digest_seconds`, a URL's notifications are due when the window that opened with the
first of them closes (the outbox sets that), and its lane then takes every notification
waiting for that URL as one message ("3 videos ready: ..."), forgotten together once
delivered, retried together when refused; without, each goes as a message of its own.

A refused attempt is retried with backoff (5 s, doubling, at most 10 minutes) until a 2xx
answer, exit status 0 or the service's yes, for `notify.max_age_hours` (measured on the steady
clock); then the notification is dropped with a log line.

A lane that ends in an error of its own (the ledger cannot be opened or written, a bug) rests
its receiver on the same backoff (`Rests`): the stage opens no lane for it before then, and
the error is logged once per rest. Without that the stage would open a new lane at once,
again and again: a notification the webhook took whose `forget` failed would be posted in a
tight loop.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence

from ingestd import logs
from ingestd.config.settings import NotifySettings, Settings
from ingestd.core.backoff import Backoff
from ingestd.core.errors import ConfigError, LedgerError, WistiaError
from ingestd.core.jobs import JobState
from ingestd.ledger import Ledger, Ledgers, Notification, Outbox
from ingestd.pipeline.loop import run_stage
from ingestd.telling.notify import command, heartbeat, messages, people, webhook, within, words
from ingestd.telling.views import job_view_text
from ingestd.wistia.client import WistiaClient

log = logs.get("ingestd.notifications")

WEBHOOK, COMMAND = "webhook", "command"
RETRY = Backoff(first=5.0, cap=600.0, jitter=1.0)
BATCH = 20
# The most events one message tells; more waiting go in the next message, at once.
DIGEST_MOST = 50
# A webhook secret shorter than this is not registered: it would blank common words.
SHORTEST_WEBHOOK_SECRET = 16


def for_people(notify: NotifySettings) -> list[people.Receiver]:
    """The receivers `notify.urls` make (Apprise is imported only when there are URLs); a URL
    Apprise cannot send to is a config error that names it by its place, never shows it."""
    if not notify.urls:
        return []
    urls = [url.get_secret_value() for url in notify.urls]
    made, unreadable = people.read(urls)
    if unreadable:
        raise ConfigError(
            people.describe(unreadable[0], len(urls)),
            "run `ingestd check`, and see https://appriseit.com/services/ for each URL's form",
        )
    return made


def receivers(notify: NotifySettings) -> list[str]:
    named = [name for name, on in ((WEBHOOK, notify.webhook_url), (COMMAND, notify.command)) if on]
    return named + [person.label for person in for_people(notify)]


def outbox_for(notify: NotifySettings) -> Outbox:
    """What the ledger notifies, and to whom, by `[notify]`; jobs shown as `status --json`;
    messages for people in digests when `digest_seconds` asks for them."""
    digested = frozenset(p.label for p in for_people(notify)) if notify.digest_seconds else None
    return Outbox(
        frozenset(notify.events),
        tuple(receivers(notify)),
        job_view_text,
        digested=digested or frozenset(),
        digest_seconds=notify.digest_seconds,
    )


def secrets(notify: NotifySettings) -> list[str]:
    """What no output may show of `[notify]`: the webhook's secret and the password in its
    URL (with the credentials sent from it), the secrets in each URL of `notify.urls`, and the
    heartbeat URL's key and password."""
    found = within.secrets(notify.webhook_url)
    secret = notify.webhook_secret.get_secret_value()
    if len(secret) >= SHORTEST_WEBHOOK_SECRET:
        found.append(secret)
    for url in notify.urls:
        found += people.secrets(url.get_secret_value())
    return found + heartbeat.secrets(notify.heartbeat_url.get_secret_value())


class Rests:
    """Receivers whose last lane ended in an error of its own, each resting until a time on
    the steady clock: the n-th such error in a row rests it `law.seconds(n)`, a lane that
    ends well clears it. Lanes write it, the stage reads it."""

    def __init__(self, law: Backoff) -> None:
        self.law = law
        self._lock = threading.Lock()
        self._errors: dict[str, int] = {}  # receiver -> its lanes' errors in a row
        self._until: dict[str, float] = {}  # receiver -> no lane before this

    def failed(self, receiver: str, now: float) -> float:
        """A lane of `receiver` ended in an error: how long it rests."""
        with self._lock:
            errors = self._errors.get(receiver, 0) + 1
            self._errors[receiver] = errors
            wait = self.law.seconds(errors)
            self._until[receiver] = now + wait
            return wait

    def ended(self, receiver: str) -> None:
        """A lane of `receiver` ended well."""
        with self._lock:
            self._errors.pop(receiver, None)
            self._until.pop(receiver, None)

    def resting(self, now: float) -> dict[str, float]:
        """The receivers resting at `now`, each with when its rest ends."""
        with self._lock:
            return {r: until for r, until in self._until.items() if until > now}


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
        self.rests = Rests(RETRY)
        self.messenger = people.Messenger()
        self._configure(settings)

    def reload(self, fresh: Settings) -> None:
        self._configure(fresh)

    def _configure(self, settings: Settings) -> None:
        self.settings = settings
        self.people = {person.label: person for person in for_people(settings.notify)}
        self.configured = frozenset(receivers(settings.notify))

    def run(self) -> None:
        states = (JobState.DONE, JobState.FAILED, JobState.HELD)
        with (
            self.ledgers.opened() as ledger,
            self.ledgers.wakeups.arrivals_while(*states) as wake,
        ):
            run_stage(self.stop, wake, self.clock, lambda now: self._pass(ledger, now, wake))

    def _pass(self, ledger: Ledger, now: float, wake: threading.Event) -> float | None:
        """A lane for each receiver with notifications due, none delivering and no rest
        after an error; the stage looks again when a lane ends (it wakes it), the next
        notification is due or a rest ends."""
        resting = self.rests.resting(now)
        for receiver in ledger.outbox.receivers_due(now):
            if receiver not in self._busy() and receiver not in resting:
                self._open_lane(receiver, wake)
        soonest = ledger.outbox.soonest(frozenset(self._busy()) | resting.keys())
        looks = [t for t in (soonest, *resting.values()) if t is not None]
        return max(min(looks), now + 0.001) if looks else None

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
                self._deliver_due(receiver)
            except Exception as exc:  # the lane's own: its receiver rests, the stage goes on
                self._rest(receiver, exc)
            else:
                self.rests.ended(receiver)
            finally:
                wake.set()

        # A daemon thread: a delivery under way never holds up the daemon's stop.
        lane = threading.Thread(target=deliver_due, name=f"notify-{receiver}", daemon=True)
        self._lanes[receiver] = lane
        lane.start()

    def _deliver_due(self, receiver: str) -> None:
        with self.ledgers.opened() as ledger:
            person = self.people.get(receiver)
            if person is not None:
                self._tell(ledger, person)
                return
            due = ledger.outbox.due(self.clock.now(), BATCH, receiver)
            for notification in due:
                if self.stop.is_set() or not self._contained(ledger, notification):
                    break

    def _rest(self, receiver: str, error: Exception) -> None:
        """A lane ended in `error`: its receiver rests on the backoff, said once per rest
        (a traceback only for what is not the ledger's trouble: a bug)."""
        wait = self.rests.failed(receiver, self.clock.now())
        said = log.bind(receiver=receiver, error=str(error), retry_in_seconds=round(wait, 1))
        if isinstance(error, sqlite3.Error | LedgerError):
            said.warning("notifications: cannot use the ledger; this receiver waits")
        else:
            said.error(
                "notifications: a lane ended in an error; this receiver waits", exc_info=error
            )

    # --- one notification -----------------------------------------------------------------

    def _contained(self, ledger: Ledger, notification: Notification) -> bool:
        """`deliver`, with a surprise kept to this notification: retried later, with backoff,
        like a refusal; the lane goes on with the next one. False when it was not
        delivered."""
        try:
            return self.deliver(ledger, notification)
        except (sqlite3.Error, LedgerError):
            raise  # the ledger's trouble: the lane's (Rests), not this notification's
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
        if self._dropped_as_too_old(ledger, notification):
            return True
        if notification.receiver not in self.configured:
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

    def _dropped_as_too_old(self, ledger: Ledger, notification: Notification) -> bool:
        """A notification older than `notify.max_age_hours` is dropped, with a log line."""
        notify = self.settings.notify
        if self.clock.now() - notification.queued_at <= notify.max_age_hours * 3600:
            return False
        ledger.outbox.forget(notification)
        log.error(
            "dropped a notification never delivered",
            notification=notification.uid,
            receiver=notification.receiver,
            state=notification.event,
            job_id=notification.job_id,
            attempts=notification.attempts,
            max_age_hours=notify.max_age_hours,
        )
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

    # --- messages for people --------------------------------------------------------------

    def _tell(self, ledger: Ledger, person: people.Receiver) -> None:
        """A URL's lane: with digests, every notification waiting for it as one message (its
        lane opens once the first is due); without, each due one as a message of its own."""
        if self.settings.notify.digest_seconds:
            messages_due = [ledger.outbox.waiting_for(person.label, DIGEST_MOST)]
        else:
            due = ledger.outbox.due(self.clock.now(), BATCH, person.label)
            messages_due = [[notification] for notification in due]
        for told in messages_due:
            if self.stop.is_set() or not self._contained_message(ledger, person, told):
                break

    def _contained_message(
        self, ledger: Ledger, person: people.Receiver, told: Sequence[Notification]
    ) -> bool:
        """`tell`, with a surprise kept to this message: retried later, like a refusal."""
        try:
            return self.tell(ledger, person, told)
        except (sqlite3.Error, LedgerError):
            raise  # the ledger's trouble: the lane's (Rests), not this notification's
        except Exception as exc:
            log.exception("message could not be sent", receiver=person.label)
            wait = RETRY.seconds(max(n.attempts for n in told) + 1)
            why = f"internal error: {type(exc).__name__}: {exc}"
            ledger.outbox.failed_all(told, logs.redact(why), self.clock.now() + wait)
            return False

    def tell(self, ledger: Ledger, person: people.Receiver, told: Sequence[Notification]) -> bool:
        """One message telling `told` to `person`; True when it was delivered (or there was
        nothing left to tell). Those too old are dropped first, each with its log line."""
        fresh = [n for n in told if not self._dropped_as_too_old(ledger, n)]
        if not fresh:
            return True
        notify = self.settings.notify
        try:
            title, body = words.message([words.told(n, self.client.media_url) for n in fresh])
            # What a person reads goes to a third party: nothing secret in it, whatever a
            # name or a reason held.
            refused = self.messenger.send(
                person, logs.redact(title), logs.redact(body), notify.timeout_seconds
            )
        except WistiaError as exc:  # the account's url, for the media's link, not known yet
            refused = str(exc)
        said = log.bind(
            receiver=person.label,
            notifications=len(fresh),
            job_ids=sorted({n.job_id for n in fresh}),
        )
        if refused is not None:
            why = logs.redact(refused)
            wait = RETRY.seconds(max(n.attempts for n in fresh) + 1)
            ledger.outbox.failed_all(fresh, why, self.clock.now() + wait)
            said.warning(
                "message not delivered; retried later", error=why, retry_in_seconds=round(wait, 1)
            )
            return False
        ledger.outbox.forget_all(fresh)
        said.info("message delivered")
        return True
