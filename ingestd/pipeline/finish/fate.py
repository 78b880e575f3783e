"""The file's fate once its media is done (`ingest.after_upload`): keep it, delete it, or move
it to `ingest.archive_dir` (its path below the watch folder kept), its own sidecars following.

The fate is recorded (ledger.steps.fate) before anything moves or goes: a move's exact target,
chosen once, never a name that is taken, never longer than the file system allows. From then
on a restart only finishes it, so sidecars already moved away are never taken for sidecars
removed. Every step works in folders reached without links (folder.files.Folder): a folder
swapped for a link after the checks cannot send a delete or a move anywhere else.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ingestd.config.settings import Settings
from ingestd.core import liveness
from ingestd.core.errors import JobInputError
from ingestd.core.jobs import Job
from ingestd.core.names import display, fit_stem
from ingestd.folder.files import Folder, NotRegularFile, is_this_version
from ingestd.folder.sidecars import own_sidecar_names
from ingestd.ledger import Fate, Ledger


def check(settings: Settings, job: Job) -> None:
    """What would stop the move or delete, found before anything is sent or moved."""
    ingest = settings.ingest
    if ingest.after_upload == "keep" or not is_this_version(job):
        return
    media = Path(job.path)
    _check_writable_folder(media.parent)
    if ingest.after_upload == "move":
        archive = Path(ingest.archive_dir)
        _check_writable_folder(archive / media.parent.relative_to(settings.watch_dir))


def begun(ledger: Ledger, job: Job) -> bool:
    """Whether the fate was chosen (then the sidecars were all sent already)."""
    return ledger.steps.fate(job.id) is not None


def carry_out(ledger: Ledger, settings: Settings, job: Job) -> str:
    """Keep, delete or move the file and its own sidecars; the note for the job's history."""
    mode = settings.ingest.after_upload
    if mode == "keep":
        return "done; the file stays where it is"
    media = Path(job.path)
    try:
        with Folder(media.parent, settings.watch_dir) as source:
            entry = source.entry(media.name)
            if entry is None or not job.is_file_hashed(entry):
                return "done; the file at its path is gone or is a newer version: left"
            followers = [
                name
                for name in own_sidecar_names(media.name, source.names())
                if _regular(source.entry(name))
            ]
            if mode == "delete":
                ledger.steps.record_fate(job.id, Fate("delete"))  # before anything goes
                for name in [*followers, media.name]:  # the media last: "not yet" while there
                    source.unlink(name)
                return f"done; deleted the file and {len(followers)} sidecar file(s)"
            target = _move(ledger, settings, job, source, followers)
    except (OSError, NotRegularFile) as exc:
        reason = exc.reason if isinstance(exc, NotRegularFile) else exc.strerror or exc
        raise JobInputError(
            f"cannot {mode} the file: {reason}",
            "check that the ingestd user may write to the watch and archive folders",
        ) from None
    return f"done; moved to {display(target)}"


def where_it_ends_up(ledger: Ledger, settings: Settings, job: Job) -> tuple[Path, Path] | None:
    """The done file's final path and the configured folder it is below, if it has one."""
    mode = settings.ingest.after_upload
    if mode == "keep":
        return (Path(job.path), settings.watch_dir) if is_this_version(job) else None
    fate = ledger.steps.fate(job.id)
    if mode == "move" and fate is not None and fate.target is not None:
        return fate.target, Path(settings.ingest.archive_dir)
    return None


def _move(
    ledger: Ledger, settings: Settings, job: Job, source: Folder, followers: list[str]
) -> Path:
    media = Path(job.path)
    archive = Path(settings.ingest.archive_dir)
    folder = archive / media.parent.relative_to(settings.watch_dir)
    archive.mkdir(parents=True, exist_ok=True)  # configured, so trusted; below it: no links
    with Folder(folder, archive, create=True) as target:
        name = _move_target(ledger, job, target, followers)
        for follower in followers:
            source.move_to(
                follower, target, _follower_name(name, media.name, follower), liveness.beat
            )
        source.move_to(media.name, target, name, liveness.beat)
    return folder / name


def _move_target(ledger: Ledger, job: Job, target: Folder, followers: list[str]) -> str:
    """The name the file gets in the archive, chosen once and recorded before anything
    moves; never one that is taken, and never longer than the file system allows."""
    chosen = ledger.steps.fate(job.id)
    if chosen is not None and chosen.target is not None:
        return chosen.target.name
    media = Path(job.path)
    tails = [media.suffix] + [f[len(media.stem) :] for f in followers]
    for n in range(10_000):
        stem = fit_stem(media.stem, tails, f" ({n})" if n else "")
        names = [stem + media.suffix] + [stem + tail for tail in tails[1:]]
        if all(target.entry(name) is None for name in names):
            ledger.steps.record_fate(job.id, Fate("move", target.path / names[0]))
            return names[0]
    raise JobInputError(f"no free name for {display(media.name)} in {display(target.path)}")


def _regular(entry: os.stat_result | None) -> bool:
    return entry is not None and stat.S_ISREG(entry.st_mode)


def _follower_name(target: str, media: str, follower: str) -> str:
    """A sidecar's name beside the moved media: `clip.fr.srt` follows `clip.mp4` as
    `clip (1).fr.srt` when the media became `clip (1).mp4`."""
    return Path(target).stem + follower[len(Path(media).stem) :]


def _check_writable_folder(folder: Path) -> None:
    """`folder` is, or can be made, a folder the ingestd user may write to."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or existing.is_symlink():
        raise JobInputError(
            f"cannot move or delete files in {display(folder)}: "
            f"{display(existing)} is not a folder",
            "make it a folder, or change ingest.archive_dir",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise JobInputError(
            f"cannot move or delete files in {display(existing)}",
            "give the ingestd user write permission to the folder",
        )
