"""The watch folder is untrusted: how ingestd opens, reads and names the files in it.

Anyone who can write into the folder can put anything there: symlinks to files elsewhere,
FIFOs that block a reader forever, devices, huge files, names that are not UTF-8. So:

- `open_regular` walks from the watch folder down with `O_NOFOLLOW` on every component (a
  symlinked parent folder is refused too), opens the file `O_NONBLOCK` (a FIFO cannot block),
  and checks on the opened descriptor that it is a regular file. Whatever is read is read from
  that descriptor.
- `read_bounded` reads at most a limit, so a huge or endless file costs nothing.
- `display` shows any name on one line with escapes; `wistia_name` is the name Wistia gets,
  undecodable bytes replaced; `sibling` derives a sidecar's name, or None when the name would
  be longer than the file system allows (it cannot exist).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from ingestd.core.errors import JobInputError
from ingestd.core.jobs import Job, version_of
from ingestd.core.names import display

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def kind_of(mode: int) -> str:
    """What a file system entry is, in words a user knows."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


class NotRegularFile(JobInputError):
    """A symlink, FIFO, socket, device or folder where a file should be. Never read through."""

    def __init__(self, name: str, what: str) -> None:
        super().__init__(
            f"{name} is {what}, not a regular file: ingestd reads only regular files "
            "inside the watch folder",
            "replace it with the file itself",
        )
        self.what = what


def problem(error: OSError, name: str) -> JobInputError:
    if error.errno in (errno.EACCES, errno.EPERM):
        return JobInputError(
            f"cannot read {name}: permission denied",
            "give the ingestd user read permission (for example: chmod o+r FILE); "
            "the job goes on by itself once it can read the file",
        )
    if error.errno == errno.ENAMETOOLONG:
        return JobInputError(f"{name}: the name is too long for the file system")
    return JobInputError(f"cannot read {name}: {error.strerror or error}")


def open_regular(path: Path, root: Path) -> int:
    """A descriptor of the regular file at `path`, reached from `root` without any link.

    Raises FileNotFoundError when nothing is there (the caller knows whether that is a
    vanished media or an absent sidecar), NotRegularFile for anything but a regular file, and
    JobInputError for anything else that stops the read (permissions, a name too long).
    """
    if path == root:
        raise NotRegularFile(display(path.name), "a folder")
    folder = open_folder(path.parent, root, name=display(path.name))
    try:
        return _open_leaf(folder, path.name, display(path.name))
    finally:
        os.close(folder)


def open_folder(folder: Path, base: Path, *, create: bool = False, name: str = "") -> int:
    """A descriptor of `folder`, reached from `base` one part at a time without following a
    link (`base` itself is configured, so trusted). With `create`, missing folders are made
    on the way, each inside the descriptor of its parent."""
    name = name or display(folder.name)
    try:
        parts = folder.relative_to(base).parts
    except ValueError:
        raise JobInputError(f"{name} is outside the watch folder") from None
    try:
        current = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise problem(exc, name) from None
    try:
        for part in parts:
            inner = _enter(current, part, name, create)
            os.close(current)
            current = inner
    except BaseException:
        os.close(current)
        raise
    return current


