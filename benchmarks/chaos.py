#!/usr/bin/env python3
"""Chaos run: faults on, files arriving, the daemon killed with SIGKILL again and again.

    python benchmarks/chaos.py                      # the long form: 200 files, 40 kills
    python benchmarks/chaos.py --files 30 --kills 10   # the CI form (test_chaos.py)

Starts the built-in sandbox on loopback with server errors, dropped connections, latency and
slow upload answers switched on; writes N files into a fresh watch folder while the daemon
runs (some before it starts, the rest as it works), and rewrites some of those already done
with new bytes (a re-exported edit: it replaces its media in place, by Swap); kills the daemon
with SIGKILL at random moments M times, restarting it each time; then lets it finish and
checks that

- every file's last version is `done` in the ledger, none `failed`;
- Wistia (the sandbox) holds exactly one media per file, with the file's exact last bytes;
- the ledger passes SQLite's integrity check and every job's last event is its state.

Prints what it did and exits 0 when every check holds, 1 otherwise. Everything stays on
loopback and every loop is bounded by count and by time.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

from ingestd.sandbox import Faults, Sandbox


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument(
        "--rewrites",
        type=int,
        default=None,
        help="done files rewritten in place with new bytes while it runs (default: files / 10)",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-kb", type=int, default=2000, help="largest file, in KB")
    parser.add_argument(
        "--deadline",
        type=float,
        default=600.0,
        help="seconds the whole run may take before it counts as failed",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args(argv)


def write_config(path: Path, watch: Path, sandbox: Sandbox) -> None:
    path.write_text(
        f"""
watch_dir = {json.dumps(str(watch))}
ledger = {json.dumps(str(path.parent / "state" / "ledger.db"))}

[wistia]
api_token = {json.dumps(sandbox.token)}
upload_url = {json.dumps(sandbox.upload_url)}
api_url = {json.dumps(sandbox.api_url)}
swap_url = {json.dumps(sandbox.modern_url)}
timeout_seconds = 5.0
upload_timeout_seconds = 5.0

[ingest]
workers = 3
settle_seconds = 0.3
rescan_seconds = 5
max_attempts = 1000
poll_min_seconds = 0.2
poll_max_seconds = 1.0
retry_min_seconds = 0.1
retry_max_seconds = 1.0

[log]
format = "json"
""",
        encoding="utf-8",
    )


class Daemon:
    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ingestd", "--config", str(self.config), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        """At exit, however the harness ends (a timeout's SIGTERM, Ctrl-C): no daemon left."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)


def ledger_rows(path: Path) -> tuple[list[sqlite3.Row], dict[int, str], str]:
    """Every job, each job's last event, and SQLite's integrity check. Read-only: a ledger
    the daemon has not made yet (all its starts so far killed early) has no rows."""
    if not path.exists():
        return [], {}, "ok"
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=15)
    connection.row_factory = sqlite3.Row
    if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone():
        connection.close()
        return [], {}, "ok"
    jobs = connection.execute("SELECT * FROM jobs").fetchall()
    last_events = {
        row["job_id"]: row["to_state"]
        for row in connection.execute(
            "SELECT job_id, to_state FROM events WHERE id IN "
            "(SELECT max(id) FROM events GROUP BY job_id)"
        )
    }
    integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    connection.close()
    return jobs, last_events, integrity


def latest_versions(path: Path) -> dict[str, tuple[str, str | None]]:
    """path -> (state, sha256) of its latest version, read-only."""
    if not path.exists():
        return {}
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=15)) as connection:
        if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone():
            return {}
        rows = connection.execute("SELECT path, state, sha256 FROM jobs ORDER BY id").fetchall()
    return {path: (state, digest) for path, state, digest in rows}


