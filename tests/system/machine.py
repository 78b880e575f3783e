"""A Debian container booted with systemd-nspawn, for proving the unit under a real systemd.

How it works (../shared/NOTES.md, "A real systemd in a test"): debootstrap makes a Debian 12
tree once and keeps it in CACHE (keyed by what went into it, so a change rebuilds it); each run
boots it with `--volatile=overlay` (writes go to a tmpfs above it, so the cache stays clean),
with `--keep-unit --register=no` because the host has no systemd of its own, and runs commands
inside with `nsenter`. Anything the host cannot provide (root, the tools, the mirror, a booting
container) is a reason to skip, raised as `Unavailable`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import wait_until

CACHE = Path(os.environ.get("INGESTD_SYSTEM_CACHE", "/var/cache/ingestd-system-test"))
SUITE = "bookworm"  # Debian 12: systemd 252 and Python 3.11, what ingestd's users run
PACKAGES = "systemd,systemd-sysv,dbus,python3,python3-venv,python3-pip,ca-certificates,curl,procps"
# Bumped by hand to throw every cached tree away.
LAYOUT = 1
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Unavailable(Exception):
    """The host cannot run the container: the test is skipped with this reason."""


def _run(cmd: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:])


def ensure_tools() -> None:
    """systemd-nspawn, debootstrap and nsenter, from apt when they are missing."""
    if os.geteuid() != 0:
        raise Unavailable("needs root (debootstrap and systemd-nspawn)")
    tools = ("systemd-nspawn", "debootstrap", "nsenter")
    if all(shutil.which(tool) for tool in tools):
        return
    if shutil.which("apt-get") is None:
        raise Unavailable("systemd-nspawn or debootstrap missing, and no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "systemd-container", "debootstrap"]
    done = _run(install, 600, env=env)
    if done.returncode != 0:  # an old package list: once more after an update
        _run(["apt-get", "update", "-qq"], 600, env=env)
        done = _run(install, 600, env=env)
    if done.returncode != 0 or not all(shutil.which(tool) for tool in tools):
        raise Unavailable(f"cannot install systemd-container and debootstrap: {_tail(done.stderr)}")


def debian_mirror() -> str:
    """The Debian mirror apt already uses here (deb822 or one-line sources)."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for stanza in path.read_text(errors="replace").split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if re.match(r"^\w[\w-]*:", line)
            )
            suites = fields.get("Suites", "").split()
            if SUITE in suites and "deb" in fields.get("Types", "").split():
                return fields.get("URIs", "").split()[0]
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                words = line.split()
                if len(words) >= 3 and words[0] == "deb" and SUITE in words:
                    return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder of the cache at a time (two runs at once wait for each other)."""
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def cached_tree() -> Path:
    """The debootstrapped tree, built once per key; stale trees are removed."""
    mirror = debian_mirror()
    key = hashlib.sha256(f"{LAYOUT} {SUITE} {mirror} minbase {PACKAGES}".encode()).hexdigest()
    tree = CACHE / f"rootfs-{key[:12]}"
    done = CACHE / f"rootfs-{key[:12]}.ok"
    CACHE.mkdir(parents=True, exist_ok=True)
    with _locked(CACHE / ".lock"):
        if done.exists():
            return tree
        for stale in CACHE.glob("rootfs-*"):
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={PACKAGES}",
            SUITE,
            str(tree),
            mirror,
        ]
        try:
            built = _run(cmd, 1200)
        except subprocess.TimeoutExpired:
            shutil.rmtree(tree, ignore_errors=True)
            raise Unavailable(f"debootstrap from {mirror} took over 20 minutes") from None
        if built.returncode != 0:
            shutil.rmtree(tree, ignore_errors=True)
            raise Unavailable(
                f"debootstrap {SUITE} from {mirror} failed (no network to the mirror?): "
                f"{_tail(built.stdout + built.stderr)}"
            )
        done.write_text(f"{mirror}\n{PACKAGES}\n")
    return tree


class Machine:
    """A booted container: commands run inside with nsenter, as root, in a clean environment."""

    def __init__(self, tree: Path, binds: dict[Path, str], log: Path) -> None:
        self.log = log
        cmd = [
            "systemd-nspawn",
            "--quiet",
            f"--directory={tree}",
            "--volatile=overlay",
            "--boot",
            "--machine=ingestd-test",
            "--register=no",
            "--keep-unit",
            "--private-network",
            "--console=pipe",
            *(f"--bind-ro={host}:{inside}" for host, inside in binds.items()),
        ]
        self._log_file = log.open("wb")
        self.nspawn = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.leader = 0

    def boot(self) -> None:
        """Waits for the container's systemd to reach running (or degraded)."""

        def leader() -> int:
            """nspawn's child once it is the container's systemd (PID 1 inside)."""
            if self.nspawn.poll() is not None:
                raise Unavailable(f"systemd-nspawn exited: {_tail(self.log.read_text())}")
            children = _run(["pgrep", "--parent", str(self.nspawn.pid)], 10).stdout.split()
            for pid in children:
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
            return 0

        try:
            self.leader = wait_until(leader, timeout=30, interval=0.1, what="the container")
        except AssertionError as exc:
            raise Unavailable(f"systemd-nspawn started no container: {exc}") from None

        def running() -> str:
            leader()  # still there?
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            return state if state in ("running", "degraded") else ""

        try:
            state = wait_until(running, timeout=60, interval=0.2, what="systemd in the container")
        except AssertionError:
            log = _tail(self.log.read_text())
            raise Unavailable(f"the container did not boot: {log}") from None
        if state == "degraded":
            failed = self.run("systemctl", "--failed", "--plain", "--no-legend", check=False)
            print(f"container is degraded: {failed.stdout.strip()}")

    def run(
        self,
        *cmd: str,
        input: str | bytes | None = None,
        check: bool = True,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """A command inside the container, in a clean environment (plus `env`); its output
        as text."""
        full = [
            "nsenter", f"--target={self.leader}", "--all", "--",
            "env", "-i", f"PATH={PATH}", "HOME=/root", "LANG=C.UTF-8", "SYSTEMD_COLORS=0",
            *(f"{k}={v}" for k, v in (env or {}).items()), *cmd,
        ]  # fmt: skip
        data = input.encode() if isinstance(input, str) else input
        done = subprocess.run(full, input=data, capture_output=True, timeout=timeout)
        result = subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def sh(self, script: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-ec", script, **kw)

    def read(self, path: str) -> str:
        return self.run("cat", path).stdout

    def write(self, path: str, text: str) -> None:
        """Replaces a file's content, keeping its owner and mode."""
        self.run("sh", "-c", 'cat > "$1"', "-", path, input=text)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def cursor(self) -> str:
        """The journal's current end, to read only what comes after it."""
        out = self.run("journalctl", "--show-cursor", "--lines=0", "--quiet").stdout
        return out.strip().rsplit("cursor: ", 1)[-1]

    def journal(self, *args: str, after: str | None = None) -> list[dict[str, Any]]:
        """Journal entries as journalctl's JSON objects (MESSAGE, PRIORITY, ...)."""
        since = [f"--after-cursor={after}"] if after else []
        out = self.run("journalctl", "--output=json", "--no-pager", *since, *args).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def halt(self) -> None:
        """Halts the container (SIGTERM to nspawn), killed if it takes over 20 s."""
        if self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.nspawn.pid, signal.SIGKILL)
                self.nspawn.wait(timeout=10)
        self._log_file.close()


def message(entry: dict[str, Any]) -> str:
    value = entry.get("MESSAGE", "")
    return bytes(value).decode(errors="replace") if isinstance(value, list) else str(value)


def wheels(source: Path, into: Path) -> Path:
    """ingestd's wheel and its dependencies' wheels, for install.sh in the container (which has
    no network). Both are cached: the dependencies per pyproject.toml, ingestd's own per the
    content of its sources."""
    pyproject = (source / "pyproject.toml").read_bytes()
    sources = hashlib.sha256(pyproject)
    for path in sorted([*(source / "ingestd").rglob("*"), source / "README.md"]):
        if path.is_file() and "__pycache__" not in path.parts:
            sources.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes())
    deps = CACHE / f"wheels-{hashlib.sha256(pyproject).hexdigest()[:12]}"
    own = CACHE / f"ingestd-{sources.hexdigest()[:12]}"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", "wheel"]
    CACHE.mkdir(parents=True, exist_ok=True)
    with _locked(CACHE / ".lock"):
        for folder, args, prefix in ((deps, [], "wheels-"), (own, ["--no-deps"], "ingestd-")):
            if (folder / ".ok").exists():
                continue
            for stale in CACHE.glob(f"{prefix}*"):
                shutil.rmtree(stale)
            built = _run([*pip, *args, "--wheel-dir", str(folder), str(source)], 900)
            if built.returncode == 0 and not args:  # for install.sh building from a checkout
                built = _run([*pip, "--wheel-dir", str(folder), "setuptools"], 300)
            if built.returncode != 0 and not args:
                shutil.rmtree(folder, ignore_errors=True)
                raise Unavailable(f"cannot fetch the dependencies' wheels: {_tail(built.stderr)}")
            assert built.returncode == 0, f"pip wheel {source} failed:\n{built.stderr}"
            (folder / ".ok").touch()
    into.mkdir(parents=True)
    wanted = [w for w in deps.glob("*.whl") if not w.name.startswith("ingestd-")]
    for wheel in [*wanted, *own.glob("ingestd-*.whl")]:
        try:
            os.link(wheel, into / wheel.name)
        except OSError:  # another file system
            shutil.copy(wheel, into / wheel.name)
    return into
