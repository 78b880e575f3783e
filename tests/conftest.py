"""Shared test harness: a real sandbox on loopback and the real daemon as a subprocess.

Nothing of ours is mocked. The daemon runs as `python -m ingestd run` against a sandbox
started in the test process, with a temporary watch folder and ledger, so tests can send it
signals, kill it, start it again, and read what the sandbox received and what the ledger says.
Waiting is always polling for a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ingestd.core.jobs import Job, JobState
from ingestd.ledger import Ledger
from ingestd.sandbox import Sandbox

TOKEN = "tok-3f9a1c77e2b84d05a6c1e9f0b2d4c6a8"
T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `condition` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def write_config(path: Path, values: dict[str, Any]) -> Path:
    lines = [f"{k} = {toml_value(v)}" for k, v in values.items() if not isinstance(v, dict)]
    for section, table in values.items():
        if isinstance(table, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _with_open_files_limit(limit: int) -> Callable[[], None]:
    """In the child, before exec: at most `limit` open descriptors (soft and hard)."""

    def lower() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return lower


def _without_permission_override() -> None:
    """In the child, before exec: root loses the capabilities that bypass file modes."""
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "cannot drop CAP_DAC_OVERRIDE")


class DaemonProcess:
    """`ingestd run` in a subprocess, with its config, watch folder and ledger."""

    def __init__(self, tmp: Path, sandbox: Sandbox, **overrides: Any) -> None:
        self.tmp = tmp
        self.sandbox = sandbox
        self.watch = tmp / "inbox"
        self.watch.mkdir(exist_ok=True)
        self.ledger_path = tmp / "state" / "ledger.db"
        self.log_path = tmp / "daemon.log"
        self.config: dict[str, Any] = {
            "watch_dir": self.watch,
            "ledger": self.ledger_path,
            "wistia": {
                "api_token": TOKEN,
                "upload_url": sandbox.upload_url,
                "api_url": sandbox.api_url,
                "swap_url": sandbox.modern_url,
                "requests_per_minute": 600,
                "timeout_seconds": 5.0,
                "upload_timeout_seconds": 10.0,
            },
            "ingest": {
                "workers": 3,
                "settle_seconds": 0.3,
                "rescan_seconds": 60,
                "max_attempts": 5,
                "poll_min_seconds": 0.1,
                "poll_max_seconds": 0.4,
                "retry_min_seconds": 0.1,
                "retry_max_seconds": 0.4,
                "probe_min_seconds": 0.5,
                "probe_max_seconds": 2.0,
            },
            "log": {"level": "debug", "format": "json"},
        }
        for key, value in overrides.items():
            if isinstance(value, dict):
                self.config.setdefault(key, {}).update(value)
            else:
                self.config[key] = value
        self.config_path = tmp / "ingestd.toml"
        self.proc: subprocess.Popen[bytes] | None = None
        self._ledger: Ledger | None = None

    # --- process ----------------------------------------------------------------------------

    def start(
        self,
        wait_ready: bool = True,
        honour_permissions: bool = False,
        env: dict[str, str] | None = None,
        wrapper: list[str] | None = None,
        open_files: int | None = None,
    ) -> DaemonProcess:
        """Start the daemon; `honour_permissions` makes even root meet file modes; `wrapper`
        is a command that runs it (setpriv, to start it with fewer capabilities);
        `open_files` lowers its descriptor limit (as a unit's LimitNOFILE= does)."""
        write_config(self.config_path, self.config)
        offset = len(self.logs())  # the log is shared by restarts: read only what is new
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child owns it)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INGESTD_")} | (env or {})
        command = [sys.executable, "-m", "ingestd", "--config", str(self.config_path), "run"]
        preexec = None
        if honour_permissions:
            preexec = _without_permission_override
        elif open_files is not None:
            preexec = _with_open_files_limit(open_files)
        self.proc = subprocess.Popen(
            [*(wrapper or []), *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.tmp,
            preexec_fn=preexec,
        )
        log.close()
        if wait_ready:
            wait_until(
                lambda: "ready: watching" in self.logs()[offset:] or self.proc.poll() is not None,
                timeout=15,
                what="daemon ready",
            )
            assert self.proc.poll() is None, f"daemon exited early:\n{self.logs()}"
        return self

    def stop(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def logs(self) -> str:
        return (
            self.log_path.read_text(encoding="utf-8", errors="replace")
            if self.log_path.exists()
            else ""
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INGESTD_")}
        return subprocess.run(
            [sys.executable, "-m", "ingestd", "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            cwd=self.tmp,
        )

    def status_json(self, *args: str) -> dict[str, Any]:
        result = self.cli("status", "--json", *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    # --- ledger -----------------------------------------------------------------------------

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            wait_until(self.ledger_path.exists, what="ledger created")
            self._ledger = Ledger(self.ledger_path)
        return self._ledger

    def jobs(self) -> list[Job]:
        return self.ledger.jobs.active_and_recent(None)

    def job_for(self, path: Path) -> Job | None:
        return self.ledger.jobs.latest_for_path(str(path))

    def wait_state(self, path: Path, state: JobState, timeout: float = 20.0) -> Job:
        def reached() -> Job | None:
            job = self.job_for(path)
            return job if job is not None and job.state == state else None

        try:
            return wait_until(reached, timeout=timeout, what=f"{path.name} {state}")
        except AssertionError:
            job = self.job_for(path)
            raise AssertionError(
                f"{path.name} is {job.state if job else 'unknown'}, not {state}; "
                f"job={job}\n--- daemon log ---\n{self.logs()[-4000:]}"
            ) from None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._ledger is not None:
            self._ledger.close()


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder another user can write in (pytest's own temporary folders are root's alone)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="ingestd-shared-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def free_port() -> int:
    """A loopback port nobody listens on (for a server the daemon starts itself)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(token=TOKEN, processing_seconds=0.3).start()
    yield box
    box.stop()


@pytest.fixture
def daemon_factory(tmp_path: Path, sandbox: Sandbox) -> Iterator[Callable[..., DaemonProcess]]:
    made: list[DaemonProcess] = []

    def make(**overrides: Any) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path, sandbox, **overrides)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.close()


@pytest.fixture
def daemon(daemon_factory: Callable[..., DaemonProcess]) -> DaemonProcess:
    return daemon_factory().start()


def write_media(path: Path, size: int = 200_000, seed: int = 0) -> bytes:
    """Write a file of pseudo-random bytes (deterministic per seed) and return them."""
    import random

    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
