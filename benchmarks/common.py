"""What the benchmarks share: a daemon in a subprocess against a sandbox in this process,
its CPU time and peak memory read from /proc, and a read-only look at its ledger."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingestd.sandbox import Sandbox

TOKEN = "bench-token-0123456789abcdef"


def toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return str(value)


class Daemon:
    """`ingestd run` in a subprocess with a config of its own, in `folder`."""

    def __init__(self, folder: Path, sandbox: Sandbox, **sections: dict[str, Any]) -> None:
        self.folder = folder
        self.watch = folder / "inbox"
        self.watch.mkdir(parents=True, exist_ok=True)
        self.ledger = folder / "state" / "ledger.db"
        self.log = folder / "daemon.log"
        config: dict[str, dict[str, Any]] = {
            "": {"watch_dir": self.watch, "ledger": self.ledger},
            "wistia": {
                "api_token": TOKEN,
                "upload_url": sandbox.upload_url,
                "api_url": sandbox.api_url,
                "swap_url": sandbox.modern_url,
            },
            "log": {"level": "info", "format": "json"},
        }
        for name, values in sections.items():
            config.setdefault(name, {}).update(values)
        lines = [f"{k} = {toml(v)}" for k, v in config.pop("").items()]
        for name, values in config.items():
            lines += [f"\n[{name}]"] + [f"{k} = {toml(v)}" for k, v in values.items()]
        self.config = folder / "ingestd.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, open_files: int | None = None) -> Daemon:
        """Start it; `open_files` sets its descriptor limit (the unit's LimitNOFILE=)."""

        def limit() -> None:
            import resource

            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ingestd", "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if not k.startswith("INGESTD_")},
                preexec_fn=limit,
            )
        wait_for(lambda: "ready: watching" in self.log.read_text(errors="replace"), 30, "ready")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the daemon so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def peak_rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """A read of the ledger, read-only (the daemon has it open: its -wal is shared)."""
        conn = sqlite3.connect(f"file:{self.ledger}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Poll `condition` every 50 ms; the monotonic time it first held. Bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
