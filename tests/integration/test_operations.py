"""Operations: sd_notify, the systemd unit, config reload, journald logs, check, status --check."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingestd.core.jobs import JobState
from tests.conftest import TOKEN, DaemonProcess, wait_until, write_config, write_media

UNIT = Path(__file__).parents[2] / "deploy" / "systemd" / "ingestd.service"


class NotifySocket:
    """The datagram socket systemd would listen on, bound by the test."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []

    def drain(self) -> list[str]:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            self.messages.append((time.time(), data.decode()))
        return [m for _, m in self.messages]

    def lines(self) -> list[str]:
        return [line for message in self.drain() for line in message.split("\n")]

    def close(self) -> None:
        self.sock.close()


def test_sd_notify_ready_after_scan_watchdog_status_and_stopping(daemon_factory, tmp_path) -> None:
    daemon: DaemonProcess = daemon_factory()
    present = [daemon.watch / f"early{n}.mp4" for n in range(3)]
    for n, clip in enumerate(present):
        write_media(clip, seed=n)
    notify = NotifySocket(tmp_path)
    try:
        daemon.start(env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"})
        wait_until(lambda: "READY=1" in notify.lines(), what="READY=1")
        ready_at = next(t for t, m in notify.messages if "READY=1" in m)
        # The start-up scan had recorded every file already there when READY=1 was sent.
        for clip in present:
            job = daemon.job_for(clip)
            assert job is not None and job.created_at <= ready_at
        wait_until(lambda: notify.lines().count("WATCHDOG=1") >= 3, what="watchdog pings")
        for clip in present:
            daemon.wait_state(clip, JobState.DONE)
        wait_until(
            lambda: any(line.startswith("STATUS=") and "3 done" in line for line in notify.lines()),
            what="STATUS with counts",
        )
        assert daemon.stop() == 0
        assert "STOPPING=1" in notify.lines()
    finally:
        notify.close()


def test_sighup_applies_new_patterns_and_workers_live(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"extensions": ["mp4"]}).start()
    talk = daemon.watch / "talk.mov"
    write_media(talk, seed=1)
    marker = daemon.watch / "marker.mp4"
    write_media(marker, seed=2)
    daemon.wait_state(marker, JobState.DONE)
    assert daemon.job_for(talk) is None  # .mov is not a media yet

    daemon.config["ingest"].update(extensions=["mp4", "mov"], workers=1)
    write_config(daemon.config_path, daemon.config)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_state(talk, JobState.DONE)
    # One worker now: slow uploads of several files never overlap at Wistia.
    daemon.sandbox.faults.update(slow_upload_seconds=0.5)
    clips = [daemon.watch / f"one{n}.mp4" for n in range(4)]
    for n, clip in enumerate(clips):
        write_media(clip, 20_000, seed=10 + n)
    for clip in clips:
        daemon.wait_state(clip, JobState.DONE)
    uploads = sorted((r.started, r.finished) for r in daemon.sandbox.records if r.is_upload)[2:]
    assert len(uploads) == 4
    for (_, finished), (started, _) in itertools.pairwise(uploads):
        assert started >= finished, "two uploads at once with workers = 1"


def _journal_stream(path: Path) -> dict[str, str]:
    """$JOURNAL_STREAM as systemd sets it for a service whose stderr is `path`."""
    path.touch()
    stream = path.stat()
    return {"JOURNAL_STREAM": f"{stream.st_dev}:{stream.st_ino}"}


def test_journald_gets_priorities_and_no_second_timestamp(daemon_factory) -> None:
    daemon = daemon_factory()
    daemon.start(env=_journal_stream(daemon.log_path))
    lines = [line for line in daemon.logs().splitlines() if line.startswith("<")]
    assert lines, daemon.logs()[:500]
    first = lines[0]
    assert first.startswith("<6>{")
    event = json.loads(first[3:])
    assert "timestamp" not in event and event["level"] == "info"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_unit_verifies_clean_and_exposure_is_ok(tmp_path: Path) -> None:
    unit = tmp_path / "ingestd.service"
    # verify checks that ExecStart= exists: point it at this checkout's ingestd.
    ingestd = Path(sys.executable).parent / "ingestd"
    unit.write_text(UNIT.read_text().replace("/opt/ingestd/venv/bin/ingestd", str(ingestd)))
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in security.stderr and "unrecognized" in security.stderr:
        pytest.skip("this systemd-analyze has no --offline")
    line = [text for text in security.stdout.splitlines() if "Overall exposure level" in text]
    assert line, security.stdout + security.stderr
    score = float(line[0].split(":")[1].split()[0])
    assert score <= 2.0, line[0]


def test_unit_has_what_an_administrator_expects() -> None:
    text = UNIT.read_text()
    for setting in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=ingestd",
        "LoadCredential=wistia-token:",
        "User=ingestd",
        "ProtectSystem=strict",
        "ReadWritePaths=-",
        "MemoryMax=",
        "StartLimitIntervalSec=",
        "StartLimitBurst=",
        "RestartPreventExitStatus=2",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        # Open writers of other users are seen through a read lease (tests/unit/test_complete)
        "AmbientCapabilities=CAP_LEASE",
        "CapabilityBoundingSet=CAP_LEASE",
    ):
        assert setting in text, setting


