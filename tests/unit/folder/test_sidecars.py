"""Reading, validating and merging sidecar files; URL import rules."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ingestd.core.errors import JobInputError
from ingestd.folder.files import Folder, NotRegularFile, open_regular
from ingestd.folder.sidecars import (
    SidecarError,
    caption_files,
    language_code,
    merge,
    own_sidecar_names,
    read_captions,
    read_metadata,
)
from ingestd.folder.urlimport import for_wistia, media_name_of

SRT = "1\n00:00:00,000 --> 00:00:01,000\nhi\n"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("en", "eng"),
        ("eng", "eng"),
        ("fr", "fra"),
        ("fre", "fra"),
        ("fra", "fra"),
        ("de", "deu"),
        ("ger", "deu"),
        ("DEU", "deu"),
        ("nl", "nld"),
        ("dut", "nld"),
        ("tlh", "tlh"),
        ("xx", None),
        ("zzz", None),
        ("e", None),
        ("engl", None),
    ],
)
def test_language_codes_become_iso_639_2_t(given: str, expected: str | None) -> None:
    assert language_code(given) == expected


def test_merge_is_key_by_key_and_nested() -> None:
    base = {"a": 1, "c": {"x": 1, "y": 2}, "d": [1]}
    assert merge(base, {"a": 2, "c": {"y": 3}, "d": [2]}) == {
        "a": 2,
        "c": {"x": 1, "y": 3},
        "d": [2],
    }


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_nearest_defaults_win_and_own_sidecar_overrides(tmp_path: Path) -> None:
    write(
        tmp_path / "_defaults.json",
        json.dumps(
            {"project_id": "root", "description": "root", "customizations": {"a": 1, "b": 1}}
        ),
    )
    write(
        tmp_path / "x" / "_defaults.json",
        json.dumps({"project_id": "x", "customizations": {"b": 2, "c": 2}}),
    )
    write(
        tmp_path / "x" / "y" / "clip.json",
        json.dumps({"name": "Own", "customizations": {"c": 3}, "extra": True}),
    )
    metadata = read_metadata(tmp_path / "x" / "y" / "clip.mp4", tmp_path)
    assert metadata.name == "Own"
    assert metadata.project_id == "x" and metadata.description == "root"
    assert metadata.customizations == {"a": 1, "b": 2, "c": 3}
    assert metadata.unknown == ("clip.json: extra",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"name": "x",\n "description": }', r"clip\.json, line 2 column 17"),
        ('["not", "an object"]', "must hold a JSON object"),
        ('{"name": 5}', '"name" must be a string'),
        ('{"name": ""}', '"name" is empty'),
        ('{"name": "' + "n" * 256 + '"}', "longer than Wistia's 255"),
        ('{"contact_id": "abc"}', '"contact_id" must be an integer'),
        ('{"project_id": true}', '"project_id" must be'),
        ('{"customizations": [1]}', '"customizations" must be an object'),
        ('{"customizations": {"a": 1e999}}', "a number too large to send"),
        ('{"description": "\\ud800"}', "not valid Unicode"),
        ('{"customizations": {"\\udfff": 1}}', "not valid Unicode"),
        ('{"tags": "launch"}', '"tags" must be a list of strings'),
        ('{"tags": ["ok", 5]}', '"tags" must be a list of strings'),
        ('{"tags": ["ok", " "]}', '"tags" holds an empty tag'),
        ('{"tags": ["' + "t" * 256 + '"]}', "a tag is longer than 255"),
    ],
)
def test_bad_metadata_names_file_and_problem(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path / "clip.json", text)
    with pytest.raises(SidecarError, match=message):
        read_metadata(tmp_path / "clip.mp4", tmp_path)


def test_tags_add_up_down_the_folders_in_order_each_once(tmp_path: Path) -> None:
    write(tmp_path / "_defaults.json", json.dumps({"tags": ["brand", "2026"]}))
    write(tmp_path / "x" / "_defaults.json", json.dumps({"name": "n", "tags": ["x", "brand"]}))
    write(tmp_path / "x" / "y" / "clip.json", json.dumps({"tags": [" own ", "x", "own"]}))
    metadata = read_metadata(tmp_path / "x" / "y" / "clip.mp4", tmp_path)
    assert metadata.tags == ("brand", "2026", "x", "own")
    assert read_metadata(tmp_path / "other.mp4", tmp_path).tags == ("brand", "2026")
    write(tmp_path / "_defaults.json", "{}")
    assert read_metadata(tmp_path / "other.mp4", tmp_path).tags is None  # none named


def test_too_many_tags_altogether_hold_the_job(tmp_path: Path) -> None:
    write(tmp_path / "_defaults.json", json.dumps({"tags": [f"a{n}" for n in range(150)]}))
    write(tmp_path / "clip.json", json.dumps({"tags": [f"b{n}" for n in range(60)]}))
    with pytest.raises(SidecarError, match="210 tags; at most 200"):
        read_metadata(tmp_path / "clip.mp4", tmp_path)


def test_numeric_ids_are_accepted(tmp_path: Path) -> None:
    write(tmp_path / "clip.json", '{"contact_id": 42, "project_id": 1234}')
    metadata = read_metadata(tmp_path / "clip.mp4", tmp_path)
    assert (metadata.contact_id, metadata.project_id) == ("42", "1234")


def test_caption_files_by_language(tmp_path: Path) -> None:
    for name in ("clip.srt", "clip.fr.srt", "clip.ger.srt", "clip.final.srt", "other.en.srt"):
        write(tmp_path / name, SRT)
    found = caption_files(tmp_path / "clip.mp4", "en")
    assert [(lang, path.name) for lang, path in found] == [
        ("deu", "clip.ger.srt"),
        ("eng", "clip.srt"),
        ("fra", "clip.fr.srt"),
    ]


def test_unknown_language_and_duplicates_are_problems(tmp_path: Path) -> None:
    write(tmp_path / "clip.xx.srt", SRT)
    with pytest.raises(SidecarError, match="'xx' is not an ISO 639 language code"):
        caption_files(tmp_path / "clip.mp4", "eng")
    (tmp_path / "clip.xx.srt").unlink()
    write(tmp_path / "clip.fr.srt", SRT)
    write(tmp_path / "clip.fre.srt", SRT)
    with pytest.raises(SidecarError, match="both captions in fra"):
        caption_files(tmp_path / "clip.mp4", "eng")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "1\n00:00:00,000 --> 00:00:01,000\nok\n\n2\n00:00:0x,000 --> 00:00:02,000\nbad\n",
            r"clip\.srt, line 5: not a valid subtitle block",
        ),
        ("just some text\n", r"clip\.srt, line 1"),
        ("", "holds no subtitles"),
        ("1\n00:00:05,000 --> 00:00:01,000\nbackwards\n", "line 2: subtitle 1 ends before"),
        ("\ufeff".encode("utf-16-le") + SRT.encode("utf-16-le"), "UTF-16, not UTF-8"),
        (SRT.encode() + "caf\xe9\n".encode("latin-1"), r"line 4: not UTF-8"),
    ],
)
def test_broken_captions_say_file_line_and_what(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    write(tmp_path / "clip.srt", content)
    with pytest.raises(SidecarError, match=message):
        read_captions(tmp_path / "clip.mp4", tmp_path, "eng")


def test_hostile_caption_lines_take_one_pass(tmp_path: Path) -> None:
    # Long digit runs made the srt package's regular expression backtrack for hours.
    write(tmp_path / "clip.srt", SRT + "0" * 200_000 + "x\n")  # text of the block: valid
    (caption,) = read_captions(tmp_path / "clip.mp4", tmp_path, "eng")
    assert caption.text.endswith("x\n")
    write(tmp_path / "clip.srt", "1\n" + "0" * 200_000 + "\n")
    with pytest.raises(SidecarError, match="line 1: not a valid subtitle block"):
        read_captions(tmp_path / "clip.mp4", tmp_path, "eng")


def test_caption_text_keeps_the_file_without_its_bom(tmp_path: Path) -> None:
    write(tmp_path / "clip.srt", "\ufeff" + SRT)
    (caption,) = read_captions(tmp_path / "clip.mp4", tmp_path, "eng")
    assert caption.text == SRT and caption.language == "eng"


def test_own_sidecars_follow_the_media_but_defaults_stay(tmp_path: Path) -> None:
    for name in (
        "clip.json",
        "clip.srt",
        "clip.en.srt",
        "clip.final.srt",
        "_defaults.json",
        "clipper.srt",
    ):
        write(tmp_path / name, SRT)
    assert own_sidecar_names("clip.mp4", os.listdir(tmp_path)) == [
        "clip.json",
        "clip.srt",
        "clip.en.srt",
    ]


def move(source: Path, target: Path, root: Path) -> None:
    with Folder(source.parent, root) as src, Folder(target.parent, root, create=True) as dst:
        src.move_to(source.name, dst, target.name, lambda: None)


def test_move_never_overwrites_and_can_be_repeated(tmp_path: Path) -> None:
    source = write(tmp_path / "a.mp4", "new")
    taken = write(tmp_path / "archive" / "a.mp4", "old")
    with pytest.raises(FileExistsError):
        move(source, taken, tmp_path)
    assert taken.read_text() == "old" and source.exists()
    target = tmp_path / "archive" / "deep" / "b.mp4"
    move(source, target, tmp_path)
    move(source, target, tmp_path)  # repeated after a crash: nothing to do
    assert target.read_text() == "new" and not source.exists()


def test_move_to_another_file_system_copies_whole_and_follows_no_link(tmp_path: Path) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system to move to")
    archive = Path(tempfile.mkdtemp(dir=other))
    try:
        source = write(tmp_path / ("n" * 251 + ".mp4"), "x" * 100_000)  # 255 bytes
        os.utime(source, ns=(10**18, 10**18))
        with Folder(tmp_path, tmp_path) as src, Folder(archive, archive) as dst:
            src.move_to(source.name, dst, source.name, lambda: None)
            assert (archive / source.name).read_text() == "x" * 100_000
            assert (archive / source.name).stat().st_mtime_ns == 10**18
            assert not source.exists() and not list(archive.glob(".*partial*"))
            (tmp_path / "b.mp4").symlink_to(tmp_path.parent)  # a link: never read through
            with pytest.raises(NotRegularFile):
                src.move_to("b.mp4", dst, "b.mp4", lambda: None)
    finally:
        shutil.rmtree(archive)


def test_a_newer_version_renamed_in_during_a_long_copy_is_never_deleted(tmp_path: Path) -> None:
    """An rsync renames a new version over the file while it is copied to another file
    system: the old bytes are archived, and the new version stays in the folder."""
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system to move to")
    archive = Path(tempfile.mkdtemp(dir=other))
    try:
        source = write(tmp_path / "clip.mp4", "v1" * 100_000)

        def newer_version_arrives() -> None:
            if not (tmp_path / "clip.mp4").read_text().startswith("v2"):
                write(tmp_path / "new.tmp", "v2, the newer version")
                os.rename(tmp_path / "new.tmp", source)

        with Folder(tmp_path, tmp_path) as src, Folder(archive, archive) as dst:
            src.move_to(source.name, dst, source.name, newer_version_arrives)
        assert (archive / "clip.mp4").read_text() == "v1" * 100_000
        assert source.read_text() == "v2, the newer version"
    finally:
        shutil.rmtree(archive)


def test_a_folder_swapped_for_a_link_is_never_gone_through(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    write(elsewhere / "victim.mp4", "theirs")
    (root / "sub").mkdir(parents=True)
    (root / "sub").rmdir()
    (root / "sub").symlink_to(elsewhere)
    with pytest.raises(NotRegularFile, match="inside a symbolic link to a folder"):
        Folder(root / "sub", root)
    with pytest.raises(NotRegularFile, match="symbolic link"):
        open_regular(root / "sub" / "victim.mp4", root)
    archive = tmp_path / "archive"
    (archive / "planted").parent.mkdir()
    (archive / "planted").symlink_to(elsewhere)  # a link planted inside the archive
    with pytest.raises(NotRegularFile):
        Folder(archive / "planted" / "deeper", archive, create=True)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.mp4"]


def test_a_refused_folder_does_not_close_another_threads_descriptor(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    (root / "sub").mkdir(parents=True)
    write(root / "sub" / "a.mp4", "a")
    (root / "link").symlink_to(root / "sub")
    for _ in range(200):
        keep = os.open(tmp_path, os.O_RDONLY)  # takes the lowest free number, as others would
        with pytest.raises(NotRegularFile):
            open_regular(root / "link" / "a.mp4", root)
        os.fstat(keep)  # still open: nothing closed it twice
        os.close(keep)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.dropbox.com/s/abc/Clip.mp4?dl=0", "https://dl.dropbox.com/s/abc/Clip.mp4"),
        ("https://dropbox.com/s/abc/Clip.mp4?dl=1", "https://dl.dropbox.com/s/abc/Clip.mp4"),
        (
            "https://www.dropbox.com/s/raw/abc/Clip.mp4",
            "https://www.dropbox.com/s/raw/abc/Clip.mp4",
        ),
        (
            "https://www.dropbox.com/scl/fi/x1/C.mp4?rlkey=k&dl=0",
            "https://dl.dropbox.com/scl/fi/x1/C.mp4?rlkey=k",
        ),
        (
            "https://b.s3.amazonaws.com/v.mp4?X-Amz-Signature=a%2Fb&X-Amz-Expires=60",
            "https://b.s3.amazonaws.com/v.mp4?X-Amz-Signature=a%2Fb&X-Amz-Expires=60",
        ),
        ("https://example.com/my clip.mp4", "https://example.com/my%20clip.mp4"),
    ],
)
def test_urls_for_wistia(url: str, expected: str) -> None:
    assert for_wistia(url) == expected


@pytest.mark.parametrize("url", ["ftp://x.com/a.mp4", "file:///etc/passwd", "javascript:1", "x"])
def test_only_http_urls_are_imported(url: str) -> None:
    with pytest.raises(JobInputError, match="only http"):
        for_wistia(url)


def test_import_name_is_the_urls_file_name() -> None:
    assert media_name_of("https://dl.dropbox.com/s/a/My%20Clip.mp4") == "My Clip.mp4"


def test_json_sidecar_limits_are_checked_before_parsing(tmp_path: Path) -> None:
    from ingestd.folder.sidecars import SidecarError, read_metadata

    (tmp_path / "clip.json").write_text(json.dumps({"name": "x" * (1024 * 1024)}))
    with pytest.raises(SidecarError, match="larger than the 1 MiB"):
        read_metadata(tmp_path / "clip.mp4", tmp_path)
    (tmp_path / "clip.json").write_text('{"a": ' * 33 + "1" + "}" * 33)
    with pytest.raises(SidecarError, match="line 1: nested deeper than the 32"):
        read_metadata(tmp_path / "clip.mp4", tmp_path)
    (tmp_path / "clip.json").write_text(
        '{"a": ' * 31 + '"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["' + "}" * 31
    )
    assert read_metadata(tmp_path / "clip.mp4", tmp_path).name is None  # brackets in strings