def run(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    chance = random.Random(seed)
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="ingestd-chaos-"))
    watch = folder / "inbox"
    watch.mkdir()
    faults = Faults(
        error_rate=0.05, drop_rate=0.03, latency=0.01, slow_upload_seconds=0.2, seed=seed
    )
    sandbox = Sandbox(processing_seconds=0.6, faults=faults).start()
    config = folder / "ingestd.toml"
    write_config(config, watch, sandbox)
    daemon = Daemon(config, folder / "daemon.log")
    atexit.register(daemon.close)
    expected: dict[str, str] = {}

    def drop_file(n: int) -> None:
        write(watch / f"batch{n % 5}" / f"clip-{n:04d}.mp4")

    def write(path: Path) -> None:
        size = chance.randint(1, args.max_kb) * 1024
        data = chance.randbytes(size)
        path.parent.mkdir(exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_bytes(data)
        temp.rename(path)  # as rsync does
        expected[str(path)] = hashlib.sha256(data).hexdigest()

    ledger = folder / "state" / "ledger.db"
    rewrites = args.rewrites if args.rewrites is not None else args.files // 10
    rewritten: list[str] = []

    def rewrite_a_done_file() -> None:
        """A new version of a file whose latest version is done: it replaces its media."""
        done = [p for p, (state, _) in latest_versions(ledger).items() if state == "done"]
        done = [p for p in done if p in expected and p not in rewritten]
        if done:
            path = chance.choice(sorted(done))
            write(Path(path))
            rewritten.append(path)

    print(f"chaos: seed {seed}, {args.files} files, {args.kills} kills, in {folder}")
    first_batch = args.files // 3
    for n in range(first_batch):
        drop_file(n)
    pending = list(range(first_batch, args.files))
    daemon.start()

    def kill_and_restart(kill: int, rewrite: bool) -> None:
        deadline = time.monotonic() + chance.uniform(0.3, 2.0)
        while time.monotonic() < deadline:  # files keep arriving while it runs
            if pending and chance.random() < 0.5:
                drop_file(pending.pop(0))
            if rewrite and len(rewritten) < rewrites and chance.random() < 0.2:
                rewrite_a_done_file()
            time.sleep(0.05)
        daemon.kill()
        print(f"  kill {kill + 1}/{args.kills} at {time.monotonic() - started:.1f} s")
        daemon.start()

    # First half of the kills while files arrive; then, once files are done, some are
    # rewritten in place and the second half of the kills falls among their swaps.
    half = args.kills // 2
    for kill in range(half):
        kill_and_restart(kill, rewrite=False)
    for n in pending:
        drop_file(n)
    pending.clear()
    wait_until = time.monotonic() + 60
    while len(rewritten) < rewrites and time.monotonic() < wait_until:
        rewrite_a_done_file()
        time.sleep(0.2)
    for kill in range(half, args.kills):
        kill_and_restart(kill, rewrite=True)

    outcome = "timed out"
    while time.monotonic() - started < args.deadline:
        time.sleep(1.0)
        latest = latest_versions(ledger)
        if all(latest.get(p) == ("done", digest) for p, digest in expected.items()):
            outcome = "all done"
            break
        if any(state == "failed" for state, _ in latest.values()):
            outcome = "a job failed"
            break
    exit_code = daemon.stop()

    jobs, last_events, integrity = ledger_rows(ledger)
    problems: list[str] = []
    if outcome != "all done":
        problems.append(outcome)
    if integrity != "ok":
        problems.append(f"ledger integrity: {integrity}")
    if exit_code != 0:
        problems.append(f"daemon exited {exit_code} on SIGTERM")
    by_path = {row["path"]: row for row in sorted(jobs, key=lambda row: row["id"])}
    medias = list(sandbox.store.medias.values())
    per_hash = Counter(m.sha256 for m in medias)
    for path, digest in expected.items():
        row = by_path.get(path)
        if row is None or row["state"] != "done" or row["sha256"] != digest:
            problems.append(f"{path}: its last version is not done")
            continue
        media = sandbox.store.medias.get(row["hashed_id"])
        if media is None or media.sha256 != digest:
            problems.append(f"{path}: Wistia does not hold its bytes")
        if per_hash[digest] != 1:
            problems.append(f"{path}: {per_hash[digest]} medias with its bytes")
    if len(medias) != len(expected):
        problems.append(f"{len(medias)} medias for {len(expected)} files")
    for row in jobs:
        if last_events.get(row["id"]) != row["state"]:
            problems.append(
                f"job {row['id']}: state {row['state']} but last event {last_events.get(row['id'])}"
            )
    faults_hit = Counter(
        "dropped" if r.dropped else str(r.status)
        for r in sandbox.records
        if r.dropped or (r.status or 0) >= 500
    )
    attempts = Counter(row["attempts"] for row in jobs)
    swaps = Counter(job.outcome for job in sandbox.store.jobs.values())
    print(
        f"chaos: {outcome} in {time.monotonic() - started:.1f} s; {len(expected)} files "
        f"({len(rewritten)} rewritten in place), {len(medias)} medias, "
        f"{len(sandbox.records)} requests, swaps: {dict(swaps)}"
    )
    print(
        f"  faults answered: {dict(faults_hit)}; attempts per job: {dict(sorted(attempts.items()))}"
    )
    sandbox.stop()
    if problems:
        print("chaos: FAILED")
        for problem in problems[:20]:
            print(f"  - {problem}")
        print(f"  (daemon log and ledger kept in {folder})")
        return 1
    print(
        "chaos: every file done, exactly one media each with its exact (last) bytes; ledger intact"
    )
    if not args.keep:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that atexit runs
    return run(parse(argv))


if __name__ == "__main__":
    os.environ.pop("INGESTD_CONFIG", None)
    raise SystemExit(main())
