"""The folder is untrusted (issue 9): hostile inputs against the real daemon, as a table.

Every row gets a folder of its own in the watch folder, all made before the daemon starts. Each
row says what must become of its media: `done`, `held` or `failed` with words in its reason, or
no job at all. Then, for the whole run: Wistia received only bytes of files inside the folder
(nothing from outside, nothing through a link), every other job reached `done`, the daemon is
still up, and no 16 characters of the token, no URL password and no presigned query appear in
the daemon's output, in any `status` output, or in any ledger file.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingestd.core.jobs import JobState
from tests.conftest import TOKEN, DaemonProcess, wait_until, write_media

S = JobState
SRT = "1\n00:00:00,000 --> 00:00:01,000\nHello\n"
SECRETS_IN_URLS = ("hunter2", "X-Amz-Signature=", "sig0123456789")


@dataclass
class World:
    outside: Path  # a file outside the watch folder
    token_file: Path
    fifo_outside: Path
    good: dict[str, bytes]  # sha256 -> bytes of every media the rows wrote on purpose


@dataclass
class Row:
    id: str
    make: Callable[[Path, World], None]  # writes the row's files into its folder
    state: JobState | None  # what its media (`x.<ext>`) becomes; None: no job at all
    words: str = ""  # in its reason (held) or error (failed)
    media: str = "x.mp4"


def media(folder: Path, world: World, name: str = "x.mp4", seed: int = 0) -> Path:
    path = folder / name
    data = write_media(path, 30_000, seed=seed or len(world.good) + 100)
    world.good[hashlib.sha256(data).hexdigest()] = data
    return path


def link(target: Callable[[World], Path | str], name: str = "x.mp4"):
    return lambda folder, world: (folder / name).symlink_to(target(world))


def with_media(*makers: Callable[[Path, World], None]):
    def make(folder: Path, world: World) -> None:
        media(folder, world)
        for maker in makers:
            maker(folder, world)

    return make


def write(name: str, content: str | bytes):
    def make(folder: Path, world: World) -> None:
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)

    return make


def fifo(name: str):
    return lambda folder, world: os.mkfifo(folder / name)


def unix_socket(name: str):
    def make(folder: Path, world: World) -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(folder / name))  # the socket file stays when it closes

    return make


def sparse(name: str, size: int):
    def make(folder: Path, world: World) -> None:
        with open(folder / name, "wb") as handle:
            handle.truncate(size)

    return make


def folder_link(folder: Path, world: World) -> None:
    (world.outside.parent / "elsewhere").mkdir(exist_ok=True)
    write_media(world.outside.parent / "elsewhere" / "secret.mp4", 1000, seed=9)
    (folder / "sub").symlink_to(world.outside.parent / "elsewhere")


NESTED = "[" * 100 + "]" * 100
BIG_JSON = '{"description": "' + "x" * (1024 * 1024) + '"}'
URL_WITH_PASSWORD = "https://editor:hunter2@files.example.com/v/clip.mp4\n"
PRESIGNED = (
    "https://bucket.s3.amazonaws.com/clip.mp4?X-Amz-Signature=sig0123456789&X-Amz-Expires=60\n"
)

ROWS = [
    # --- where a media should be -----------------------------------------------------------
    Row("symlink-to-outside", link(lambda w: w.outside), S.HELD, "x.mp4 is a symbolic link"),
    Row("symlink-to-token", link(lambda w: w.token_file), S.HELD, "x.mp4 is a symbolic link"),
    Row("symlink-to-dev-zero", link(lambda w: "/dev/zero"), S.HELD, "x.mp4 is a symbolic link"),
    Row("symlink-to-fifo", link(lambda w: w.fifo_outside), S.HELD, "x.mp4 is a symbolic link"),
    Row("symlink-loop", link(lambda w: "x.mp4"), S.HELD, "x.mp4 is a symbolic link"),
    Row("dangling-symlink", link(lambda w: "nothing.mp4"), S.HELD, "x.mp4 is a symbolic link"),
    Row("folder-link-not-entered", folder_link, None, media="sub/secret.mp4"),
    Row("fifo-as-media", fifo("x.mp4"), S.HELD, "x.mp4 is a FIFO (named pipe)"),
    Row("socket-as-media", unix_socket("x.mp4"), S.HELD, "x.mp4 is a socket"),
    Row("folder-named-like-media", lambda f, w: (f / "x.mp4").mkdir(), None),
    # --- where a sidecar should be ---------------------------------------------------------
    Row(
        "json-link-to-token",
        with_media(link(lambda w: w.token_file, "x.json")),
        S.HELD,
        "x.json is a symbolic link",
    ),
    Row(
        "srt-link-to-dev-zero",
        with_media(link(lambda w: "/dev/zero", "x.srt")),
        S.HELD,
        "x.srt is a symbolic link",
    ),
    Row(
        "defaults-link-to-token",
        with_media(link(lambda w: w.token_file, "_defaults.json")),
        S.HELD,
        "_defaults.json is a symbolic link",
    ),
    Row("srt-fifo", with_media(fifo("x.en.srt")), S.HELD, "x.en.srt is a FIFO"),
    Row("json-fifo", with_media(fifo("x.json")), S.HELD, "x.json is a FIFO"),
    Row("srt-socket", with_media(unix_socket("x.srt")), S.HELD, "x.srt is a socket"),
    Row(
        "json-folder", with_media(lambda f, w: (f / "x.json").mkdir()), S.HELD, "x.json is a folder"
    ),
    Row(
        "srt-folder",
        with_media(lambda f, w: (f / "x.fr.srt").mkdir()),
        S.HELD,
        "x.fr.srt is a folder",
    ),
    # --- sidecars: sizes, encodings, JSON ---------------------------------------------------
    Row(
        "json-too-big",
        with_media(write("x.json", BIG_JSON)),
        S.HELD,
        "x.json: larger than the 1 MiB",
    ),
    Row(
        "defaults-too-big",
        with_media(write("_defaults.json", BIG_JSON)),
        S.HELD,
        "_defaults.json: larger than the 1 MiB",
    ),
    Row(
        "srt-sparse-100-mb",
        with_media(sparse("x.srt", 100 * 1024 * 1024)),
        S.HELD,
        "x.srt: larger than the 10 MiB",
    ),
    Row(
        "url-10-mb-line",
        write("x.url", "https://e.com/" + "a" * 10_000_000),
        S.HELD,
        "x.url: larger than",
        media="x.url",
    ),
    Row(
        "json-not-utf8",
        with_media(write("x.json", b'{"name": "caf\xe9"}')),
        S.HELD,
        "x.json, line 1: not UTF-8",
    ),
    Row(
        "srt-not-utf8",
        with_media(write("x.srt", SRT.encode() + b"caf\xe9\n")),
        S.HELD,
        "x.srt, line 4: not UTF-8",
    ),
    Row(
        "url-not-utf8",
        write("x.url", b"https://e.com/caf\xe9.mp4"),
        S.HELD,
        "x.url: not UTF-8",
        media="x.url",
    ),
    Row(
        "json-utf16",
        with_media(write("x.json", '{"name": "n"}'.encode("utf-16"))),
        S.HELD,
        "x.json: the text is UTF-16",
    ),
    Row(
        "srt-utf16",
        with_media(write("x.srt", SRT.encode("utf-16"))),
        S.HELD,
        "x.srt: the text is UTF-16",
    ),
    Row("json-with-bom", with_media(write("x.json", '\ufeff{"name": "Bom"}')), S.DONE),
    Row("srt-with-bom", with_media(write("x.srt", "\ufeff" + SRT)), S.DONE),
    Row(
        "json-nan",
        with_media(write("x.json", '{"customizations": {"a": NaN}}')),
        S.HELD,
        "x.json: NaN is not a JSON number",
    ),
    Row(
        "defaults-infinity",
        with_media(write("_defaults.json", '{"c": -Infinity}')),
        S.HELD,
        "_defaults.json: -Infinity is not a JSON number",
    ),
    Row(
        "json-deep",
        with_media(write("x.json", NESTED)),
        S.HELD,
        "x.json, line 1: nested deeper than the 32 levels",
    ),
    Row(
        "defaults-deep",
        with_media(write("_defaults.json", NESTED)),
        S.HELD,
        "_defaults.json, line 1: nested deeper than the 32 levels",
    ),
    Row(
        "json-array",
        with_media(write("x.json", "[1, 2]")),
        S.HELD,
        "x.json: must hold a JSON object",
    ),
    Row(
        "json-name-not-text",
        with_media(write("x.json", '{"name": 5}')),
        S.HELD,
        'x.json: "name" must be a string',
    ),
    Row(
        "srt-copy-of-the-token",
        with_media(write("x.srt", TOKEN + "\n")),
        S.HELD,
        "x.srt, line 1: not a valid subtitle block",
    ),
    # --- names -----------------------------------------------------------------------------
    Row(
        "name-not-utf8",
        lambda f, w: media(f, w, os.fsdecode(b"caf\xe9.mp4")),
        S.DONE,
        media=os.fsdecode(b"caf\xe9.mp4"),
    ),
    Row(
        "name-255-bytes",
        lambda f, w: media(f, w, "n" * 251 + ".mp4"),
        S.DONE,
        media="n" * 251 + ".mp4",
    ),
    Row("name-newline", lambda f, w: media(f, w, "a\nb.mp4"), S.DONE, media="a\nb.mp4"),
    Row(
        "name-escape-sequence",
        lambda f, w: media(f, w, "\x1b[31mred.mp4"),
        S.DONE,
        media="\x1b[31mred.mp4",
    ),
    # --- .url files ------------------------------------------------------------------------
    Row(
        "url-ftp",
        write("x.url", "ftp://e.com/clip.mp4\n"),
        S.HELD,
        "only http:// and https://",
        media="x.url",
    ),
    Row(
        "url-javascript",
        write("x.url", "javascript:alert(1)\n"),
        S.HELD,
        "only http:// and https://",
        media="x.url",
    ),
    Row("url-with-password", write("x.url", URL_WITH_PASSWORD), S.DONE, media="x.url"),
    Row("url-presigned", write("x.url", PRESIGNED), S.DONE, media="x.url"),
    Row(
        "url-symlink",
        link(lambda w: w.outside, "x.url"),
        S.HELD,
        "x.url is a symbolic link",
        media="x.url",
    ),
]


def token_windows(text: str | bytes) -> list[str]:
    """Every 16-character stretch of the token found in `text`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [TOKEN[i : i + 16] for i in range(len(TOKEN) - 15) if TOKEN[i : i + 16] in text]


