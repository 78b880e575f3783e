"""The sandbox's account logic without HTTP: limits, list filters, swaps, switches."""

from __future__ import annotations

import pytest

from ingestd.sandbox.bodies import rails_params
from ingestd.sandbox.customizations_api import merged
from ingestd.sandbox.faults import ENDPOINTS, FEATURES, Faults
from ingestd.sandbox.server import ROUTES
from ingestd.sandbox.store import LimitReached, Media, Store


def _add(store: Store, name: str, **values: object) -> Media:
    project = values.pop("project", None) or store.daily_uploads_project()
    defaults: dict[str, object] = {"description": "", "type": "Video", "size": 10}
    return store.add_media(name=name, project=project, **{**defaults, **values})


def test_images_count_toward_the_video_limit() -> None:
    store = Store()
    _add(store, "clip.mp4", video_limit=2)
    _add(store, "thumb.png", type="Image", video_limit=2)
    with pytest.raises(LimitReached) as refused:
        _add(store, "another.png", type="Image", video_limit=2)
    assert refused.value.kind == "video"
    assert store.counted_medias(include_archived=False) == 2


def test_archived_medias_count_toward_the_limit_only_when_switched() -> None:
    store = Store()
    _add(store, "old.mp4", archived=True)
    assert store.counted_medias(include_archived=False) == 0
    assert store.counted_medias(include_archived=True) == 1
    _add(store, "new.mp4", video_limit=1)  # the archived one leaves room
    with pytest.raises(LimitReached):
        _add(store, "third.mp4", video_limit=2, archived_count=True)


def test_storage_limit_counts_every_byte_archived_included() -> None:
    store = Store()
    _add(store, "a.mp4", size=60, archived=True)
    with pytest.raises(LimitReached) as refused:
        _add(store, "b.mp4", size=41, storage_limit=100)
    assert refused.value.kind == "storage"
    _add(store, "c.mp4", size=40, storage_limit=100)
    assert store.stored_bytes() == 100


def test_list_filters_as_wistia_reads_them() -> None:
    store = Store()
    other = store.create_project("Other")
    a = _add(store, "a.mp4", tags=["x", "y"])
    b = _add(store, "b.mp4", tags=["x"], project=other)
    c = _add(store, "c.png", type="Image", archived=True)
    names = lambda params: [m.name for m in store.list_medias(params)]  # noqa: E731
    assert names({}) == ["a.mp4", "b.mp4", "c.png"]
    assert names({"sort_direction": "0"}) == ["c.png", "b.mp4", "a.mp4"]
    assert names({"tags": ["x", "y"]}) == ["a.mp4"]  # every tag named
    assert names({"tags": "x"}) == ["a.mp4", "b.mp4"]
    assert names({"hashed_ids": [a.hashed_id, c.hashed_id]}) == ["a.mp4", "c.png"]
    assert names({"project_id": other.hashed_id}) == ["b.mp4"]
    assert names({"archived": "true"}) == ["c.png"]
    assert names({"archived": "false"}) == ["a.mp4", "b.mp4"]
    assert names({"type": "Image"}) == ["c.png"]
    assert names({"name": "a.mp"}) == []  # exact names only
    assert b.hashed_id not in [m.hashed_id for m in store.list_medias({"name": "a.mp4"})]


def test_customizations_merge_deep_or_shallow_and_null_deletes() -> None:
    saved = {"playerColor": "ff0000", "plugin": {"a": {"on": "true"}, "b": {"on": "true"}}}
    change = {"playerColor": None, "autoPlay": True, "plugin": {"a": None, "c": {"x": 1}}}
    assert merged(saved, change, deep=True) == {
        "autoPlay": "true",
        "plugin": {"b": {"on": "true"}, "c": {"x": "1"}},
    }
    assert merged(saved, change, deep=False) == {
        "autoPlay": "true",
        "plugin": {"c": {"x": "1"}},
    }


def test_params_are_read_as_rails_reads_them() -> None:
    params = rails_params([("tags[]", "a"), ("tags[]", "b"), ("name", "x"), ("name", "y")])
    assert params == {"tags": ["a", "b"], "name": "y"}


def test_switches_are_checked_whole_before_any_applies() -> None:
    faults = Faults()
    with pytest.raises(ValueError, match="error_body"):
        faults.update(video_limit=3, error_body="xml")
    assert faults.video_limit is None
    with pytest.raises(ValueError, match="forbidden"):
        faults.update(forbidden=["captions", "no-such-endpoint"])
    faults.update(
        forbidden=["captions", "tags"], storage_limit=10, project_hashed_id_key="hashed_id"
    )
    assert faults.forbidden == ("captions", "tags")
    with pytest.raises(ValueError):
        Faults(no_video_limit="none")


def test_every_route_is_named_in_the_lists_forbidden_takes() -> None:
    for route in ROUTES:
        assert route.name in ENDPOINTS, route
        assert route.feature in FEATURES, route
    assert {r.name for r in ROUTES} == ENDPOINTS
