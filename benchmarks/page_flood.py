#!/usr/bin/env python3
"""The status page and /metrics under a flood: does it slow the uploads?

    python benchmarks/page_flood.py                  # 512 MiB, 3 runs quiet, 3 flooded
    python benchmarks/page_flood.py --mb 256 --runs 2 --clients 8 --idle 5000
    python benchmarks/page_flood.py --bandwidth ""   # no limit: loopback, CPU-bound

The daemon runs with `web.listen` and `metrics.listen`, uploading to a sink that discards
bytes as fast as the
kernel delivers them (benchmarks/sink.py: the client is what is measured) and asking the
sandbox for the rest; by default at 100 MiB/s (`ingest.upload_bandwidth`), a fast network's
pace: does the daemon keep it while the page is flooded? Without a limit, loopback uploads
are CPU-bound, and the flood's own client processes compete for the same two cores.

Each run drops a file and takes its upload time from the ledger's own
events (entering `uploading`, then `processing`). Flooded runs add, from other processes,
`--clients` clients asking `/`, `/api/status.json` and `/metrics` as fast as they get
answers, and `--idle` connections on EACH of the two ports that send a request line, then a
header line every 5 s, and never finish (opened without waiting: those the server does not
accept wait in the kernel's queue). The daemon runs under LimitNOFILE=4096, as in its unit.
Prints the median upload time and MiB/s for both, the answers per second during the flood,
whether each port still answered a fresh request, the daemon's most open descriptors during
the flood, and its CPU seconds. Loopback only; every loop is bounded by --runs and the
upload's own end.
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


def client(urls: list[str], stop: object, answers: object) -> None:
    n = 0
    while not stop.is_set():  # type: ignore[attr-defined]
        try:
            with urllib.request.urlopen(urls[n % len(urls)], timeout=10) as answer:
                answer.read()
            with answers.get_lock():  # type: ignore[attr-defined]
                answers.value += 1  # type: ignore[attr-defined]
        except OSError:
            time.sleep(0.01)
        n += 1


def idle(ports: list[int], count: int, stop: object) -> None:
    """`count` connections to each port: a request line, then a header line every 5 s."""
    import resource
    import selectors

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sockets = []
    for port in ports:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            sockets.append(sock)
    started: set[socket.socket] = set()
    with selectors.DefaultSelector() as ready:
        for sock in sockets:
            ready.register(sock, selectors.EVENT_WRITE)
        while not stop.wait(0.5):  # type: ignore[attr-defined]
            for key, _ in ready.select(timeout=0):
                with contextlib.suppress(OSError):
                    key.fileobj.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # type: ignore[union-attr]
                    started.add(key.fileobj)  # type: ignore[arg-type]
                ready.unregister(key.fileobj)
            if int(time.monotonic()) % 5 == 0:
                for sock in started:
                    with contextlib.suppress(OSError):
                        sock.send(b"X-Slow: 1\r\n")
    for sock in sockets:
        sock.close()


def open_descriptors(daemon: Daemon) -> int:
    assert daemon.proc is not None
    return len(os.listdir(f"/proc/{daemon.proc.pid}/fd"))


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
    parser.add_argument("--idle", type=int, default=5000, help="idle connections per port")
    parser.add_argument(
        "--bandwidth",
        default="100M",
        help="ingest.upload_bandwidth: a network's pace (empty: loopback's, CPU-bound)",
    )
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="ingestd-flood-"))
    sink_port, page_port, metrics_port = free_port(), free_port(), free_port()
    sink = subprocess.Popen([sys.executable, str(SINK), "--port", str(sink_port)])
    sandbox = Sandbox(token=None, any_token=True, processing_seconds=0.5).start()
    base = f"http://127.0.0.1:{page_port}"
    daemon = Daemon(
        folder,
        sandbox,
        wistia={"upload_url": f"http://127.0.0.1:{sink_port}/", "upload_timeout_seconds": 600},
        ingest={"settle_seconds": 0.5, "workers": 1, "upload_bandwidth": args.bandwidth},
        web={"listen": f"127.0.0.1:{page_port}"},
        metrics={"listen": f"127.0.0.1:{metrics_port}"},
    ).start(open_files=4096)
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    urls = [base + "/", base + "/api/status.json", metrics]
    source = folder / "source.bin"
    with open(source, "wb") as out:
        for _ in range(args.mb):
            out.write(os.urandom(1024 * 1024))
    results: dict[str, list[float]] = {"quiet": [], "flooded": []}
    rates: list[float] = []
    answered_under_flood: list[bool] = []
    descriptors = [0]  # the most the daemon held open during a flooded run

    def uploaded(name: str) -> bool:
        descriptors[0] = max(descriptors[0], open_descriptors(daemon))
        return bool(
            daemon.query(
                f"SELECT 1 FROM jobs WHERE path LIKE '%/{name}' "
                "AND state NOT IN ('settling', 'queued', 'uploading')"
            )
        )

    try:
        wait_for(lambda: _answers(base + "/api/status.json"), 30, "the page")
        wait_for(lambda: _answers(metrics), 30, "the metrics")
        for run in range(args.runs * 2):
            flooded = run % 2 == 1
            stop = multiprocessing.Event()
            answers = multiprocessing.Value("i", 0)
            workers = []
            if flooded:
                workers = [
                    multiprocessing.Process(target=client, args=(urls, stop, answers))
                    for _ in range(args.clients)
                ]
                workers.append(
                    multiprocessing.Process(
                        target=idle, args=([page_port, metrics_port], args.idle, stop)
                    )
                )
                for worker in workers:
                    worker.start()
                time.sleep(2)
            name = f"run-{run}.mp4"
            started = time.monotonic()
            os.link(source, daemon.watch / name)
            wait_for(lambda n=name: uploaded(n), 600, "the upload")
            if flooded:
                rates.append(answers.value / (time.monotonic() - started + 2))
                answered_under_flood.append(_answers(base + "/api/status.json"))
                answered_under_flood.append(_answers(metrics))
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
        f"clients + {args.idle} idle connections on each of the page and metrics ports"
    )
    print("| run | median upload s | MiB/s |")
    print("| --- | --- | --- |")
    for kind, seconds in results.items():
        median = statistics.median(seconds)
        print(f"| {kind} | {median:.2f} | {args.mb / median:.0f} |")
    ratio = statistics.median(results["flooded"]) / statistics.median(results["quiet"])
    print(f"flooded / quiet upload time: {ratio:.3f}")
    print(
        f"the page and metrics answered {statistics.median(rates):.0f} requests/s during the "
        f"flood; a fresh request to each during the flood answered: {all(answered_under_flood)}"
    )
    print(f"the daemon's open descriptors during the flood: at most {descriptors[0]}")
    print(f"daemon CPU seconds over all runs: {cpu:.1f}")
    return 0


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