def test_hostile_inputs_table(daemon_factory, tmp_path: Path) -> None:
    assert len(ROWS) >= 30
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    token_file = secrets / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    outside = secrets / "outside.mp4"
    write_media(outside, 5000, seed=1)
    os.mkfifo(secrets / "fifo")
    world = World(outside, token_file, secrets / "fifo", {})
    daemon: DaemonProcess = daemon_factory(
        wistia={"api_token": "", "api_token_file": str(token_file)}
    )
    for row in ROWS:
        folder = daemon.watch / row.id
        folder.mkdir()
        row.make(folder, world)
    daemon.start()

    for row in ROWS:
        path = daemon.watch / row.id / row.media
        if row.state is None:
            continue
        job = daemon.wait_state(path, row.state, timeout=40)
        said = (job.reason if row.state == S.HELD else job.error) or ""
        assert row.words in said, f"{row.id}: {said!r}"
    for row in ROWS:
        if row.state is None:
            assert daemon.job_for(daemon.watch / row.id / row.media) is None, row.id
    canary = daemon.watch / "canary.mp4"  # still working after all of it
    write_media(canary, seed=7)
    daemon.wait_state(canary, S.DONE)
    assert daemon.proc.poll() is None

    # Wistia got only bytes of media the rows wrote on purpose, and the two imports.
    allowed = set(world.good) | {daemon.job_for(canary).sha256}
    sent = {u.files["file"]["sha256"] for u in daemon.sandbox.uploads() if u.files}
    assert sent <= allowed  # nothing from outside, nothing read through a link
    for row in ROWS:
        if row.state == S.DONE and not row.media.endswith(".url"):
            assert daemon.job_for(daemon.watch / row.id / row.media).sha256 in sent, row.id
    imports = sorted(u.form["url"] for u in daemon.sandbox.uploads() if "url" in u.form)
    assert imports == sorted([PRESIGNED.strip(), URL_WITH_PASSWORD.strip()])
    names = {u.form["name"] for u in daemon.sandbox.uploads()}
    assert "caf\ufffd.mp4" in names and "Bom" in names
    assert {r.auth for r in daemon.sandbox.records} == {"bearer"}

    outputs = [daemon.logs()] + [
        (lambda r: r.stdout + r.stderr)(daemon.cli(*args))
        for args in (("status",), ("status", "--all"), ("status", "--json", "--all"))
    ]
    outputs += [daemon.cli("status", str(job.id)).stdout for job in daemon.jobs()]
    outputs += [daemon.cli("status", "--json", str(job.id)).stdout for job in daemon.jobs()]
    table = daemon.cli("status", "--all").stdout
    assert "\x1b" not in table and "\\x1b[31mred.mp4" in table and "caf\\xe9.mp4" in table
    daemon.stop()
    ledger_files = [
        Path(f"{daemon.ledger_path}{suffix}").read_bytes()
        for suffix in ("", "-wal", "-shm")
        if Path(f"{daemon.ledger_path}{suffix}").exists()
    ]
    for text in [*outputs, *ledger_files]:
        assert token_windows(text) == []
        for secret in SECRETS_IN_URLS:
            assert (secret.encode() if isinstance(text, bytes) else secret) not in text


