"""The status page against the running daemon: over HTTP (what it lists and links, the JSON
API equal to `status --json`, escaping, basic auth, the non-loopback refusal) and in a real
browser (Debian's Chromium, driven by Selenium): it updates by itself while an upload moves,
a job reaching done appears with its link, and the filter works."""

from __future__ import annotations

import base64
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ingestd.core.jobs import JobState
from tests.conftest import TOKEN, DaemonProcess, wait_until, write_media

ACCOUNT = "https://sandbox.wistia.test"


def _get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str, Any]:
    """Status, body and headers (looked up in any letter case)."""
    request = urllib.request.Request(url)
    if auth is not None:
        pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {pair}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode(), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers


def _with_page(daemon_factory: Any, port: int, **overrides: Any) -> tuple[DaemonProcess, str]:
    web = {"listen": f"127.0.0.1:{port}", **overrides.pop("web", {})}
    daemon = daemon_factory(web=web, **overrides).start()
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _reachable(base), what="the status page up")
    return daemon, base


def _reachable(base: str) -> bool:
    try:
        return _get(base + "/api/status.json")[0] in (200, 401)
    except OSError:
        return False


def test_the_page_lists_done_uploading_held_and_failed_with_words_and_links(
    daemon_factory: Any, free_port: int
) -> None:
    daemon, base = _with_page(
        daemon_factory, free_port, ingest={"upload_bandwidth": "200K", "workers": 2}
    )
    done = daemon.watch / "Team" / "done.mp4"
    write_media(done, 30_000, seed=1)
    done_job = daemon.wait_state(done, JobState.DONE, timeout=30)
    (daemon.watch / "held.json").write_text('{"name": 5')
    write_media(daemon.watch / "held.mp4", 20_000, seed=2)
    (daemon.watch / "empty.mp4").write_bytes(b"")
    big = daemon.watch / "big.mp4"
    write_media(big, 4_000_000, seed=3)
    daemon.wait_state(daemon.watch / "held.mp4", JobState.HELD, timeout=30)
    daemon.wait_state(daemon.watch / "empty.mp4", JobState.FAILED, timeout=30)
    wait_until(lambda: (daemon.job_for(big) or done_job).bytes_sent, what="the upload moving")

    def page_shows_all() -> str | None:
        status, html, _ = _get(base + "/")
        ok = status == 200 and "big.mp4" in html and 'role="progressbar"' in html
        return (
            html if ok and "held.mp4" in html and f"/medias/{done_job.hashed_id}" in html else None
        )

    html = wait_until(page_shows_all, what="every job on the page")
    assert f'href="{ACCOUNT}/medias/{done_job.hashed_id}"' in html
    assert "uploading" in html and "of 4.0 MB" in html and "/s" in html  # bytes and speed
    assert "held.json" in html  # the held job's reason names the sidecar
    assert "waits for the problem above to be fixed" in html
    assert "empty file (0 bytes)" in html and "ingestd retry" in html  # what to do
    assert 'value="Team"' in html  # the folder filter
    _, filtered, _ = _get(base + "/?state=failed")
    assert "empty.mp4" in filtered and "big.mp4" not in filtered and "held.mp4" not in filtered
    _, in_team, _ = _get(base + "/?folder=Team")
    assert "done.mp4" in in_team and "empty.mp4" not in in_team
    assert TOKEN not in html
    for path in ("/static/status.css", "/static/status.js"):
        assert _get(base + path)[0] == 200  # shipped in the package: no CDN
    assert "://" not in html.split("<body")[0]  # no outside asset


