"""Telling other systems: notifications (webhook and command) from the outbox, receipts,
/metrics, `status --watch` and the completion scripts, against the real daemon."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingestd.core.jobs import JobState
from tests.conftest import TOKEN, DaemonProcess, wait_until, write_media

SECRET = "receiver-shared-secret"


class Receiver:
    """A webhook receiver on loopback: records every POST; answers `status` (or hangs)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.hang = threading.Event()  # set: every request waits until released
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.hang.is_set():
                    receiver.release.wait(30)
                receiver.received.append({"headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, event: str | None = None) -> list[dict[str, Any]]:
        parsed = [json.loads(r["body"]) for r in self.received]
        return [b for b in parsed if event is None or b["event"] == event]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Any:
    hook = Receiver()
    yield hook
    hook.close()


def _all_delivered(daemon: DaemonProcess, timeout: float = 20, what: str = "delivered") -> None:
    wait_until(
        lambda: daemon.status_json()["notifications"]["waiting"] == 0, timeout=timeout, what=what
    )


def _notified(daemon_factory: Any, receiver: Receiver, **notify: Any) -> DaemonProcess:
    settings = {"webhook_url": receiver.url, "webhook_secret": SECRET, **notify}
    return daemon_factory(notify=settings).start()


def test_done_and_failed_are_posted_with_the_documented_body_and_a_valid_signature(
    daemon_factory: Any, receiver: Receiver
) -> None:
    daemon = _notified(daemon_factory, receiver)
    clip = daemon.watch / "launch.mp4"
    write_media(clip, seed=1)
    (daemon.watch / "empty.mp4").write_bytes(b"")
    done = daemon.wait_state(clip, JobState.DONE, timeout=30)
    failed = daemon.wait_state(daemon.watch / "empty.mp4", JobState.FAILED, timeout=30)
    wait_until(lambda: len(receiver.received) >= 2, what="two notifications\n" + daemon.logs())

    for request in receiver.received:
        headers, raw = request["headers"], request["body"]
        expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert headers["X-Ingestd-Signature"] == f"sha256={expected}"
        body = json.loads(raw)
        assert headers["X-Ingestd-Event"] == body["event"]
        assert headers["Content-Type"] == "application/json"
        assert set(body) == {"id", "event", "at", "job", "media"}
        assert TOKEN not in raw.decode()
    (on_done,) = receiver.bodies("done")
    assert on_done["job"]["id"] == done.id and on_done["job"]["state"] == "done"
    assert on_done["job"]["path"] == str(clip)
    assert on_done["media"] == {
        "hashed_id": done.hashed_id,
        "name": "launch.mp4",
        "url": f"https://sandbox.wistia.test/medias/{done.hashed_id}",
    }
    (on_failed,) = receiver.bodies("failed")
    assert on_failed["job"]["id"] == failed.id and on_failed["media"] is None
    assert on_failed["job"]["error"] == "empty file (0 bytes)"
    account_asks = [r for r in daemon.sandbox.records if r.path == "/v1/account.json"]
    assert len(account_asks) == 1  # the account's url, asked once
    assert daemon.status_json()["notifications"] == {
        "waiting": 0,
        "last_error": None,
        "receivers": {},
    }


def test_a_receiver_that_fails_for_a_while_gets_the_same_body_later(
    daemon_factory: Any, receiver: Receiver
) -> None:
    receiver.status = 500
    daemon = _notified(daemon_factory, receiver)
    clip = daemon.watch / "retry.mp4"
    write_media(clip, seed=2)
    daemon.wait_state(clip, JobState.DONE, timeout=30)
    wait_until(lambda: len(receiver.received) >= 2, timeout=30, what="two refused attempts")
    waiting = daemon.status_json()["notifications"]
    assert waiting["waiting"] == 1 and "HTTP 500" in waiting["last_error"]
    assert "1 notification(s) waiting" in daemon.cli("status").stdout
    receiver.status = 204
    _all_delivered(daemon, 30, "the notification delivered")
    bodies = {r["body"] for r in receiver.received}
    assert len(bodies) == 1  # every attempt: the very same bytes, the same id


def test_a_kill_after_done_still_delivers_after_the_restart(
    daemon_factory: Any, receiver: Receiver
) -> None:
    receiver.status = 503
    daemon = _notified(daemon_factory, receiver)
    clip = daemon.watch / "crash.mp4"
    write_media(clip, seed=3)
    daemon.wait_state(clip, JobState.DONE, timeout=30)
    wait_until(lambda: receiver.received, what="a first attempt")
    first = receiver.bodies()[0]
    daemon.kill()
    receiver.status = 200
    daemon.start()
    _all_delivered(daemon, 30, "delivered after the restart")
    assert receiver.bodies()[-1] == first
    assert {b["id"] for b in receiver.bodies()} == {first["id"]}


def test_a_receiver_that_hangs_does_not_delay_other_jobs(
    daemon_factory: Any, receiver: Receiver
) -> None:
    receiver.hang.set()
    daemon = _notified(daemon_factory, receiver, timeout_seconds=20)
    clips = [daemon.watch / f"many-{n}.mp4" for n in range(4)]
    for n, clip in enumerate(clips):
        write_media(clip, 50_000, seed=10 + n)
    for clip in clips:
        daemon.wait_state(clip, JobState.DONE, timeout=15)  # well before the hang ends
    assert daemon.status_json()["notifications"]["waiting"] == 4
    receiver.release.set()
    receiver.hang.clear()
    _all_delivered(daemon, 40, "all delivered once the receiver answers")
    assert {b["job"]["path"] for b in receiver.bodies()} == {str(c) for c in clips}


class DrippingReceiver:
    """A webhook receiver that reads the request, sends a status line, then one header byte
    every 0.2 s for as long as the client stays: each read is quick, the answer never ends.
    Records when each connection came and when the client hung up."""

    def __init__(self) -> None:
        import socket

        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hook"
        self.connections: list[dict[str, float | None]] = []
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            record: dict[str, float | None] = {"came": time.monotonic(), "left": None}
            self.connections.append(record)
            threading.Thread(target=self._drip, args=(conn, record), daemon=True).start()

    def _drip(self, conn: Any, record: dict[str, float | None]) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
                for _ in range(300):  # at most a minute
                    if self.closed.wait(0.2):
                        break
                    conn.sendall(b"a")
            except OSError:
                pass
            record["left"] = time.monotonic()

    def close(self) -> None:
        self.closed.set()
        self.server.close()


def test_a_dripping_webhook_is_cut_off_each_time_and_holds_up_no_other_receiver(
    daemon_factory: Any, tmp_path: Path
) -> None:
    """Each attempt ends after notify.timeout_seconds with its connection closed, the next
    attempt goes out as usual, and the command receiver is told meanwhile."""
    drip = DrippingReceiver()
    told = tmp_path / "told.json"
    timeout = 4.0
    try:
        daemon = daemon_factory(
            notify={
                "webhook_url": drip.url,
                "command": ["/bin/sh", "-c", f"cat > '{told}'"],
                "timeout_seconds": timeout,
            }
        ).start()
        clip = daemon.watch / "drip.mp4"
        write_media(clip, 40_000, seed=41)
        daemon.wait_state(clip, JobState.DONE, timeout=30)
        wait_until(lambda: drip.connections, what="a first attempt")
        wait_until(told.exists, timeout=timeout, what="the command told while the webhook drips")
        first = drip.connections[0]
        assert first["left"] is None or first["left"] - first["came"] > 1.0
        wait_until(lambda: len(drip.connections) >= 2, timeout=30, what="a second attempt")
        for attempt in drip.connections[:2]:
            wait_until(lambda a=attempt: a["left"] is not None, timeout=timeout + 3)
            held = attempt["left"] - attempt["came"]
            assert held < timeout + 2, f"an attempt held its connection {held:.1f} s"
        assert "previous answer has not ended" not in daemon.logs()
        assert f"webhook did not answer within {timeout:g} s" in daemon.logs()
        assert json.loads(told.read_text())["event"] == "done"
    finally:
        drip.close()


def test_the_command_gets_the_json_and_the_environment_never_the_token(
    daemon_factory: Any, tmp_path: Path
) -> None:
    out = tmp_path / "calls"
    out.mkdir()
    script = tmp_path / "on-ingest.py"
    script.write_text(
        "import json, os, sys, pathlib\n"
        "body = sys.stdin.read()\n"
        "record = {'body': json.loads(body), 'env': dict(os.environ)}\n"
        f"path = pathlib.Path({str(out)!r}) / (os.environ['INGESTD_JOB_ID'] + '.json')\n"
        "path.write_text(json.dumps(record))\n"
        "print('handled', os.environ['INGESTD_EVENT'])\n"
        # Something left running that keeps the output open: it is not waited for.
        "import subprocess; subprocess.Popen(['sleep', '60'])\n"
    )
    daemon = daemon_factory(notify={"command": [sys.executable, str(script)]})
    # The token in the daemon's own environment, in a spelling pydantic-settings accepts.
    env = {"ingestd_wistia__api_token": TOKEN}
    daemon.config["wistia"]["api_token"] = ""
    daemon.start(env=env)
    clip = daemon.watch / "cmd.mp4"
    write_media(clip, seed=4)
    job = daemon.wait_state(clip, JobState.DONE, timeout=30)
    called = out / f"{job.id}.json"
    wait_until(called.exists, what="the command run")
    record = json.loads(called.read_text())
    assert record["body"]["event"] == "done" and record["body"]["job"]["id"] == job.id
    assert record["env"]["INGESTD_EVENT"] == "done"
    assert record["env"]["INGESTD_JOB_ID"] == str(job.id)
    assert record["env"]["INGESTD_PATH"] == str(clip)
    assert record["env"]["INGESTD_HASHED_ID"] == job.hashed_id
    assert TOKEN not in called.read_text()
    wait_until(lambda: "handled done" in daemon.logs(), what="its output logged")
    _all_delivered(daemon, what="delivered once")
    assert "notification not delivered" not in daemon.logs()


def test_receipts_for_keep_and_move_none_for_delete_never_sidecars(daemon_factory: Any) -> None:
    daemon = daemon_factory(ingest={"receipts": True}).start()
    clip = daemon.watch / "show" / "ep1.mp4"
    (clip.parent).mkdir()
    (clip.parent / "ep1.en.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nHi\n")
    data = write_media(clip, seed=5)
    job = daemon.wait_state(clip, JobState.DONE, timeout=30)
    receipt = clip.parent / "ep1.mp4.wistia.json"
    wait_until(receipt.exists, what="the receipt")
    content = json.loads(receipt.read_text())
    assert content["hashed_id"] == job.hashed_id and content["media_id"] == job.media_id
    assert content["sha256"] == hashlib.sha256(data).hexdigest() and content["size"] == len(data)
    assert content["captions"] == ["eng"] and content["name"] == "ep1.mp4"
    assert content["url"] == f"https://sandbox.wistia.test/medias/{job.hashed_id}"
    assert content["project_id"] and content["uploaded_at"] and content["done_at"]
    # A media whose own clip.json name would be the receipt's: the receipt is not its sidecar.
    twin = clip.parent / "ep1.mp4.wistia.mp4"
    write_media(twin, seed=6)
    twin_job = daemon.wait_state(twin, JobState.DONE, timeout=30)
    media = daemon.sandbox.store.medias[twin_job.hashed_id]
    assert media.name == "ep1.mp4.wistia.mp4"
    assert not [j for j in daemon.jobs() if j.path.endswith(".wistia.json")]


@pytest.mark.parametrize("key", ["hashedId", "hashed_id"])
def test_a_receipts_project_is_the_one_sent_or_the_one_wistia_chose(
    daemon_factory: Any, key: str
) -> None:
    """Wistia's upload answer names no project: the receipt says the project sent (here by a
    clip.json) or, with none sent, the one the Data API shows (the day's Uploads_ project),
    whichever key Wistia names its id with. The thumbnail image goes to the video's project."""
    daemon = daemon_factory(ingest={"receipts": True})
    daemon.sandbox.faults.update(media_project_hashed_id_key=key)
    chosen = daemon.sandbox.store.create_project("Chosen")
    daemon.start()
    sent = daemon.watch / "sent.mp4"
    (daemon.watch / "sent.json").write_text(json.dumps({"project_id": chosen.hashed_id}))
    (daemon.watch / "sent.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 500)
    write_media(sent, seed=31)
    job = daemon.wait_state(sent, JobState.DONE, timeout=30)
    receipt = json.loads((daemon.watch / "sent.mp4.wistia.json").read_text())
    assert receipt["project_id"] == chosen.hashed_id == job.project_id
    video = daemon.sandbox.store.medias[job.hashed_id]
    assert video.still and daemon.sandbox.store.medias[video.still].project is chosen

    unsent = daemon.watch / "unsent.mp4"
    write_media(unsent, seed=32)
    job = daemon.wait_state(unsent, JobState.DONE, timeout=30)
    receipt = json.loads((daemon.watch / "unsent.mp4.wistia.json").read_text())
    uploads = daemon.sandbox.store.medias[job.hashed_id].project
    assert uploads.name.startswith("Uploads_") and receipt["project_id"] == uploads.hashed_id


def test_a_receipt_goes_to_the_archive_with_a_moved_file(
    daemon_factory: Any, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"  # not there yet: it is made
    daemon = daemon_factory(
        ingest={"receipts": True, "after_upload": "move", "archive_dir": archive}
    ).start()
    moved = daemon.watch / "moved.mp4"
    write_media(moved, seed=7)
    daemon.wait_state(moved, JobState.DONE, timeout=30)
    assert json.loads((archive / "moved.mp4.wistia.json").read_text())["size"] == 200_000
    assert not (daemon.watch / "moved.mp4.wistia.json").exists()


def test_no_receipt_for_a_deleted_file(daemon_factory: Any) -> None:
    daemon = daemon_factory(ingest={"receipts": True, "after_upload": "delete"}).start()
    gone = daemon.watch / "gone.mp4"
    write_media(gone, seed=8)
    daemon.wait_state(gone, JobState.DONE, timeout=30)
    assert sorted(p.name for p in daemon.watch.iterdir()) == []


def test_metrics_scraped_over_http_match_status(daemon_factory: Any, free_port: int) -> None:
    daemon = daemon_factory(metrics={"listen": f"127.0.0.1:{free_port}"}).start()
    for n in range(2):
        write_media(daemon.watch / f"m{n}.mp4", 40_000, seed=20 + n)
    (daemon.watch / "empty.mp4").write_bytes(b"")
    daemon.wait_state(daemon.watch / "m1.mp4", JobState.DONE, timeout=30)
    daemon.wait_state(daemon.watch / "m0.mp4", JobState.DONE, timeout=30)
    daemon.wait_state(daemon.watch / "empty.mp4", JobState.FAILED, timeout=30)
    with urlopen(f"http://127.0.0.1:{free_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    jobs = {s.labels["state"]: s.value for s in families["ingestd_jobs"].samples}
    assert jobs == {state: float(n) for state, n in daemon.status_json()["counts"].items()}
    assert jobs["done"] == 2 and jobs["failed"] == 1
    uploaded = families["ingestd_uploaded_bytes"].samples[0].value
    assert uploaded == 80_000
    requests = {
        (s.labels["api"], s.labels["code"]): s.value
        for s in families["ingestd_requests"].samples
        if s.name == "ingestd_requests_total"
    }
    assert requests[("upload", "200")] == 2
    holds = {s.labels["kind"]: s.value for s in families["ingestd_hold"].samples}
    assert holds == {"video_limit": 0.0, "auth": 0.0}
    assert families["ingestd_notifications_waiting"].samples[0].value == 0
    counts = [s for s in families["ingestd_upload_seconds"].samples if s.name.endswith("_count")]
    assert counts[0].value == 2
    assert "process_resident_memory_bytes" in families or "process_cpu_seconds" in families


def test_status_watch_draws_a_bar_for_a_slow_upload_under_a_terminal(
    daemon_factory: Any,
) -> None:
    daemon = daemon_factory(ingest={"upload_bandwidth": "100K", "workers": 1}).start()
    clip = daemon.watch / "slow-one.mp4"
    write_media(clip, 3_000_000, seed=30)
    daemon.wait_state(clip, JobState.UPLOADING, timeout=20)
    wait_until(lambda: (daemon.job_for(clip).bytes_sent or 0) > 0, what="bytes sent")
    screen = _run_in_terminal(
        [sys.executable, "-m", "ingestd", "--config", str(daemon.config_path), "status", "--watch"],
        seconds=3.5,
        columns=80,
    )
    assert "slow-one.mp4" in screen
    assert "━" in screen  # the bar
    assert "/s" in screen  # the speed
    assert "uploading" in screen
    # Not a terminal: the plain status text, once a second, until Ctrl-C.
    piped = subprocess.Popen(
        [sys.executable, "-m", "ingestd", "--config", str(daemon.config_path), "status", "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("INGESTD_")},
    )
    assert piped.stdout is not None
    seen = b""
    deadline = time.monotonic() + 20
    while seen.count(b"daemon: running") < 2 and time.monotonic() < deadline:
        seen += piped.stdout.read1(65536)
    piped.send_signal(signal.SIGINT)
    assert piped.wait(timeout=10) == 0
    assert seen.count(b"daemon: running") >= 2  # a frame a second
    assert b"\x1b[" not in seen and b"slow-one.mp4" in seen


def _run_in_terminal(command: list[str], seconds: float, columns: int) -> str:
    """Run `command` under a pseudo-terminal of `columns`, Ctrl-C it after `seconds`; its
    screen output, and it must have exited cleanly (0)."""
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGESTD_")}
    env.update(TERM="xterm-256color", COLUMNS=str(columns), LINES="40")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        command, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + seconds
    stopped_at = None
    while True:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if stopped_at is None and time.monotonic() > deadline:
            proc.send_signal(signal.SIGINT)
            stopped_at = time.monotonic()
        if stopped_at is not None and proc.poll() is not None:
            break
        if stopped_at is not None and time.monotonic() - stopped_at > 10:
            proc.kill()
            break
    os.close(leader)
    assert proc.wait(timeout=10) == 0
    return output.decode("utf-8", "replace")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_produced_and_bash_loads_its_own(shell: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ingestd", "completion", shell],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and "ingestd" in done.stdout
    assert "status" in done.stdout and "retry" in done.stdout
    if shell == "bash":
        loaded = subprocess.run(
            ["bash", "-c", "source /dev/stdin && complete -p ingestd"],
            input=done.stdout,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert loaded.returncode == 0, loaded.stderr
        assert "ingestd" in loaded.stdout


def _idle_connections(port: int, count: int) -> list[Any]:
    """Up to `count` connections to `port` that send a request line and then nothing, as a
    hostile or broken client would; opened one by one as fast as the server accepts them,
    until it stops accepting (a few refused in a row)."""
    import socket

    sockets: list[socket.socket] = []
    refused = 0
    while len(sockets) < count and refused < 10:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=0.3)
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        except OSError:
            refused += 1
            continue
        refused = 0
        sockets.append(sock)
    return sockets


def test_idle_connections_to_metrics_and_the_page_take_nothing_the_uploads_need(
    daemon_factory: Any, free_port: int
) -> None:
    """Hundreds of idle connections on each of the metrics and page ports, with the daemon
    under a low descriptor limit (a unit's LimitNOFILE=): the daemon's own descriptors stay
    few, a file dropped meanwhile is done as usual, and both ports answer once the flood is
    gone. (Issue 19: /metrics served from the daemon's process took every descriptor.)"""
    import resource
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        page_port = probe.getsockname()[1]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    daemon = daemon_factory(
        metrics={"listen": f"127.0.0.1:{free_port}"},
        web={"listen": f"127.0.0.1:{page_port}"},
    ).start(open_files=256)
    assert daemon.proc is not None
    wait_until(lambda: _scrape(free_port), what="metrics up")
    flood = _idle_connections(free_port, 600) + _idle_connections(page_port, 600)
    try:
        clip = daemon.watch / "during-the-flood.mp4"
        write_media(clip, 300_000, seed=40)
        daemon.wait_state(clip, JobState.DONE, timeout=30)
        descriptors = len(os.listdir(f"/proc/{daemon.proc.pid}/fd"))
        assert descriptors < 120, f"the daemon holds {descriptors} descriptors"
        assert "Too many open files" not in daemon.logs()
    finally:
        for sock in flood:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    wait_until(lambda: _scrape(free_port), timeout=30, what="metrics answer after the flood")
    with urlopen(f"http://127.0.0.1:{page_port}/api/status.json", timeout=10) as answer:
        assert json.loads(answer.read())["counts"]["done"] == 1


def _scrape(port: int) -> str:
    try:
        with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return answer.read().decode()
    except OSError:
        return ""