def _enter(folder: int, part: str, name: str, create: bool) -> int:
    """The descriptor of a subfolder (the caller keeps and closes `folder`); a link is refused."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o755, dir_fd=folder)
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:  # a link (O_NOFOLLOW) or a file on the way
            try:
                mode = os.stat(part, dir_fd=folder, follow_symlinks=False).st_mode
            except OSError:
                mode = 0
            if stat.S_ISLNK(mode):
                raise NotRegularFile(
                    name, f"inside a symbolic link to a folder ({display(part)})"
                ) from None
            if create:
                raise NotRegularFile(display(part), kind_of(mode)) from None
            raise FileNotFoundError(errno.ENOENT, "not a folder", part) from None
        if exc.errno == errno.ENOENT:
            raise
        raise problem(exc, name) from None


def _open_leaf(folder: int, leaf: str, name: str) -> int:
    try:
        # Look before opening: opening a device can have effects of its own.
        before = os.stat(leaf, dir_fd=folder, follow_symlinks=False)
        if not stat.S_ISREG(before.st_mode):
            raise NotRegularFile(name, kind_of(before.st_mode))
        fd = os.open(leaf, _OPEN_FLAGS, dir_fd=folder)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a link since we looked
            raise NotRegularFile(name, "a symbolic link") from None
        raise problem(exc, name) from None
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode):  # swapped since we looked: never read through it
        os.close(fd)
        raise NotRegularFile(name, kind_of(opened.st_mode))
    os.set_blocking(fd, True)
    return fd


def read_bounded(path: Path, root: Path, limit: int, what: str) -> bytes:
    """The whole file, if it holds at most `limit` bytes; else a JobInputError naming the limit."""
    fd = open_regular(path, root)
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise problem(exc, display(path.name)) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise JobInputError(
            f"{display(path.name)}: larger than the {_size(limit)} allowed for {what}",
            "make it smaller",
        )
    return data


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"


def lstat(path: Path) -> os.stat_result | None:
    """What is at `path` itself (a link is not followed); None when nothing is there."""
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise problem(exc, display(path.name)) from None


class Folder:
    """A folder reached without links, and what the file's fate does in it: every operation is
    relative to the folder's descriptor, so no name is ever resolved through a link again, and
    a folder swapped for a link after the checks changes nothing."""

    COPY_CHUNK = 8 * 1024 * 1024

    def __init__(self, path: Path, base: Path, *, create: bool = False) -> None:
        self.path = path
        self.fd = open_folder(path, base, create=create)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def entry(self, name: str) -> os.stat_result | None:
        """What is at `name` itself (a link is not followed), or None."""
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        return os.listdir(self.fd)

    def unlink(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def move_to(self, name: str, target: Folder, new_name: str, beat: Callable[[], None]) -> None:
        """Move `name` into `target` as `new_name`, never replacing anything there; safe to
        repeat after a crash. Across file systems the bytes are copied through a partial file
        (calling `beat` per chunk: a big copy is slow, not stuck)."""
        source = self.entry(name)
        if source is None:
            return  # moved already
        mine = (source.st_dev, source.st_ino)
        try:
            os.link(name, new_name, src_dir_fd=self.fd, dst_dir_fd=target.fd, follow_symlinks=False)
        except FileExistsError:
            there = target.entry(new_name)
            if there is None or (there.st_dev, there.st_ino) != mine:
                raise  # something else is there: no overwrite, ever
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
                raise
            if not self._copy(name, mine, target, new_name, beat):
                return  # a newer version took its name meanwhile: this one is gone already
        # Only the file moved: a newer version renamed over it meanwhile (an rsync during a
        # long copy) is a file of its own, never deleted here.
        now = self.entry(name)
        if now is not None and (now.st_dev, now.st_ino) == mine:
            os.unlink(name, dir_fd=self.fd)

    def _copy(
        self,
        name: str,
        mine: tuple[int, int],
        target: Folder,
        new_name: str,
        beat: Callable[[], None],
    ) -> bool:
        """Copy `name` (the file `mine` identifies) to `target`; False when `name` is another
        file now, and nothing was copied."""
        partial = f".ingestd-partial-{secrets.token_hex(6)}"  # short: any name length works
        source = _open_leaf(self.fd, name, display(name))
        opened = os.fstat(source)
        if (opened.st_dev, opened.st_ino) != mine:
            os.close(source)
            return False
        try:
            made = os.open(
                partial,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=target.fd,
            )
            try:
                with os.fdopen(source, "rb", closefd=False) as src, os.fdopen(made, "wb") as dst:
                    while chunk := src.read(self.COPY_CHUNK):
                        beat()
                        dst.write(chunk)
                    dst.flush()
                    os.fsync(dst.fileno())
                    st = os.fstat(source)
                    os.fchmod(dst.fileno(), stat.S_IMODE(st.st_mode))
                    os.utime(dst.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))
                os.link(partial, new_name, src_dir_fd=target.fd, dst_dir_fd=target.fd)
            finally:
                target.unlink(partial)
        finally:
            os.close(source)
        return True


def is_this_version(job: Job) -> bool:
    """The file at the job's path is the version the job uploaded (a link is not followed)."""
    try:
        return version_of(os.lstat(job.path)) == job.version
    except OSError:
        return False
