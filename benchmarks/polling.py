#!/usr/bin/env python3
"""Polling cost: N medias in processing at once. How many requests per media, and how much of
the account's budget (600 requests a minute) did polling take?

    python benchmarks/polling.py                          # 100 files, 30 s processing, both ways
    python benchmarks/polling.py --files 300 --processing 120 --modes batch

Each mode runs the daemon with the default poll intervals against a fresh sandbox whose
medias take --processing seconds, drops N small files at once, and waits until every job is
`done`. Then it counts what the sandbox received: uploads, batch lists
(`GET /v1/medias.json?sort_by=updated`) and single-media polls (`GET /v1/medias/ID.json`).

- `batch`: the daemon as it runs by default (one list answers for every media in it);
- `one-by-one`: `ingest.batch_polling = false`, one request per media per poll (the reference).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import Daemon, wait_for

from ingestd.sandbox import Sandbox


def run(mode: str, files: int, processing: float) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix=f"ingestd-polling-{mode}-"))
    sandbox = Sandbox(token=None, any_token=True, processing_seconds=processing).start()
    ingest = {"settle_seconds": 0.5, "workers": 3}
    if mode == "one-by-one":
        ingest["batch_polling"] = False
    daemon = Daemon(folder, sandbox, ingest=ingest).start()
    try:
        started = time.monotonic()
        for n in range(files):
            (daemon.watch / f"clip{n:04d}.mp4").write_bytes(n.to_bytes(4, "big") * 2500)
        wait_for(
            lambda: daemon.query("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0] >= files,
            timeout=processing * 6 + 120,
            what="every job done",
        )
        minutes = (time.monotonic() - started) / 60
    finally:
        daemon.stop()
        sandbox.stop()
    records = sandbox.records
    uploads = sum(1 for r in records if r.is_upload)
    lists = sum(1 for r in records if r.path == "/v1/medias.json" and "sort_by" in r.query)
    singles = sum(1 for r in records if r.method == "GET" and r.path.startswith("/v1/medias/"))
    polls = lists + singles
    return {
        "minutes": minutes,
        "requests": len(records),
        "uploads": uploads,
        "lists": lists,
        "singles": singles,
        "per_media": len(records) / files,
        "poll_share": polls / minutes / 600,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--processing", type=float, default=30.0, help="seconds per media")
    parser.add_argument("--modes", nargs="+", default=["batch", "one-by-one"])
    args = parser.parse_args(argv)
    results = {mode: run(mode, args.files, args.processing) for mode in args.modes}
    print(f"{args.files} files dropped at once, {args.processing:g} s of processing each")
    print("| polling | requests | uploads | lists | single polls | per media | "
          "budget share of polls | minutes |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode, r in results.items():
        print(
            f"| {mode} | {r['requests']:.0f} | {r['uploads']:.0f} | {r['lists']:.0f} | "
            f"{r['singles']:.0f} | {r['per_media']:.2f} | {r['poll_share'] * 100:.1f} % | "
            f"{r['minutes']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