# --- a media swapped while it settles or uploads ------------------------------------------------


def swap(path: Path, into: str, elsewhere: Path) -> None:
    path.unlink()
    if into == "symlink":
        path.symlink_to(elsewhere)
    else:
        os.mkfifo(path)


@pytest.mark.parametrize("into", ["symlink", "fifo"])
def test_a_media_swapped_while_settling_is_never_read(daemon_factory, tmp_path, into) -> None:
    outside = tmp_path / "outside.mp4"
    outside_bytes = write_media(outside, 20_000, seed=1)
    daemon = daemon_factory(ingest={"settle_seconds": 1.5}).start()
    clip = daemon.watch / "swapped.mp4"
    write_media(clip, 20_000, seed=2)
    daemon.wait_state(clip, S.SETTLING)
    swap(clip, into, outside)
    held = daemon.wait_state(clip, S.HELD)
    assert ("symbolic link" if into == "symlink" else "FIFO") in held.reason
    assert daemon.sandbox.uploads() == []
    assert hashlib.sha256(outside_bytes).hexdigest() not in daemon.logs()


@pytest.mark.parametrize("into", ["symlink", "fifo"])
def test_a_media_swapped_while_uploading_sends_the_bytes_hashed(
    daemon_factory, tmp_path, into
) -> None:
    outside = tmp_path / "outside.mp4"
    write_media(outside, 20_000, seed=1)
    daemon = daemon_factory().start()
    daemon.sandbox.faults.update(slow_upload_seconds=1.5)  # the upload is under way a while
    clip = daemon.watch / "swapped.mp4"
    original = write_media(clip, 20_000, seed=3)
    first = daemon.wait_state(clip, S.UPLOADING)
    wait_until(lambda: daemon.sandbox.records, what="the upload reached Wistia")
    swap(clip, into, outside)
    daemon.sandbox.faults.update(slow_upload_seconds=0)
    wait_until(lambda: daemon.ledger.get(first.id).state == S.DONE, what="the upload done")
    (upload,) = daemon.sandbox.uploads()
    assert upload.files["file"]["sha256"] == hashlib.sha256(original).hexdigest()
    held = daemon.wait_state(clip, S.HELD)  # what is at the path now is a new version
    assert held.id != first.id
    assert ("symbolic link" if into == "symlink" else "FIFO") in held.reason


