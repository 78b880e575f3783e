#!/usr/bin/env python3
"""The video-limit hold: how soon uploading resumes once the account has room, and how many
bytes the daemon uploads in vain while it is full.

    python benchmarks/hold.py                      # both modes, the limit lifted 90 s in
    python benchmarks/hold.py --held 200 --mb 50

Each mode runs the daemon with the default probe settings (`probe_min_seconds` 60, growing to
`probe_max_seconds`) against a fresh sandbox. Two small files fill the account; three files of
--mb MiB each then wait under the hold. After --held seconds the account gets room, and the
benchmark measures the time from that moment to the first upload Wistia accepts, and counts
the bytes of every upload refused while the account was full.

- `account`: a media limit account.json shows (`videoLimit`): while `mediaCount >= videoLimit`
  the probe is that cheap request, every 10 s, and no upload is sent (the daemon today);
- `upload-probes`: a storage limit account.json cannot show: each probe is an upload of the
  smallest waiting file on the growing interval. This is also exactly how every hold was
  probed before issue 21 (then: 59 s to resume in the acceptance run, one upload per probe),
  so it is the reference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import Daemon, wait_for

from ingestd.sandbox import Sandbox

SMALL = 40_000  # the two files that fill the account


def run(mode: str, held: float, mib: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix=f"ingestd-hold-{mode}-"))
    sandbox = Sandbox(token=None, any_token=True, processing_seconds=1.0).start()
    if mode == "account":
        sandbox.faults.update(video_limit=2)
    else:
        sandbox.faults.update(storage_limit=2 * SMALL)
    daemon = Daemon(folder, sandbox, ingest={"settle_seconds": 0.5, "workers": 3}).start()
    try:
        for n in range(2):
            (daemon.watch / f"small{n}.mp4").write_bytes(bytes([n]) * SMALL)
        wait_for(
            lambda: daemon.query("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0] >= 2,
            timeout=60,
            what="the small files done",
        )
        for n in range(3):
            (daemon.watch / f"big{n}.mp4").write_bytes(bytes([10 + n]) * (mib + n) * 1024 * 1024)
        wait_for(
            lambda: daemon.query("SELECT count(*) FROM hold")[0][0] == 1,
            timeout=120,
            what="the hold",
        )
        held_at = time.time()
        time.sleep(held)  # the account stays full this long
        if mode == "account":
            sandbox.faults.update(video_limit=None)
        else:
            sandbox.faults.update(storage_limit=None)
        lifted = time.time()
        wait_for(
            lambda: any(
                r.is_upload and r.status == 200 and r.started >= lifted for r in sandbox.records
            ),
            timeout=3600 + 120,
            what="the first upload after the lift",
        )
        resumed = min(
            r.started
            for r in sandbox.records
            if r.is_upload and r.status == 200 and r.started >= lifted
        )
    finally:
        daemon.stop()
        sandbox.stop()
    # Refused while held: after the hold began (the refusal that began it is how it is found).
    refused = [
        r
        for r in sandbox.records
        if r.is_upload and r.status == 400 and held_at <= r.started < lifted
    ]
    in_vain = sum(r.files.get("file", {}).get("size", 0) for r in refused)
    looks = [
        r for r in sandbox.records if r.path == "/v1/account.json" and held_at <= r.started < lifted
    ]
    return {
        "resume_seconds": resumed - lifted,
        "refused_uploads": len(refused),
        "refused_mib": in_vain / 1024 / 1024,
        "looks": len(looks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=float, default=90.0, help="seconds the account stays full")
    parser.add_argument("--mb", type=int, default=20, help="MiB of each waiting file")
    parser.add_argument("--modes", nargs="+", default=["account", "upload-probes"])
    args = parser.parse_args()
    results = {mode: run(mode, args.held, args.mb) for mode in args.modes}
    print(f"hold: full for {args.held:.0f} s, 3 files of {args.mb}+ MiB waiting\n")
    print(
        f"{'mode':<15} {'room -> upload':>15} {'refused uploads':>16} {'MiB in vain':>12} "
        f"{'looks':>6}"
    )
    for mode, r in results.items():
        print(
            f"{mode:<15} {r['resume_seconds']:>13.1f} s {r['refused_uploads']:>16d} "
            f"{r['refused_mib']:>12.1f} {r['looks']:>6d}"
        )


if __name__ == "__main__":
    main()
