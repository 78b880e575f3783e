"""What complete means: container walks on crafted bytes, open writers seen through /proc and
read leases with real processes."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestd.pipeline.watch import containers, writers
from ingestd.pipeline.watch.containers import problem_in
from tests.media_files import EBML_HEADER, FTYP, MOOV, SEGMENT_ID, box, large_box, vint

# --- ISO media --------------------------------------------------------------------------------


def check(data: bytes) -> str | None:
    return problem_in(lambda offset, length: data[offset : offset + length], len(data))


def test_whole_mp4s_pass() -> None:
    mdat = box(b"mdat", bytes(5000))
    assert check(FTYP + box(b"free") + mdat + MOOV) is None  # moov last, as most encoders
    assert check(FTYP + MOOV + mdat) is None  # faststart: moov first
    assert check(FTYP + MOOV + large_box(b"mdat", bytes(3000))) is None  # 64-bit size
    assert check(FTYP + MOOV + struct.pack(">I4s", 0, b"mdat") + bytes(999)) is None  # to end


def test_an_mp4_cut_inside_mdat_is_incomplete() -> None:
    whole = FTYP + box(b"mdat", bytes(5000)) + MOOV
    cut = whole[: len(FTYP) + 2500]
    assert check(cut) == "incomplete MP4: box 'mdat' runs past the end of the file"
    faststart = FTYP + MOOV + box(b"mdat", bytes(5000))
    assert check(faststart[:-1]) == "incomplete MP4: box 'mdat' runs past the end of the file"
    sixty_four = FTYP + MOOV + large_box(b"mdat", bytes(3000))
    assert check(sixty_four[:-10]) == "incomplete MP4: box 'mdat' runs past the end of the file"


def test_an_mp4_whose_boxes_are_whole_but_lack_moov_is_incomplete() -> None:
    # The writer went away after mdat: every box is whole, but the index is missing.
    assert "no 'moov' box" in (check(FTYP + box(b"mdat", bytes(800))) or "")
    assert "no 'moov' box" in (check(FTYP + struct.pack(">I4s", 0, b"mdat") + bytes(99)) or "")


def test_truncated_and_lying_box_headers() -> None:
    assert check(FTYP + MOOV + b"\x00\x00\x01") == (
        "incomplete MP4: the file ends inside a box header"
    )
    half_large = FTYP + MOOV + struct.pack(">I4s", 1, b"mdat") + b"\x00\x00"
    assert check(half_large) == "incomplete MP4: the file ends inside the header of box 'mdat'"
    assert check(FTYP + box(b"free", declared=3) + MOOV) == (
        "not a whole MP4: box 'free' declares 3 bytes, less than its header"
    )
    assert "declares 4 bytes" in (check(FTYP + large_box(b"mdat", declared=4)) or "")
    huge = FTYP + MOOV + large_box(b"mdat", bytes(10), declared=2**63)
    assert check(huge) == "incomplete MP4: box 'mdat' runs past the end of the file"


def test_box_names_from_the_file_are_escaped() -> None:
    hostile = FTYP + MOOV + box(b"\x1b[2J", bytes(10), declared=10**6)
    reason = check(hostile) or ""
    assert "\x1b" not in reason and "'\\x1b[2J'" in reason
    assert reason.startswith("not a whole MP4")


def test_zeros_where_a_box_should_begin_are_not_a_whole_file() -> None:
    # A preallocated copy: the full size at once, the tail not written yet.
    assert check(FTYP + MOOV + bytes(5000)) == (
        "incomplete MP4: it ends in zeros where a box should begin"
    )


def test_other_files_get_no_container_check() -> None:
    assert check(b"") is None
    assert check(os.urandom(4000).replace(b"ftyp", b"xxxx")[:4] + b"xxxx" + bytes(100)) is None
    assert check(b"\x00\x00\x01\xba" + bytes(5000)) is None  # an MPEG program stream


def test_a_file_of_countless_tiny_boxes_is_not_walked_forever(monkeypatch) -> None:
    monkeypatch.setattr(containers, "MAX_TOP_LEVEL_BOXES", 50)
    # Thousands of empty boxes and no moov: past the bound the walk stops and takes it.
    assert check(FTYP + box(b"free") * 5000) is None
    assert check(FTYP + box(b"free") * 20) is not None  # below the bound: judged


# --- Matroska ---------------------------------------------------------------------------------


UNKNOWN = b"\x01\xff\xff\xff\xff\xff\xff\xff"  # an 8-byte size with every value bit set


def segment(payload: bytes, *, declared: int | None = None, length: int = 8) -> bytes:
    size = len(payload) if declared is None else declared
    return SEGMENT_ID + vint(size, length) + payload


def test_whole_matroska_files_pass() -> None:
    assert check(EBML_HEADER + segment(bytes(4000))) is None
    assert check(EBML_HEADER + segment(bytes(300), length=2)) is None
    assert check(EBML_HEADER + SEGMENT_ID + UNKNOWN + bytes(500)) is None  # live: unknown size
    void = b"\xec" + vint(10, 1) + bytes(10)
    assert check(EBML_HEADER + void + segment(bytes(100))) is None


def test_a_matroska_file_cut_short_is_incomplete() -> None:
    whole = EBML_HEADER + segment(bytes(4000))
    assert check(whole[:2000]) == "incomplete Matroska: the Segment runs past the end of the file"
    assert check(EBML_HEADER[:10]) == "incomplete Matroska: the file ends inside its EBML header"
    assert check(EBML_HEADER) == "incomplete Matroska: the file ends before its Segment"
    assert check(EBML_HEADER + SEGMENT_ID[:2]) == (
        "incomplete Matroska: the file ends inside an element header"
    )
    assert check(EBML_HEADER + SEGMENT_ID + b"\x01\xff") == (
        "incomplete Matroska: the file ends inside an element header"
    )


def test_malformed_matroska_sizes() -> None:
    assert check(b"\x1a\x45\xdf\xa3\x00" + bytes(40)) == (
        "not a whole Matroska file: malformed element"
    )
    no_size = b"\x1a\x45\xdf\xa3" + UNKNOWN + bytes(40)
    assert check(no_size) == "not a whole Matroska file: the EBML header declares no size"
    voids = (b"\xec" + vint(0, 1)) * 100
    assert check(EBML_HEADER + voids + segment(b"")) == (
        "not a whole Matroska file: no Segment after the EBML header"
    )


def test_problem_reads_an_open_file(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(FTYP + box(b"mdat", bytes(5000)))
    fd = os.open(clip, os.O_RDONLY)
    try:
        assert "no 'moov' box" in (containers.problem(fd, os.fstat(fd).st_size) or "")
    finally:
        os.close(fd)


# --- open writers -----------------------------------------------------------------------------

# How a shell opens descriptor 3: for reading, appending (write access), reading and writing.
READ, APPEND, READ_WRITE = "<", ">>", "<>"


def _holder(path: Path, how: str, **popen: object) -> subprocess.Popen[str]:
    """A shell that keeps `path` open (`how`: READ, APPEND, READ_WRITE) until stdin closes."""
    script = f'exec 3{how}"$1" && echo open && read line'
    child = subprocess.Popen(
        ["/bin/sh", "-c", script, "sh", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        **popen,  # type: ignore[arg-type]
    )
    assert child.stdout is not None and child.stdout.readline() == "open\n"
    return child


def _release(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.close()
    child.wait(timeout=10)


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


@pytest.fixture
def leases_on() -> Iterator[None]:
    before = signal.signal(signal.SIGIO, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGIO, before)


def test_proc_names_the_process_that_writes(tmp_path: Path) -> None:
    written, read, other = tmp_path / "w.mp4", tmp_path / "r.mp4", tmp_path / "o.mp4"
    for path in (written, read, other):
        path.write_bytes(b"x")
    writer = _holder(written, APPEND)
    reader = _holder(read, READ)
    both = _holder(other, READ_WRITE)
    try:
        found = writers.find_writers({_identity(p) for p in (written, read, other)})
        assert found.writers[_identity(written)].pid == writer.pid
        assert found.writers[_identity(other)].pid == both.pid
        assert _identity(read) not in found.writers  # open only for reading: not a writer
        assert found.writers[_identity(written)].command in ("sh", "dash", "bash")
        assert f"(pid {writer.pid})" in str(found.writers[_identity(written)])
        # Below the watch folder only: a link naming a path elsewhere is not even looked at.
        ids = {_identity(written)}
        assert writers.find_writers(ids, under=tmp_path).writers.keys() == ids
        assert writers.find_writers(ids, under=tmp_path / "elsewhere").writers == {}
    finally:
        for child in (writer, reader, both):
            _release(child)
    assert writers.find_writers({_identity(written)}).writers == {}  # closed: none


def test_a_read_lease_tells_whether_anyone_writes(tmp_path: Path, leases_on: None) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x" * 10)
    fd = os.open(clip, os.O_RDONLY)
    try:
        assert writers.open_for_writing(fd) is False
        writer = _holder(clip, APPEND)
        try:
            assert writers.open_for_writing(fd) is True
        finally:
            _release(writer)
        assert writers.open_for_writing(fd) is False
    finally:
        os.close(fd)


def test_without_sigio_ignored_no_lease_is_taken(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    before = signal.signal(signal.SIGIO, signal.SIG_DFL)
    fd = os.open(clip, os.O_RDONLY)
    try:
        with pytest.raises(writers.LeaseUnavailable):
            writers.open_for_writing(fd)
        check = writers.WriterCheck()
        assert check.lease_says_written(fd, "clip.mp4") is False  # cannot tell: says so once
    finally:
        os.close(fd)
        signal.signal(signal.SIGIO, before)


PROBE = """
import json, os, sys
from ingestd.pipeline.watch import writers
writers.allow_leases()
path = sys.argv[1]
st = os.stat(path)
seen = writers.find_writers({(st.st_dev, st.st_ino)})
fd = os.open(path, os.O_RDONLY)
try:
    lease = writers.open_for_writing(fd)
except writers.LeaseUnavailable as exc:
    lease = str(exc)
print(json.dumps({"proc": len(seen.writers), "unreadable": seen.unreadable, "lease": lease}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a writer as another user")
def test_another_users_writer_needs_cap_lease_when_proc_cannot_show_it(
    shared_folder: Path,
) -> None:
    """The unit's choice, shown with real processes: without ptrace rights /proc hides another
    user's descriptors, and a read lease sees the writer given CAP_LEASE alone."""
    clip = shared_folder / "clip.mp4"
    writer = _holder(clip, APPEND, user=65534, group=65534)
    try:

        def probe(bounding: str) -> dict[str, object]:
            import json

            result = subprocess.run(
                ["setpriv", f"--bounding-set={bounding}", sys.executable, "-c", PROBE, clip],
                capture_output=True,
                text=True,
                timeout=30,
                cwd=Path(__file__).parents[4],
            )
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout)

        with_lease = probe("-all,+lease")
        assert with_lease["proc"] == 0 and with_lease["unreadable"] > 0  # /proc cannot show it
        assert with_lease["lease"] is True  # the lease does
        without = probe("-all")
        assert without["proc"] == 0 and "CAP_LEASE" in str(without["lease"])
    finally:
        _release(writer)
