#!/usr/bin/env python3
"""Upload throughput and memory: ingestd's client against curl, same file, same server.

    python benchmarks/upload.py                 # a 1 GiB file, 3 runs each
    python benchmarks/upload.py --mb 256 --runs 5

Starts the built-in sandbox in its own process on loopback, writes a file of random bytes,
then uploads it with ingestd's WistiaClient (in a child process, so its peak memory is its
own) and with `curl -F file=@...` exactly as Wistia's Upload API page shows. Prints the wall
time, throughput and peak resident memory of each uploader, and checks that the sandbox
received the exact bytes every time. Loopback only; bounded by --runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

TOKEN = "bench-token"

CLIENT = """
import os, sys, threading
from ingestd.config import WistiaSettings
from ingestd.wistia import RateLimiter, WistiaClient
url = sys.argv[1]
settings = WistiaSettings(upload_url=url, api_url=url + "v1/", upload_timeout_seconds=600)
client = WistiaClient(settings, sys.argv[3], RateLimiter(600), threading.Event())
fd = os.open(sys.argv[2], os.O_RDONLY)
media = client.upload_file(fd, "bench.mp4", {"name": "bench.mp4"}, lambda sent: None)
print(media.hashed_id)
"""


# A fresh process whose only child is the uploader: its RUSAGE_CHILDREN peak is the uploader's.
MEASURE = """
import resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measure(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak resident memory (KiB) of one run of `command`."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {result.stderr[-500:]}")
    seconds, peak = result.stdout.split()
    return float(seconds), int(peak)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="file size in MiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args(argv)
    if shutil.which("curl") is None:
        print("curl is needed for the reference run")
        return 1

    folder = Path(tempfile.mkdtemp(prefix="ingestd-bench-"))
    media = folder / "bench.mp4"
    digest = hashlib.sha256()
    with open(media, "wb") as out:
        for _ in range(args.mb):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            out.write(chunk)
    expected = digest.hexdigest()
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ingestd",
            "sandbox",
            "--port",
            str(args.port),
            "--token",
            TOKEN,
            "--processing-seconds",
            "1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = sandbox.stdout.readline().rsplit(" ", 1)[1].strip()
    results: dict[str, list[tuple[float, int]]] = {"curl": [], "ingestd": []}
    try:
        commands = {
            "curl": [
                "curl",
                "-s",
                "-f",
                "-o",
                "/dev/null",
                "-H",
                f"Authorization: Bearer {TOKEN}",
                "-F",
                "name=bench.mp4",
                "-F",
                f"file=@{media}",
                url,
            ],
            "ingestd": [sys.executable, "-c", CLIENT, url, str(media), TOKEN],
        }
        for _ in range(args.runs):
            for name, command in commands.items():
                results[name].append(measure(command))
        with urllib.request.urlopen(url + "_sandbox/records") as answer:
            records = json.load(answer)
        received = [r["files"]["file"]["sha256"] for r in records if r.get("files")]
        assert received and all(h == expected for h in received), "bytes differ!"
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)

    print(
        f"upload of a {args.mb} MiB file to the sandbox on loopback, {args.runs} runs each "
        f"(median); every upload arrived with the exact bytes"
    )
    print(f"{'uploader':<10} {'seconds':>8} {'MiB/s':>8} {'peak RSS MiB':>13}")
    for name, runs in results.items():
        seconds = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs) / 1024
        print(f"{name:<10} {seconds:>8.2f} {args.mb / seconds:>8.1f} {peak:>13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
