#!/usr/bin/env python3
"""The status page under a flood: does it slow the uploads?

    python benchmarks/page_flood.py                  # 512 MiB, 3 runs quiet, 3 flooded
    python benchmarks/page_flood.py --mb 256 --runs 2 --clients 8 --slow 200
    python benchmarks/page_flood.py --bandwidth ""   # no limit: loopback, CPU-bound

The daemon runs with `web.listen`, uploading to a sink that discards bytes as fast as the
kernel delivers them (benchmarks/sink.py: the client is what is measured) and asking the
sandbox for the rest; by default at 100 MiB/s (`ingest.upload_bandwidth`), a fast network's
pace: does the daemon keep it while the page is flooded? Without a limit, loopback uploads
are CPU-bound, and the flood's own client processes compete for the same two cores.

Each run drops a file and takes its upload time from the ledger's own
events (entering `uploading`, then `processing`). Flooded runs add, from other processes,
`--clients` clients asking `/` and `/api/status.json` as fast as they get answers, and
`--slow` slowloris connections that send one header line every 5 s and never finish.
Prints the median upload time and MiB/s for both, the page's answers per second during the
flood, whether the page still answered a fresh request, and the daemon's CPU seconds.
Loopback only; every loop is bounded by --runs and the upload's own end.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import Daemon, wait_for

from ingestd.sandbox import Sandbox

SINK = Path(__file__).with_name("sink.py")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def client(base: str, stop: object, answers: object) -> None:
    paths = ["/", "/api/status.json"]
    n = 0
    while not stop.is_set():  # type: ignore[attr-defined]
        try:
            with urllib.request.urlopen(base + paths[n % 2], timeout=10) as answer:
                answer.read()
            with answers.get_lock():  # type: ignore[attr-defined]
                answers.value += 1  # type: ignore[attr-defined]
        except OSError:
            time.sleep(0.01)
        n += 1


def slowloris(port: int, count: int, stop: object) -> None:
    sockets = []
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            sockets.append(sock)
        except OSError:
            break
    while not stop.wait(5):  # type: ignore[attr-defined]
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.sendall(b"X-Slow: 1\r\n")


def upload_seconds(daemon: Daemon, name: str) -> float:
    rows = daemon.query(
        "SELECT e.to_state, e.at FROM events e JOIN jobs j ON j.id = e.job_id "
        f"WHERE j.path LIKE '%/{name}' AND e.to_state IN ('uploading', 'processing') ORDER BY e.id"
    )
    began = next(at for state, at in rows if state == "uploading")
    ended = next(at for state, at in rows if state == "processing")
    return ended - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument(
        "--bandwidth",
        default="100M",
        help="ingest.upload_bandwidth: a network's pace (empty: loopback's, CPU-bound)",
    )
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="ingestd-flood-"))
    sink_port, page_port = free_port(), free_port()
    sink = subprocess.Popen([sys.executable, str(SINK), "--port", str(sink_port)])
    sandbox = Sandbox(token=None, any_token=True, processing_seconds=0.5).start()
    base = f"http://127.0.0.1:{page_port}"
    daemon = Daemon(
        folder,
        sandbox,
        wistia={"upload_url": f"http://127.0.0.1:{sink_port}/", "upload_timeout_seconds": 600},
        ingest={"settle_seconds": 0.5, "workers": 1, "upload_bandwidth": args.bandwidth},
        web={"listen": f"127.0.0.1:{page_port}"},
    ).start()
    source = folder / "source.bin"
    with open(source, "wb") as out:
        for _ in range(args.mb):
            out.write(os.urandom(1024 * 1024))
    results: dict[str, list[float]] = {"quiet": [], "flooded": []}
    rates: list[float] = []
    answered_under_flood = []
    try:
        wait_for(lambda: _answers(base), 30, "the page")
        for run in range(args.runs * 2):
            flooded = run % 2 == 1
            stop = multiprocessing.Event()
            answers = multiprocessing.Value("i", 0)
            workers = []
            if flooded:
                workers = [
                    multiprocessing.Process(target=client, args=(base, stop, answers))
                    for _ in range(args.clients)
                ]
                workers.append(
                    multiprocessing.Process(target=slowloris, args=(page_port, args.slow, stop))
                )
                for worker in workers:
                    worker.start()
                time.sleep(2)
            name = f"run-{run}.mp4"
            started = time.monotonic()
            os.link(source, daemon.watch / name)
            wait_for(
                lambda n=name: daemon.query(
                    f"SELECT 1 FROM jobs WHERE path LIKE '%/{n}' "
                    "AND state NOT IN ('settling', 'queued', 'uploading')"
                ),
                600,
                "the upload",
            )
            if flooded:
                rates.append(answers.value / (time.monotonic() - started + 2))
                answered_under_flood.append(_answers(base))
                stop.set()
                for worker in workers:
                    worker.join(10)
                    if worker.is_alive():
                        worker.kill()
            results["flooded" if flooded else "quiet"].append(upload_seconds(daemon, name))
        cpu = daemon.cpu_seconds()
    finally:
        daemon.stop()
        sandbox.stop()
        sink.terminate()
    pace = f"limited to {args.bandwidth}/s" if args.bandwidth else "no limit"
    print(
        f"{args.mb} MiB upload ({pace}), {args.runs} runs each; flood: {args.clients} "
        f"clients + {args.slow} slowloris connections"
    )
    print("| run | median upload s | MiB/s |")
    print("| --- | --- | --- |")
    for kind, seconds in results.items():
        median = statistics.median(seconds)
        print(f"| {kind} | {median:.2f} | {args.mb / median:.0f} |")
    ratio = statistics.median(results["flooded"]) / statistics.median(results["quiet"])
    print(f"flooded / quiet upload time: {ratio:.3f}")
    print(
        f"the page answered {statistics.median(rates):.0f} requests/s during the flood; "
        f"a fresh request during the flood answered: {all(answered_under_flood)}"
    )
    print(f"daemon CPU seconds over all runs: {cpu:.1f}")
    return 0


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/api/status.json", timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
