"""The command (`notify.command`): an argv list run without a shell, the notification's body
on stdin, `INGESTD_EVENT`, `INGESTD_JOB_ID`, `INGESTD_PATH`, `INGESTD_HASHED_ID` in an
environment without ingestd's own variables (a token may be one, in any letter case) or
systemd's credentials; in its own process group, killed whole after `notify.timeout_seconds`;
what it prints is logged, bounded. Exit status 0 delivers the notification.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile

from ingestd import logs
from ingestd.config.settings import NotifySettings
from ingestd.ledger import Notification
from ingestd.telling.notify.text import MAX_OUTPUT_CHARACTERS, printable

log = logs.get("ingestd.notifications")

# The variables ingestd's own process may carry secrets in: never passed to the command.
_PRIVATE_VARIABLES = ("INGESTD_", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_")


def run(notify: NotifySettings, notification: Notification, body: str, path: str) -> str | None:
    """None when the command took the notification (exit status 0), else why not.

    Run the command, without a shell, in its own process group: stdin the body, output
    to a temporary file (what it prints is logged, bounded), at most `timeout_seconds`;
    then its whole group is killed, so nothing it left running lingers or holds a pipe."""
    job = json.loads(body)["job"]
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_PRIVATE_VARIABLES)}
    env.update(
        INGESTD_EVENT=notification.event,
        INGESTD_JOB_ID=str(notification.job_id),
        # The exact name (a name that is not UTF-8 goes as its own bytes), not its display.
        INGESTD_PATH=path,
        INGESTD_HASHED_ID=job.get("hashed_id") or "",
    )
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as stdin:
        stdin.write(body.encode())
        stdin.seek(0)
        try:
            process = subprocess.Popen(
                notify.command,
                stdin=stdin,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                close_fds=True,
                start_new_session=True,  # its own group: killed whole; no Ctrl-C of ours
            )
        except OSError as exc:
            return f"command could not start: {exc.strerror or exc}"
        try:
            status = process.wait(timeout=notify.timeout_seconds)
        except subprocess.TimeoutExpired:
            status = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever it left behind
        process.wait()
        output.seek(0)
        printed = printable(output.read(MAX_OUTPUT_CHARACTERS * 4))
    if printed:
        log.info("notification command output", output=printed)
    if status is None:
        return f"command did not finish within {notify.timeout_seconds:g} s"
    if status != 0:
        return f"command exited with status {status}"
    return None
