#!/usr/bin/env python3
"""An idle daemon: how much CPU does it use when there is nothing to do?

    python benchmarks/idle.py                 # 20 s of measuring
    python benchmarks/idle.py --seconds 60

Starts the daemon against the sandbox with an empty watch folder, waits until it is ready and
has settled for 2 s, then reads its CPU time (user + system, /proc/PID/stat) before and after
the window. Prints the share of one core it used; the goal is at most 0.2 %.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import Daemon

from ingestd.sandbox import Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="ingestd-idle-"))
    sandbox = Sandbox(token=None, any_token=True).start()
    daemon = Daemon(folder, sandbox).start()
    try:
        time.sleep(2.0)  # the start-up scan and first passes are not idle time
        before, started = daemon.cpu_seconds(), time.monotonic()
        time.sleep(args.seconds)
        used, elapsed = daemon.cpu_seconds() - before, time.monotonic() - started
        requests = len(sandbox.records)
    finally:
        daemon.stop()
        sandbox.stop()
    print(
        f"idle daemon, {elapsed:.0f} s: {used:.2f} CPU s = {used / elapsed * 100:.2f} % of a core"
    )
    print(f"(goal: at most 0.2 %); requests to Wistia meanwhile: {requests}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
