"""Messages for people through Apprise, against real receivers on loopback: each URL a
receiver named by its kind and place (never by the URL), the secrets Apprise itself masks
registered, and every attempt bounded, with no pile-up of attempts a dead service leaves."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from ingestd.redact import redact
from ingestd.telling.notify import people
from tests.conftest import wait_until
from tests.receivers import HttpReceiver

SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general"
SLACK_NATIVE = "https://hooks.slack.com/services/T1JJ3T3L2/B2CCDD4XY/ZZsecretzzWebhookToken1"
MAIL = "mailtos://ops:Sup3rS3cretPw@gmail.com?to=team@example.com"
TELEGRAM = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567890"


@pytest.fixture
def json_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    yield receiver
    receiver.close()


def test_receivers_are_named_by_kind_and_place_never_by_url() -> None:
    made, unreadable = people.read([SLACK, MAIL, "slak://typo/hunter2secret", SLACK_NATIVE])
    assert [(r.label, r.service, r.number) for r in made] == [
        ("slack#1", "Slack", 1),
        ("mailto#1", "E-Mail", 2),
        ("slack#2", "Slack", 4),  # a Slack webhook pasted as it is: still Slack
    ]
    assert "T1JJ3T3L2" not in repr(made)
    assert unreadable == [people.Unreadable(3, "slak")]
    said = people.describe(unreadable[0], 4)
    assert "URL 3 of 4" in said and "slak://..." in said and "hunter2secret" not in said


@pytest.mark.parametrize(
    ("url", "secret_pieces"),
    [
        (SLACK, ["T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ"]),
        (SLACK_NATIVE, ["B2CCDD4XY", "ZZsecretzzWebhookToken1"]),
        (MAIL, ["Sup3rS3cretPw"]),
        (TELEGRAM, ["AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"]),
        ("json://user:hunter2pw@127.0.0.1:1/hook?-X-Api-Key=headersecret", ["hunter2pw"]),
    ],
)
def test_what_apprise_masks_is_registered_as_secret(url: str, secret_pieces: list[str]) -> None:
    secrets = people.secrets(url)
    line = f"could not send to {url}; token {' '.join(secret_pieces)}"
    cleaned = redact(line, secrets)
    for piece in secret_pieces:
        assert piece not in cleaned
    assert "headersecret" not in redact(url, secrets)


def test_a_message_reaches_a_json_receiver_and_a_refusal_says_why(
    json_receiver: HttpReceiver,
) -> None:
    (receiver,), _ = people.read([json_receiver.json_url()])
    messenger = people.Messenger()
    assert messenger.send(receiver, "1 video ready", "launch.mp4 is ready", 5) is None
    (body,) = json_receiver.messages
    assert body["title"] == "1 video ready" and body["message"] == "launch.mp4 is ready"
    json_receiver.status = 500
    refused = messenger.send(receiver, "t", "b", 5)
    assert refused is not None and refused.startswith("JSON: ") and "500" in refused


class Dripping:
    """A service that takes the request and answers a header byte every 0.2 s for as long as
    it is let: each read is quick (no socket timeout of Apprise's ever trips), the answer
    never ends. Only the attempt's deadline ends the wait."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
                while not self.done.wait(0.2):
                    conn.sendall(b"a")
            except OSError:
                pass

    def close(self) -> None:
        self.done.set()
        self.server.close()


def test_an_attempt_ends_at_its_deadline_and_a_hung_one_is_not_joined_by_another() -> None:
    """The attempt is refused after its seconds, and the next attempt, while that one still
    hangs, is refused at once without a thread of its own; once the service lets go, the URL
    gets attempts again."""
    drip = Dripping()
    try:
        (receiver,), _ = people.read([f"json://127.0.0.1:{drip.port}/hook"])
        messenger = people.Messenger()
        began = time.monotonic()
        refused = messenger.send(receiver, "t", "b", 1.0)
        took = time.monotonic() - began
        assert refused == "JSON did not answer within 1 s"
        assert 0.9 < took < 3.0
        threads = threading.active_count()
        again = messenger.send(receiver, "t", "b", 1.0)
        assert again is not None and "the last attempt has not ended" in again
        assert threading.active_count() == threads  # no second attempt piled up
    finally:
        drip.close()  # the service lets go: the abandoned attempt ends

    def still_hung() -> bool:
        answer = messenger.send(receiver, "t", "b", 0.5)
        return answer is not None and "the last attempt has not ended" in answer

    wait_until(
        lambda: not still_hung(), timeout=10, interval=0.2, what="the abandoned attempt ended"
    )


def test_every_piece_of_a_url_apprise_cannot_read_is_a_secret() -> None:
    """Apprise cannot say which pieces are secret in a URL it cannot read (and quotes such a
    URL in its own log line): every piece long enough is taken for one."""
    url = "slack://T1JJ3T3L2/A1BRTD4JD"  # the token is missing
    assert people.read([url])[0] == []
    assert set(people.secrets(url)) == {"T1JJ3T3L2", "A1BRTD4JD"}
