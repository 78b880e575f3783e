"""`ingestd status --watch`: the status view redrawn every second, with a progress bar per
upload (bytes, speed, time left), the hold and the waiting notifications at the top.

Drawn with rich (Live + Progress), which redraws in place and keeps to the terminal's width
(80 columns over SSH included). Off a terminal (a pipe, a file) the plain `status` text is
printed once per interval instead. Ctrl-C ends it with exit status 0. Every name and reason
comes from an untrusted folder: it is shown as text (control characters escaped by
status.render and files.display), never as rich markup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from ingestd.core.names import display
from ingestd.telling.status import render, waiting_words

NAME_WIDTH = 22  # a file's name in front of its bar: the line fits 80 columns


def watch(
    read_view: Callable[[], dict[str, Any]],
    interval: float = 1.0,
    console: Console | None = None,
    frames: int | None = None,
) -> int:
    """Redraw until Ctrl-C (or `frames` redraws, for tests); 0 either way."""
    console = console or Console()
    try:
        if console.is_terminal:
            _live(read_view, interval, console, frames)
        else:
            _plain(read_view, interval, console, frames)
    except KeyboardInterrupt:
        pass
    return 0


def _plain(
    read_view: Callable[[], dict[str, Any]], interval: float, console: Console, frames: int | None
) -> None:
    shown = 0
    while frames is None or shown < frames:
        if shown:
            time.sleep(interval)
        console.print(Text(render(read_view()) + "\n"), soft_wrap=True)
        shown += 1


def _live(
    read_view: Callable[[], dict[str, Any]], interval: float, console: Console, frames: int | None
) -> None:
    bars = Uploads(console)
    shown = 0
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while frames is None or shown < frames:
            if shown:
                time.sleep(interval)
            view = read_view()
            bars.update(view["jobs"])
            live.update(frame(view, bars))
            shown += 1


def frame(view: dict[str, Any], bars: Uploads) -> RenderableType:
    """The hold and the waiting notifications first, then the bars, then the status text."""
    parts: list[RenderableType] = []
    hold = view["hold"]
    if hold:
        parts.append(Text(f"ON HOLD ({hold['kind']}): {display(hold['reason'])}", style="bold red"))
    waiting = view.get("notifications") or {}
    if waiting.get("waiting"):
        line = display(waiting_words(waiting))
        if waiting.get("last_error"):
            line += f"; last error: {display(waiting['last_error'])}"
        parts.append(Text(line, style="yellow"))
    if bars.active:
        parts += [Text(""), bars.progress]
    parts += [Text(""), Text(render(view, alerts=False))]
    return Group(*parts)


class Uploads:
    """A bar per uploading job; rich works out speed and time left from the updates."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(bar_width=20),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            auto_refresh=False,
        )
        self._tasks: dict[int, TaskID] = {}

    @property
    def active(self) -> bool:
        return bool(self._tasks)

    def update(self, jobs: list[dict[str, Any]]) -> None:
        uploading = {j["id"]: j for j in jobs if j["state"] == "uploading" and j.get("size")}
        for job_id in set(self._tasks) - set(uploading):
            self.progress.remove_task(self._tasks.pop(job_id))
        for job_id, job in uploading.items():
            if job_id not in self._tasks:
                self._tasks[job_id] = self.progress.add_task(_short(job["path"]), total=job["size"])
            self.progress.update(self._tasks[job_id], completed=job.get("bytes_sent") or 0)


def _short(path: str) -> str:
    name = display(path.rsplit("/", 1)[-1])
    return name if len(name) <= NAME_WIDTH else name[: NAME_WIDTH - 1] + "…"
