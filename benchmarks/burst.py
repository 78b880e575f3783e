#!/usr/bin/env python3
"""A burst: N small files written into the watch folder at once. How long until every one is
hashed and queued, and how much memory did the daemon need?

    python benchmarks/burst.py                      # 10,000 files of 1 KiB, settle 1 s
    python benchmarks/burst.py --files 2000 --settle 0.5

The daemon runs against the sandbox with the account at its video limit, so that jobs stay
`queued` once hashed (what is measured is detection, settling, hashing and the ledger, not
uploading). Time runs from the first write; the goal is settle_seconds + 8 s for 10,000
files. Prints the seconds, the time per file, and the daemon's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import Daemon, wait_for

from ingestd.sandbox import Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per file")
    parser.add_argument("--settle", type=float, default=1.0)
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="ingestd-burst-"))
    sandbox = Sandbox(token=None, any_token=True, processing_seconds=1.0).start()
    sandbox.faults.update(video_limit=0)  # uploads wait under the hold: jobs stay queued
    daemon = Daemon(
        folder,
        sandbox,
        ingest={"settle_seconds": args.settle, "rescan_seconds": 3600, "workers": 3},
    ).start()
    try:
        data = os.urandom(args.size)
        first = time.monotonic()
        for n in range(args.files):
            # Distinct bytes each, in 100 folders, as a copy of a shoot would arrive.
            folder_n = daemon.watch / f"shoot{n % 100:03d}"
            folder_n.mkdir(exist_ok=True)
            (folder_n / f"clip{n:05d}.mp4").write_bytes(n.to_bytes(4, "big") + data)
        written = time.monotonic()
        done = wait_for(
            lambda: (
                daemon.query("SELECT count(*) FROM jobs WHERE sha256 IS NOT NULL")[0][0]
                >= args.files
            ),
            timeout=600,
            what="every file queued",
        )
        peak = daemon.peak_rss_mib()
    finally:
        daemon.stop()
        sandbox.stop()
    seconds = done - first
    print(f"{args.files} files of {args.size} bytes written at once, settle {args.settle:g} s")
    print("| measure | value | goal |")
    print("| --- | --- | --- |")
    print(f"| writing them took | {written - first:.1f} s | |")
    print(f"| all queued, from the first write | {seconds:.1f} s | ≤ {args.settle + 8:g} s |")
    print(f"| per file | {seconds / args.files * 1000:.2f} ms | |")
    print(f"| daemon peak RSS | {peak:.0f} MiB | ≤ 80 MiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
