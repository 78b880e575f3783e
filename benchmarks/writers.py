#!/usr/bin/env python3
"""What the completeness checks cost with 10,000 settling files.

    python benchmarks/writers.py                   # 10,000 files, 10 writers of 500 each
    python benchmarks/writers.py --files 20000 --writers 20

Makes the files (small MP4s) in a temporary folder and starts writer processes that keep some
of them open for writing, as stalled copies would. Then measures, with ingestd's own code:

- the open-writer pass (`writers.find_writers`): one pass over /proc for all the files at once,
  as the settle step runs it once per round; the median of several passes;
- the reference: one /proc pass per file, as a per-file check (`fuser FILE`, or calling the pass
  for one file at a time) would cost; measured on a sample and scaled to all the files;
- a read lease per file (open, F_SETLEASE, release, close), asked for each file it reads;
- the container check per file (its box headers).

It prints how much of one core the pass takes at one round per second (a stalled writer is
looked at again once a settle period, at least a second).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingestd.pipeline.watch import containers, writers

HOLDER = """
import os, sys
fds = [os.open(p, os.O_WRONLY | os.O_APPEND) for p in sys.argv[1:]]
print("open", flush=True)
sys.stdin.read()
"""
MP4 = (
    b"\x00\x00\x00\x14ftypisom\x00\x00\x02\x00isom"
    + b"\x00\x00\x04\x08mdat"
    + bytes(1024)
    + b"\x00\x00\x00\x08moov"
)


def make_files(folder: Path, count: int) -> list[Path]:
    paths = []
    for n in range(count):
        path = folder / f"clip-{n:05d}.mp4"
        path.write_bytes(MP4)
        paths.append(path)
    return paths


def start_writers(paths: list[Path], writers_count: int, each: int) -> list[subprocess.Popen]:
    held = []
    for w in range(writers_count):
        chunk = paths[w * each : (w + 1) * each]
        child = subprocess.Popen(
            [sys.executable, "-c", HOLDER, *map(str, chunk)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdout.readline() == "open\n"
        held.append(child)
    return held


def timed(action, repeat: int) -> tuple[float, object]:
    """The median seconds of `repeat` runs of `action`, and its last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--writers", type=int, default=10, help="processes holding files open")
    parser.add_argument("--each", type=int, default=500, help="files each writer holds open")
    parser.add_argument("--sample", type=int, default=20, help="files for the per-file reference")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="ingestd-writers-"))
    held: list[subprocess.Popen] = []
    try:
        paths = make_files(folder, args.files)
        held = start_writers(paths, args.writers, args.each)
        ids = set()
        for path in paths:
            st = os.stat(path)
            ids.add((st.st_dev, st.st_ino))

        one_pass, found = timed(lambda: writers.find_writers(ids, under=folder), 9)
        assert isinstance(found, writers.ProcPass)
        descriptors = sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in _pids())
        sample = list(ids)[: args.sample]

        def one_by_one() -> list[writers.ProcPass]:
            return [writers.find_writers({one}, under=folder) for one in sample]

        per_file, _ = timed(one_by_one, 3)
        per_file_all = per_file / len(sample) * len(ids)

        signal.signal(signal.SIGIO, signal.SIG_IGN)  # as the daemon does (writers.allow_leases)

        def leases() -> int:
            written = 0
            for path in paths:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                try:
                    written += writers.open_for_writing(fd)
                finally:
                    os.close(fd)
            return written

        lease_time, lease_written = timed(leases, 3)

        def container_checks() -> int:
            cut = 0
            for path in paths:
                fd = os.open(path, os.O_RDONLY)
                try:
                    cut += containers.problem(fd, os.fstat(fd).st_size) is not None
                finally:
                    os.close(fd)
            return cut

        container_time, cut = timed(container_checks, 3)

        print(f"settling files: {len(ids):,}; held open for writing by {args.writers} processes")
        print(
            f"/proc: {found.processes} processes readable, {found.unreadable} not, "
            f"about {descriptors:,} descriptors in all"
        )
        expected = len(held) * args.each
        print(f"writers found by the pass: {len(found.writers):,} (expected {expected:,})")
        print()
        print("| what | time | per file |")
        print("| --- | --- | --- |")
        print(
            f"| one /proc pass for all {len(ids):,} files (ingestd) | {one_pass * 1000:.1f} ms | "
            f"{one_pass / len(ids) * 1e6:.2f} µs |"
        )
        print(
            f"| reference: one /proc pass per file (scaled from {len(sample)}) | "
            f"{per_file_all:.1f} s | {per_file / len(sample) * 1000:.2f} ms |"
        )
        print(
            f"| a read lease per file ({lease_written:,} said written) | "
            f"{lease_time * 1000:.1f} ms | {lease_time / len(paths) * 1e6:.2f} µs |"
        )
        print(
            f"| the container check per file ({cut:,} cut) | {container_time * 1000:.1f} ms "
            f"| {container_time / len(paths) * 1e6:.2f} µs |"
        )
        for child in held:
            _close(child)
        held = []
        quiet_pass, quiet = timed(lambda: writers.find_writers(ids, under=folder), 9)
        assert isinstance(quiet, writers.ProcPass) and not quiet.writers
        print(
            f"| one /proc pass for all {len(ids):,} files, the writers gone | "
            f"{quiet_pass * 1000:.1f} ms | {quiet_pass / len(ids) * 1e6:.2f} µs |"
        )
        print()
        print(
            f"the pass at one round per second: {one_pass * 100:.1f} % of a core; "
            f"one pass per file would be {per_file_all / one_pass:,.0f} times as much"
        )
    finally:
        for child in held:
            _close(child)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def _close(child: subprocess.Popen) -> None:
    if child.stdin is not None:
        child.stdin.close()
    child.wait(timeout=10)


def _pids() -> list[str]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit() and os.access(f"/proc/{name}/fd", os.R_OK):
            pids.append(name)
    return pids


if __name__ == "__main__":
    raise SystemExit(main())
