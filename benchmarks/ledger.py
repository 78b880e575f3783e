#!/usr/bin/env python3
"""The ledger with 100,000 jobs: is every operation the daemon and `status` use still quick?

    python benchmarks/ledger.py                 # 100,000 jobs
    python benchmarks/ledger.py --jobs 1000000

Builds ledgers with N finished jobs (each with its events) and a few hundred, or ten
thousand, active ones, and times the operations on the hot paths: the claim, a state move,
the rescan's view of every path, the counts and job list of `status`, finding a job by path or
hashed id, and the whole `ingestd status`, `status --json` and `status --check` commands (a
process each: imports included). The reference is the same operations on a ledger with one
job: the difference is what the size costs. Prints median milliseconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ingestd.core.jobs import JobState
from ingestd.ledger import Ledger, LedgerLock
from ingestd.pipeline.resync import changed_unseen


def fill(ledger: Ledger, jobs: int, active: int) -> None:
    """Finished jobs in bulk (with their six events each), then active ones via the ledger."""
    now = time.time()
    rows = [
        {
            "id": n + 1,
            "path": f"/srv/inbox/show{n % 97}/clip-{n:07d}.mp4",
            "kind": "file",
            "state": "done",
            "size": 10_000 + n,
            "mtime_ns": n,
            "sha256": f"{n:064x}",
            "attempts": 0,
            "media_id": 1_000_000 + n,
            "hashed_id": f"h{n:09d}",
            "media_name": f"clip-{n:07d}.mp4",
            "created_at": now - jobs + n,
            "updated_at": now - jobs + n,
        }
        for n in range(jobs)
    ]
    ledger.db["jobs"].insert_all(rows, batch_size=5000)
    steps = ["settling", "queued", "uploading", "processing", "finishing", "done"]
    events = (
        {"job_id": n + 1, "at": now - jobs + n, "from_state": a, "to_state": b, "note": "bench"}
        for n in range(jobs)
        for a, b in zip([None, *steps], steps, strict=False)
    )
    ledger.db["events"].insert_all(events, batch_size=10000)
    ledger.db["jobs"].insert_all(
        (
            {
                "id": jobs + n + 1,
                "path": f"/srv/inbox/new/active-{n:05d}.mp4",
                "kind": "file",
                "state": ("queued", "processing", "settling")[n % 3],
                "size": n,
                "mtime_ns": n,
                "sha256": f"a{n:063x}",
                "reason": "waiting for its turn",
                "created_at": now + n,
                "updated_at": now + n,
            }
            for n in range(active)
        ),
        batch_size=5000,
    )


def timed(action: Callable[[], object], repeat: int = 20) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure(folder: Path, jobs: int, active: int) -> dict[str, float]:
    path = folder / "ledger.db"
    config = folder / "ingestd.toml"
    config.write_text(f'watch_dir = "{folder}"\nledger = "{path}"\n')
    ledger = Ledger(path)
    fill(ledger, jobs, active)
    some = ledger.get(max(1, jobs // 2)) or ledger.get(1)
    assert some is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGESTD_")}

    def claim_and_put_back() -> None:
        job = ledger.uploads.claim()
        if job is not None:
            ledger.move(job, JobState.QUEUED, "bench")

    def cli(*args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "ingestd", "--config", str(config), *args],
            stdout=subprocess.DEVNULL,
            env=env,
            check=False,
        )

    # As with a daemon running: it holds the lock beside the ledger, and its connection keeps
    # the -wal (without the lock, status would take it for a crashed daemon and read a copy).
    lock = LedgerLock(path)
    lock.acquire()
    figures = {
        "claim + move back": timed(claim_and_put_back),
        "counts per state": timed(ledger.counts),
        "active + 100 recent": timed(ledger.active_and_recent),
        "every path (rescan)": timed(ledger.known_versions, repeat=5),
        "done jobs' sidecar times (rescan)": timed(
            lambda: changed_unseen(ledger, Path("/srv/inbox")), repeat=5
        ),
        "find by path": timed(lambda: ledger.jobs.find(some.path)),
        "find by hashed id": timed(lambda: ledger.jobs.find(some.hashed_id or "x")),
        "one job's history": timed(lambda: ledger.jobs.events(some.id)),
        "`status` (process)": timed(lambda: cli("status"), repeat=5),
        "`status --json` (process)": timed(lambda: cli("status", "--json"), repeat=5),
        "`status --check` (process)": timed(lambda: cli("status", "--check"), repeat=5),
    }
    lock.release()
    ledger.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--active", type=int, default=300)
    parser.add_argument("--busy", type=int, default=10_000, help="active jobs, third ledger")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="ingestd-ledger-bench-"))
    ledgers = {
        "1 job": (1, 1),
        f"{args.jobs:,} jobs": (args.jobs, args.active),
        f"{args.jobs:,}, {args.busy:,} active": (args.jobs, args.busy),
    }
    try:
        figures = {}
        for n, (name, (jobs, active)) in enumerate(ledgers.items()):
            (folder / str(n)).mkdir()
            figures[name] = measure(folder / str(n), jobs, active)
        size = (folder / "1" / "ledger.db").stat().st_size / 1e6
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"ledgers of {args.jobs:,} done jobs (6 events each, {size:.0f} MB) plus "
        f"{args.active} or {args.busy:,} active ones; median ms"
    )
    print("| operation | " + " | ".join(ledgers) + " |")
    print("| --- |" + " --- |" * len(ledgers))
    for operation in figures["1 job"]:
        values = " | ".join(f"{figures[name][operation]:.2f}" for name in ledgers)
        print(f"| {operation} | {values} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
