#!/usr/bin/env python3
"""Upload throughput, CPU and memory: ingestd's client against curl, same file, same server.

    python benchmarks/upload.py                 # a 1 GiB file, 3 runs each, both servers
    python benchmarks/upload.py --mb 256 --runs 5

Writes a file of random bytes, then uploads it with ingestd's WistiaClient (in a child
process, so its peak memory is its own; its wall and CPU time are those of the upload call,
without Python's start-up) and with `curl -F file=@...` exactly as Wistia's Upload API page
shows (curl's whole process), to two servers on loopback:

- the built-in sandbox, which parses the multipart body in Python and keeps the file: the
  exact bytes it received are checked every time;
- a sink (benchmarks/sink.py) that reads and discards the body as fast as the kernel delivers
  it, so that the client, not the server, is what is measured.

Prints the median wall time, throughput, CPU seconds and peak RSS of each uploader, and
ingestd's ratios to curl. Loopback only; bounded by --runs.
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
SINK = Path(__file__).with_name("sink.py")

# The upload itself is timed inside the process: Python's start-up and imports (a third of a
# second of CPU) are not upload work, and curl's own start-up is a few milliseconds.
CLIENT = """
import os, resource, sys, threading, time
from ingestd.config.settings import WistiaSettings
from ingestd.wistia.client import WistiaClient
from ingestd.wistia.limiter import RateLimiter
url = sys.argv[1]
settings = WistiaSettings(upload_url=url, api_url=url + "v1/", upload_timeout_seconds=600)
client = WistiaClient(settings, sys.argv[3], RateLimiter(600), threading.Event())
fd = os.open(sys.argv[2], os.O_RDONLY)
usage, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
media = client.upload_file(fd, "bench.mp4", {"name": "bench.mp4"}, lambda sent: None)
wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
print(wall, cpu, file=sys.stderr)
"""

# A fresh process whose only child is the uploader: its RUSAGE_CHILDREN is the uploader's.
MEASURE = """
import resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
own = done.stderr.split()  # the uploader's own figures, when it gives them
if len(own) == 2:
    wall, cpu = float(own[0]), float(own[1])
else:
    cpu = usage.ru_utime + usage.ru_stime
print(wall, cpu, usage.ru_maxrss)
"""


def measure(command: list[str]) -> tuple[float, float, int]:
    """Wall seconds and CPU seconds of the upload, and peak resident memory (KiB)."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {result.stderr[-500:]}")
    wall, cpu, peak = result.stdout.split()
    return float(wall), float(cpu), int(peak)


def start(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    """A server in its own process, and the URL it printed on its first line."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    url = process.stdout.readline().rsplit(" ", 1)[1].strip()
    return process, url


def write_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(mib):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def commands(url: str, media: Path) -> dict[str, list[str]]:
    return {
        "curl -F": [
            "curl", "-s", "-f", "-o", "/dev/null",
            "-H", f"Authorization: Bearer {TOKEN}",
            "-F", "name=bench.mp4", "-F", f"file=@{media}", url,
        ],
        "ingestd": [sys.executable, "-c", CLIENT, url, str(media), TOKEN],
    }  # fmt: skip


def run(url: str, media: Path, runs: int) -> dict[str, list[tuple[float, float, int]]]:
    results: dict[str, list[tuple[float, float, int]]] = {"curl -F": [], "ingestd": []}
    for _ in range(runs):
        for name, command in commands(url, media).items():
            results[name].append(measure(command))
    return results


def report(server: str, mib: int, results: dict[str, list[tuple[float, float, int]]]) -> None:
    print(f"\n{server}: a {mib} MiB file, median of {len(results['curl -F'])} runs")
    print("| uploader | seconds | MiB/s | CPU s | CPU s per GiB | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        peak = max(r[2] for r in runs) / 1024
        medians[name] = (wall, cpu)
        print(
            f"| {name} | {wall:.2f} | {mib / wall:.1f} | {cpu:.2f} | {cpu / mib * 1024:.2f} "
            f"| {peak:.1f} |"
        )
    (curl_wall, curl_cpu), (our_wall, our_cpu) = medians["curl -F"], medians["ingestd"]
    print(
        f"ingestd / curl: throughput {curl_wall / our_wall:.2f}, "
        f"CPU per GiB {our_cpu / curl_cpu:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="file size in MiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["sandbox", "sink"], default=None)
    args = parser.parse_args(argv)
    if shutil.which("curl") is None:
        print("curl is needed for the reference run")
        return 1

    folder = Path(tempfile.mkdtemp(prefix="ingestd-bench-"))
    media = folder / "bench.mp4"
    expected = write_file(media, args.mb)
    try:
        if args.only in (None, "sink"):
            sink, url = start([sys.executable, str(SINK)])
            try:
                report("sink (reads and discards)", args.mb, run(url, media, args.runs))
            finally:
                sink.terminate()
                sink.wait(timeout=10)
        if args.only in (None, "sandbox"):
            sandbox, url = start(
                [sys.executable, "-m", "ingestd", "sandbox", "--port", "0",
                 "--token", TOKEN, "--processing-seconds", "1"]
            )  # fmt: skip
            try:
                results = run(url, media, args.runs)
                with urllib.request.urlopen(url + "_sandbox/records") as answer:
                    records = json.load(answer)
                received = [r["files"]["file"]["sha256"] for r in records if r.get("files")]
                assert received and all(h == expected for h in received), "bytes differ!"
                report("the sandbox (every upload checked: exact bytes)", args.mb, results)
            finally:
                sandbox.terminate()
                sandbox.wait(timeout=10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
