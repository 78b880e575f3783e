"""The commands a new user runs first: `run --sandbox`, `status`, `check`, `sandbox` with curl."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ingestd.core.jobs import JobState
from tests.conftest import DaemonProcess, sha256, wait_until, write_media


def ingestd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGESTD_")}
    return subprocess.run(
        [sys.executable, "-m", "ingestd", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_run_sandbox_needs_no_config_and_status_finds_its_ledger(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGESTD_")}
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestd", "run", "--sandbox", "--processing-seconds", "0.3"],
        cwd=tmp_path,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until((tmp_path / "inbox").is_dir, what="./inbox created")
        write_media(tmp_path / "inbox" / "hello.mp4", seed=1)

        def done() -> bool:
            result = ingestd("status", "--json", cwd=tmp_path)
            if result.returncode != 0:
                return False
            return json.loads(result.stdout)["counts"]["done"] == 1

        try:
            wait_until(done, timeout=60, interval=0.5, what="sandbox upload done")
        except AssertionError:
            status = ingestd("status", cwd=tmp_path)
            raise AssertionError(f"{status.stdout}{status.stderr}\n{log.read_text()}") from None
        assert (tmp_path / ".ingestd" / "ledger.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=12) == 0


def test_check_passes_against_the_sandbox_and_names_a_refused_token(
    daemon_factory,
) -> None:
    daemon: DaemonProcess = daemon_factory()
    daemon.start(wait_ready=True)
    result = daemon.cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "token: accepted by Wistia (account: ingestd sandbox)" in result.stdout
    assert "FAIL" not in result.stdout
    daemon.stop()

    daemon.config["wistia"]["api_token"] = "wrong-token"
    daemon.start(wait_ready=True)
    result = daemon.cli("check")
    assert result.returncode == 1
    assert "FAIL  token: Wistia refused the API token (HTTP 401)" in result.stdout
    assert "wrong-token" not in result.stdout


def test_upload_progress_is_visible_in_status_while_uploading(daemon_factory) -> None:
    daemon = daemon_factory().start()
    daemon.sandbox.faults.update(slow_upload_seconds=3)
    clip = daemon.watch / "big.mp4"
    write_media(clip, 3_000_000, seed=2)
    daemon.wait_state(clip, JobState.UPLOADING)

    def sent_everything() -> dict | None:
        job = daemon.status_json()["jobs"][0]
        return job if job["state"] == "uploading" and job["progress"] == 1.0 else None

    shown = wait_until(sent_everything, what="progress 100% while awaiting the answer")
    assert shown["bytes_sent"] == 3_000_000
    assert "100% of 3.0 MB" in daemon.cli("status").stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_standalone_sandbox_accepts_the_upload_pages_curl_commands(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGESTD_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestd", "sandbox", "--port", "0", "--token", "devtoken"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        url = first.rsplit(" ", 1)[1].strip()
        clip = tmp_path / "clip.mp4"
        data = write_media(clip, 2_000_000, seed=3)
        auth = ["-H", "Authorization: Bearer devtoken"]
        upload = subprocess.run(
            ["curl", "-s", "-i", *auth, "-F", "name=Demo", "-F", f"file=@{clip}", url],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert "200 OK" in upload and '"name": "Demo"' in upload
        imported = subprocess.run(
            [
                "curl",
                "-s",
                "-i",
                *auth,
                "--data-urlencode",
                "url=https://bucket.s3.amazonaws.com/v.mp4?X-Amz-Signature=ab%2Fc&X-Amz-Expires=3600",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert "200 OK" in imported
        refused = subprocess.run(
            ["curl", "-s", "-i", "-F", f"file=@{clip}", url],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert "401 Unauthorized" in refused
        listing = subprocess.run(
            ["curl", "-s", url + "_sandbox/records"], capture_output=True, text=True, timeout=30
        ).stdout
        records = json.loads(listing)
        assert records[0]["files"]["file"]["sha256"] == sha256(data)
        assert records[1]["form"]["url"].endswith("X-Amz-Signature=ab%2Fc&X-Amz-Expires=3600")
        assert [r["auth"] for r in records] == ["bearer", "bearer", "none"]
        assert "devtoken" not in listing  # the records say how the token came, never what it is
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_standalone_sandbox_without_token_accepts_any_bearer_but_requires_one(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGESTD_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestd", "sandbox", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().rsplit(" ", 1)[1].strip()
        import httpx

        assert (
            httpx.get(
                url + "v1/account.json", headers={"Authorization": "Bearer whatever"}
            ).status_code
            == 200
        )
        assert httpx.get(url + "v1/account.json").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sandbox_faults_switch_over_http_as_the_readme_shows(sandbox) -> None:
    """`GET`/`POST /_sandbox/faults` (README, "The sandbox"): the switches are read and
    changed from another process; a bad change is refused whole and changes nothing."""
    import httpx

    url = sandbox.url + "_sandbox/faults"
    shown = httpx.get(url)
    assert shown.status_code == 200, shown.text
    assert shown.json()["video_limit"] is None

    changed = httpx.post(url, json={"video_limit": 3, "error_statuses": [502]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["video_limit"] == 3
    assert sandbox.faults.video_limit == 3
    assert sandbox.faults.error_statuses == (502,)

    refused = httpx.post(url, json={"video_limit": None, "latency": "slow"})
    assert refused.status_code == 400
    assert "latency" in refused.json()["error"]
    assert sandbox.faults.video_limit == 3  # nothing of a refused change applied
    assert httpx.post(url, json={"no_such_fault": 1}).status_code == 400