# --- ingestd check --------------------------------------------------------------------------------


def test_check_reports_each_problem_with_a_fix(daemon_factory, tmp_path: Path) -> None:
    daemon = daemon_factory()
    write_config(daemon.config_path, daemon.config)
    daemon.config_path.chmod(0o600)
    ok = daemon.cli("check")
    assert ok.returncode == 0, ok.stdout
    assert "ok    token: accepted by Wistia (account: ingestd sandbox)" in ok.stdout
    assert "warn" not in ok.stdout

    daemon.config_path.chmod(0o644)  # holds the token and others may read it: a warning
    readable = daemon.cli("check")
    assert readable.returncode == 0  # a warning, not a failure
    assert "warn  config:" in readable.stdout and "chmod 600" in readable.stdout

    daemon.config["watch_dir"] = tmp_path / "nowhere"
    write_config(daemon.config_path, daemon.config)
    missing = daemon.cli("check")
    assert missing.returncode == 1
    assert "FAIL  watch folder:" in missing.stdout and "mkdir -p" in missing.stdout

    daemon.config["watch_dir"] = daemon.watch
    daemon.config["ingest"].update(after_upload="move", archive_dir=str(tmp_path / "no-archive"))
    write_config(daemon.config_path, daemon.config)
    archive = daemon.cli("check")
    assert archive.returncode == 1 and "FAIL  archive folder:" in archive.stdout

    daemon.config_path.write_text("watch_dir = 5\n")
    broken = daemon.cli("check")
    assert broken.returncode == 1 and "FAIL  config:" in broken.stdout
    assert TOKEN not in ok.stdout + missing.stdout + archive.stdout + broken.stdout


def test_check_without_a_token(daemon_factory) -> None:
    daemon = daemon_factory()
    daemon.config["wistia"]["api_token"] = ""
    write_config(daemon.config_path, daemon.config)
    result = daemon.cli("check")
    assert result.returncode == 1
    assert "FAIL  token: wistia.api_token: no API token configured" in result.stdout


# --- ingestd status --check -----------------------------------------------------------------------


def status_check(daemon: DaemonProcess) -> tuple[int, str]:
    result = daemon.cli("status", "--check")
    return result.returncode, result.stdout.strip()


def test_status_check_exit_codes(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"max_attempts": 1})
    write_config(daemon.config_path, daemon.config)
    code, line = status_check(daemon)
    assert code == 2 and line.startswith("INGESTD CRITICAL - daemon not running")

    daemon.start()
    clip = daemon.watch / "ok.mp4"
    write_media(clip, seed=1)
    daemon.wait_state(clip, JobState.DONE)
    code, line = status_check(daemon)
    assert code == 0 and line.startswith("INGESTD OK - running since") and "done=1" in line

    daemon.sandbox.faults.update(fail_uploads=1)
    bad = daemon.watch / "bad.mp4"
    write_media(bad, seed=2)
    daemon.wait_state(bad, JobState.FAILED)
    code, line = status_check(daemon)
    assert code == 1 and "1 failed" in line

    daemon.sandbox.faults.update(video_limit=0)
    write_media(daemon.watch / "limited.mp4", seed=3)
    wait_until(lambda: daemon.status_json()["hold"], what="video limit hold")
    code, line = status_check(daemon)
    assert code == 1 and "video limit" in line

    daemon.sandbox.faults.update(video_limit=None, auth_fail=True)
    daemon.ledger.hold.clear()
    wait_until(lambda: (daemon.status_json()["hold"] or {}).get("kind") == "auth", what="auth hold")
    code, line = status_check(daemon)
    assert code == 2 and "refused the API token" in line


def test_check_warns_when_the_token_file_is_readable_by_others(daemon_factory, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)
    daemon = daemon_factory(wistia={"api_token": "", "api_token_file": str(token_file)})
    write_config(daemon.config_path, daemon.config)
    loose = daemon.cli("check")
    assert loose.returncode == 0 and "warn  token file:" in loose.stdout
    assert "chmod 600" in loose.stdout and TOKEN not in loose.stdout
    token_file.chmod(0o600)
    assert not [line for line in daemon.cli("check").stdout.splitlines() if line.startswith("warn")]


def test_a_fatal_config_error_reaches_journald_at_error_priority(tmp_path: Path) -> None:
    """`journalctl -p err` shows why the service did not start: the one line carries `<3>`,
    under journald only (a JOURNAL_STREAM that is not stderr is someone else's)."""
    config = tmp_path / "bad.toml"
    config.write_text('watch_dir = "inbox"\n[ingest]\nworkers = 0\n')
    stderr = tmp_path / "stderr"
    for env, prefix in (
        (_journal_stream(stderr), "<3>ingestd: "),
        ({"JOURNAL_STREAM": "1:2"}, "ingestd: "),
    ):
        with open(stderr, "w") as out:
            result = subprocess.run(
                [sys.executable, "-m", "ingestd", "--config", str(config), "run"],
                stderr=out,
                env={**os.environ, **env},
                timeout=30,
            )
        assert result.returncode == 2
        line = stderr.read_text()
        assert line.startswith(prefix) and "ingest.workers" in line, line