def test_the_api_answers_exactly_what_status_json_prints(
    daemon_factory: Any, free_port: int
) -> None:
    daemon, base = _with_page(daemon_factory, free_port)
    clip = daemon.watch / "api.mp4"
    write_media(clip, seed=4)
    job = daemon.wait_state(clip, JobState.DONE, timeout=30)
    wait_until(
        lambda: json.loads(_get(base + "/api/status.json")[1])["counts"]["done"] == 1,
        what="the page's view caught up",
    )
    status, text, headers = _get(base + "/api/status.json")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(text) == daemon.status_json()
    status, one, _ = _get(base + f"/api/jobs/{job.id}.json")
    assert json.loads(one) == daemon.status_json(str(job.id))
    assert _get(base + "/api/jobs/999.json")[0] == 404
    request = urllib.request.Request(base + "/api/status.json", method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405  # read-only


def test_names_with_html_and_escape_sequences_come_out_escaped(
    daemon_factory: Any, free_port: int
) -> None:
    daemon, base = _with_page(daemon_factory, free_port)
    hostile = daemon.watch / "<img src=x onerror=alert(1)>\x1b[31mred.mp4"
    write_media(hostile, seed=5)
    daemon.wait_state(hostile, JobState.DONE, timeout=30)
    html = wait_until(
        lambda: (lambda page: page if "onerror" in page else None)(_get(base + "/")[1]),
        what="the hostile name on the page",
    )
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img" not in html and "\x1b" not in html and "\\x1b[31mred.mp4" in html
    assert "\\u001b" in _get(base + "/api/status.json")[1]  # JSON escapes it too


def test_basic_auth_refuses_a_wrong_or_missing_password(
    daemon_factory: Any, free_port: int, tmp_path: Path
) -> None:
    password_file = tmp_path / "page-password"
    password_file.write_text("  correct horse battery staple  \nignored second line\n")
    _, base = _with_page(
        daemon_factory, free_port, web={"password_file": str(password_file), "user": "viewer"}
    )
    assert _get(base + "/")[0] == 401
    status, _, headers = _get(base + "/api/status.json")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert _get(base + "/", ("viewer", "wrong"))[0] == 401
    assert _get(base + "/", ("ingestd", "correct horse battery staple"))[0] == 401
    assert _get(base + "/", ("viewer", "correct horse battery staple"))[0] == 200
    assert _get(base + "/static/status.js")[0] == 401  # every request


def test_a_non_loopback_address_without_a_password_is_refused_at_start_up(
    daemon_factory: Any, free_port: int
) -> None:
    daemon = daemon_factory(web={"listen": f"0.0.0.0:{free_port}"})
    daemon.start(wait_ready=False)
    assert daemon.proc is not None and daemon.proc.wait(timeout=20) != 0
    lines = [line for line in daemon.logs().splitlines() if line.strip()]
    assert len(lines) == 1
    assert "web.listen: 0.0.0.0" in lines[0] and "not a loopback address" in lines[0]
    assert "web.password_file" in lines[0]


# --- a real browser ---------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Any:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Chromium and chromedriver are not installed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=420,900",  # a phone's width
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_in_a_browser_the_page_moves_by_itself_links_done_and_filters(
    daemon_factory: Any, free_port: int, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    daemon, base = _with_page(
        daemon_factory, free_port, ingest={"upload_bandwidth": "400K", "workers": 1}
    )
    (daemon.watch / "empty.mp4").write_bytes(b"")
    daemon.wait_state(daemon.watch / "empty.mp4", JobState.FAILED, timeout=30)
    clip = daemon.watch / "Launch" / "teaser.mp4"
    write_media(clip, 3_000_000, seed=6)
    wait_until(lambda: (daemon.job_for(clip) or _none()).bytes_sent, what="upload moving")

    browser.get(base + "/")
    browser.execute_script("window.notReloaded = true")

    def progress() -> float:
        # Read in the page in one go: the lists are redrawn under Selenium's feet.
        return float(
            browser.execute_script(
                "const bar = document.querySelector('#active .bar');"
                "return bar ? Number(bar.getAttribute('aria-valuenow')) : -1;"
            )
        )

    def names(section: str) -> list[str]:
        return list(
            browser.execute_script(
                f"return [...document.querySelectorAll('#{section} .name')]"
                ".map(e => e.textContent);"
            )
        )

    first = wait_until(lambda: progress() if progress() >= 0 else None, what="a bar")
    wait_until(lambda: progress() > first + 5, timeout=20, what="the bar growing by itself")
    browser.save_screenshot(str(tmp_path / "status-page-uploading.png"))

    job = daemon.wait_state(clip, JobState.DONE, timeout=60)
    link = f"{ACCOUNT}/medias/{job.hashed_id}"
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, f'#recent a[href="{link}"]'),
        timeout=15,
        what="the done job with its link",
    )
    assert browser.execute_script("return window.notReloaded") is True  # no reload happened

    Select(browser.find_element(By.ID, "state")).select_by_value("failed")
    assert names("recent") == ["empty.mp4"]
    Select(browser.find_element(By.ID, "state")).select_by_value("")
    Select(browser.find_element(By.ID, "folder")).select_by_value("Launch")
    wait_until(
        lambda: (
            [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#recent .name")]
            == ["teaser.mp4"]
        ),
        what="the folder filter",
    )
    assert "folder=Launch" in browser.current_url
    browser.save_screenshot(str(tmp_path / "status-page-filtered.png"))
    assert (tmp_path / "status-page-uploading.png").stat().st_size > 1000


def _none() -> Any:
    class Nothing:
        bytes_sent = None

    return Nothing()
