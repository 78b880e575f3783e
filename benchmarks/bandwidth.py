#!/usr/bin/env python3
"""The bandwidth limit: three workers uploading at once under `ingest.upload_bandwidth`. Does
the rate all uploads together achieve match the limit?

    python benchmarks/bandwidth.py                   # 20M (20 MiB/s), about 30 s of uploading
    python benchmarks/bandwidth.py --limit 5M --seconds 20

Runs the daemon (3 workers) against the sandbox with the limit set, drops three files sized
so that the uploads take about --seconds at the limit, and measures from the sandbox's own
records: the bytes of all uploads divided by the time from the first upload's start to the
last one's end. The goal is to be within 5 % of the limit (and never above it by more).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import Daemon, wait_for

from ingestd.config.limits import parse_bandwidth
from ingestd.sandbox import Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", default="20M")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    rate = parse_bandwidth(args.limit)
    assert rate is not None
    size = int(rate * args.seconds / 3)
    folder = Path(tempfile.mkdtemp(prefix="ingestd-bandwidth-"))
    sandbox = Sandbox(token=None, any_token=True, processing_seconds=1.0).start()
    daemon = Daemon(
        folder,
        sandbox,
        ingest={"upload_bandwidth": args.limit, "workers": 3, "settle_seconds": 0.5},
        wistia={"upload_timeout_seconds": 600},
    )
    for n in range(3):  # written before the daemon starts: all three queued at once
        with open(daemon.watch / f"big{n}.mp4", "wb") as out:
            for _ in range(size // (1024 * 1024) + 1):
                out.write(os.urandom(1024 * 1024))
    daemon.start()
    try:
        wait_for(
            lambda: sum(1 for r in sandbox.records if r.is_upload and r.status == 200) == 3,
            timeout=args.seconds * 4 + 60,
            what="three uploads",
        )
    finally:
        daemon.stop()
        sandbox.stop()
    uploads = [r for r in sandbox.records if r.is_upload and r.status == 200]
    total = sum(r.files["file"]["size"] for r in uploads)
    elapsed = max(r.finished for r in uploads) - min(r.started for r in uploads)
    achieved = total / elapsed
    overlap = min(r.finished for r in uploads) - max(r.started for r in uploads)
    print(f"3 workers, limit {args.limit} ({rate / 1024**2:.2f} MiB/s)")
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| bytes sent | {total / 1024**2:.1f} MiB in {elapsed:.1f} s |")
    print(f"| the three uploads all under way together | {max(overlap, 0):.1f} s |")
    print(f"| achieved rate | {achieved / 1024**2:.2f} MiB/s |")
    print(f"| achieved / limit | {achieved / rate:.3f} (goal: within 5 %) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
