"""Sidecar bounds, checked before parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingestd.core.jobs import JobState

S = JobState


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