def test_a_file_truncated_mid_upload_settles_again_without_an_attempt(daemon_factory) -> None:
    daemon = daemon_factory(wistia={"upload_timeout_seconds": 5.0}).start()
    daemon.sandbox.faults.update(latency=1.0)  # time to cut the file before it is all read
    clip = daemon.watch / "cut.mp4"
    write_media(clip, 30_000_000, seed=4)
    daemon.wait_state(clip, S.UPLOADING)
    # Cut once the bytes are on their way (a cut before the file is opened is another case).
    wait_until(lambda: (daemon.job_for(clip).bytes_sent or 0) > 0, what="bytes on their way")
    os.truncate(clip, 1000)
    daemon.sandbox.faults.update(latency=0)
    job = daemon.wait_state(clip, S.DONE, timeout=40)
    assert job.attempts == 0 and job.size == 1000
    assert "file changed while it was being sent" in json.dumps(
        daemon.status_json(str(job.id))["events"]
    )


# --- bad files given to commands ----------------------------------------------------------------


def run_cli(config: Path, *args: str, env: dict[str, str] | None = None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INGESTD_")}
    return subprocess.run(
        [sys.executable, "-m", "ingestd", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean | (env or {}),
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


BAD_STARTS = {
    "config-not-utf8": (lambda c, t: c.write_bytes(b'watch_dir = "caf\xe9"\n'), "not UTF-8"),
    "config-not-toml": (lambda c, t: c.write_text("watch_dir = [oops"), "not valid TOML"),
    "config-a-folder": (lambda c, t: (c.unlink(), c.mkdir()), "is not a regular file"),
    "config-to-dev-zero": (
        lambda c, t: (c.unlink(), c.symlink_to("/dev/zero")),
        "is not a regular file",
    ),
    "token-not-utf8": (lambda c, t: t.write_bytes(b"tok\xff"), "not UTF-8"),
    "token-missing": (lambda c, t: t.unlink(), "cannot read token file"),
    "token-to-dev-zero": (lambda c, t: (t.unlink(), t.symlink_to("/dev/zero")), "not a regular"),
    "token-huge": (lambda c, t: t.write_text("x" * 100_000), "larger than 64 KiB"),
}


@pytest.mark.parametrize("case", list(BAD_STARTS))
def test_a_bad_config_or_token_file_at_start_up_is_one_line(daemon_factory, tmp_path, case):
    daemon: DaemonProcess = daemon_factory()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    daemon.config["wistia"].update(api_token="", api_token_file=str(token_file))
    from tests.conftest import write_config

    write_config(daemon.config_path, daemon.config)
    spoil, words = BAD_STARTS[case]
    spoil(daemon.config_path, token_file)
    result = run_cli(daemon.config_path, "run")
    line = one_line(result)
    assert result.returncode == 2 and words in line
    assert token_windows(line) == [] and not daemon.ledger_path.exists()


def test_bad_json_in_the_environment_and_a_ledger_under_a_file_are_one_line(
    daemon_factory, tmp_path
) -> None:
    daemon: DaemonProcess = daemon_factory()
    from tests.conftest import write_config

    write_config(daemon.config_path, daemon.config)
    line = one_line(run_cli(daemon.config_path, "run", env={"INGESTD_WISTIA": "{not json"}))
    assert "INGESTD_WISTIA is not valid JSON" in line
    (tmp_path / "plain").write_text("a file")
    daemon.config["ledger"] = tmp_path / "plain" / "ledger.db"
    write_config(daemon.config_path, daemon.config)
    assert "plain" in one_line(run_cli(daemon.config_path, "run"))


@pytest.mark.parametrize(
    "spoil",
    [
        lambda c, t: c.write_bytes(b'watch_dir = "caf\xe9"\n'),
        lambda c, t: t.write_bytes(b"\xff\xfe"),
        lambda c, t: t.unlink(),
        lambda c, t: (t.unlink(), t.symlink_to("/dev/zero")),
    ],
    ids=["config-not-utf8", "token-not-utf8", "token-gone", "token-to-dev-zero"],
)
def test_sighup_with_a_bad_file_keeps_the_running_config(daemon_factory, tmp_path, spoil) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    daemon = daemon_factory(wistia={"api_token": "", "api_token_file": str(token_file)}).start()
    spoil(daemon.config_path, token_file)
    import signal

    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "config reload rejected" in daemon.logs(), what="reload rejected")
    clip = daemon.watch / "after.mp4"
    write_media(clip, seed=5)
    daemon.wait_state(clip, S.DONE)
    assert token_windows(daemon.logs()) == []


COMMANDS = [
    ("status",),
    ("status", "--json"),
    ("status", "--all"),
    ("status", "1"),
    ("retry", "--failed"),
    ("retry", "1"),
    ("check",),
    ("run",),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: "-".join(a))
def test_a_corrupt_ledger_is_one_line_for_every_command_and_is_left_alone(
    daemon_factory, args
) -> None:
    daemon: DaemonProcess = daemon_factory()
    from tests.conftest import write_config

    write_config(daemon.config_path, daemon.config)
    daemon.ledger_path.parent.mkdir(parents=True)
    daemon.ledger_path.write_bytes(b"this is not a database" * 300)
    before = daemon.ledger_path.read_bytes()
    result = run_cli(daemon.config_path, *args)
    if args == ("check",):
        assert result.returncode == 1 and "FAIL  ledger:" in result.stdout
        assert "Traceback" not in result.stdout + result.stderr
    else:
        assert "ledger" in one_line(result)
    assert daemon.ledger_path.read_bytes() == before
    assert sorted(p.name for p in daemon.ledger_path.parent.iterdir()) == ["ledger.db"]
    check = run_cli(daemon.config_path, "status", "--check")
    assert check.returncode == 3 and check.stdout.startswith("INGESTD UNKNOWN")


def test_status_and_check_create_and_change_nothing(daemon_factory) -> None:
    daemon: DaemonProcess = daemon_factory()
    from tests.conftest import write_config

    write_config(daemon.config_path, daemon.config)
    assert run_cli(daemon.config_path, "status").returncode == 0
    assert run_cli(daemon.config_path, "check").returncode == 0
    assert "no ledger" in one_line(run_cli(daemon.config_path, "retry", "--failed"))
    assert not daemon.ledger_path.parent.exists()  # nothing was created

    daemon.start()
    clip = daemon.watch / "a.mp4"
    write_media(clip, seed=6)
    daemon.wait_state(clip, S.DONE)
    for args in (("status", "99999999999999999999"), ("status", "²")):
        assert "no job matches" in one_line(run_cli(daemon.config_path, *args))
    daemon.stop()
    daemon.ledger.close()  # the test's own connection: now nobody has the ledger open
    daemon._ledger = None
    folder = daemon.ledger_path.parent
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    for args in (("status",), ("status", "--json", "1"), ("status", "--check"), ("check",)):
        run_cli(daemon.config_path, *args)
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    assert after == before

    daemon.start()  # and after a kill -9, when SQLite's side files are left behind
    write_media(daemon.watch / "b.mp4", seed=7)
    daemon.wait_state(daemon.watch / "b.mp4", S.DONE)
    daemon.ledger.close()  # first, or closing the last connection would tidy the -wal away
    daemon._ledger = None
    daemon.kill()
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    assert "ledger.db-wal" in before
    for args in (("status",), ("status", "--json", "1"), ("status", "--check"), ("check",)):
        assert "Traceback" not in run_cli(daemon.config_path, *args).stderr
    shown = run_cli(daemon.config_path, "status", "--json").stdout
    assert json.loads(shown)["counts"]["done"] == 2  # the -wal's commits are read too
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    assert after == before
