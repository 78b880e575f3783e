#!/usr/bin/env python3
"""Adopting what Wistia already has: a first start on a folder whose files are all in Wistia
already (a lost ledger, a new server, a library uploaded by hand).

    python benchmarks/adopt.py                  # 1,000 files, both modes
    python benchmarks/adopt.py --files 300 --others 2000

Both modes put --files small files in the watch folder, each already in the sandbox as a
media of the same name and size (made "by hand"), among --others medias that are not these
files, then start the daemon on a new ledger and time it until every job is done:

- `adopt`: the daemon today (`ingest.adopt = true`): the account is listed (pages of 100) and
  every file is found there: no upload, at most (medias listed / 100) + 10 requests;
- `upload`: `ingest.adopt = false`, which is how every first start worked before issue 23 (the
  reference): every file is uploaded again, a duplicate of what Wistia had.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from common import Daemon, wait_for

from ingestd.sandbox import Sandbox

OLD = 1_700_000_000  # the files and the medias were made long before the ledger


def run(mode: str, files: int, others: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix=f"ingestd-adopt-{mode}-"))
    sandbox = Sandbox(token=None, any_token=True, processing_seconds=0.5).start()
    daemon = Daemon(
        folder,
        sandbox,
        ingest={"settle_seconds": 0.5, "workers": 4, "adopt": mode == "adopt"},
    )
    rng = random.Random(7)
    for n in range(files):
        clip = daemon.watch / f"clip{n:05}.mp4"
        data = rng.randbytes(4_000 + n)
        clip.write_bytes(data)
        sandbox.add_media(clip.name, data=data, created=OLD + n)
    for n in range(others):
        sandbox.add_media(f"other{n:05}.mp4", size=1_000 + n, created=OLD)
    stamp = time.time() - 3600  # last modified an hour before the ledger was made
    for clip in daemon.watch.iterdir():
        os.utime(clip, (stamp, stamp))
    medias = len(sandbox.store.medias)
    started = time.time()
    daemon.start()
    try:
        wait_for(
            lambda: daemon.query("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0] >= files,
            timeout=1800,
            what="every file done",
        )
        seconds = time.time() - started
    finally:
        daemon.stop()
        sandbox.stop()
    requests = sandbox.records
    return {
        "seconds": seconds,
        "uploads": sum(1 for r in requests if r.is_upload),
        "requests": len(requests),
        "listing": sum(
            1
            for r in requests
            if r.path == "/v1/medias.json" and r.query.get("sort_by") == "created"
        ),
        "bound": medias / 100 + 10,
        "duplicates": len(sandbox.store.medias) - medias,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--others", type=int, default=500, help="medias that are not the files")
    parser.add_argument("--modes", nargs="+", default=["adopt", "upload"])
    args = parser.parse_args()
    results = {mode: run(mode, args.files, args.others) for mode in args.modes}
    print(
        f"first start: {args.files} files already in Wistia among "
        f"{args.files + args.others} medias\n"
    )
    print(
        f"{'mode':<8} {'to all done':>12} {'uploads':>8} {'requests':>9} {'listing':>8} "
        f"{'bound':>6} {'duplicates':>11}"
    )
    for mode, r in results.items():
        print(
            f"{mode:<8} {r['seconds']:>10.1f} s {r['uploads']:>8.0f} {r['requests']:>9.0f} "
            f"{r['listing']:>8.0f} {r['bound']:>6.0f} {r['duplicates']:>11.0f}"
        )


if __name__ == "__main__":
    main()
