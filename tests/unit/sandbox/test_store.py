"""The sandbox's account logic without HTTP: limits, list filters, swaps, switches."""

from __future__ import annotations

import pytest

from ingestd.sandbox.bodies import rails_params
from ingestd.sandbox.customizations_api import merged
from ingestd.sandbox.faults import ENDPOINTS, FEATURES, Faults
from ingestd.sandbox.jobs import SwapJob
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


def _swap(store: Store, **job: object) -> tuple[Media, Media, SwapJob]:
    original = _add(store, "v1.mp4", size=10, sha256="old", created=0.0)
    replacement = _add(store, "v2.mp4", size=20, sha256="new", created=0.0)
    original.captions["eng"] = "1\n00:00:00,000 --> 00:00:01,000\nhi\n"
    values: dict[str, object] = {"seconds": 3.0, **job}
    swap = store.start_swap(original, replacement, values)
    swap.created = 100.0
    return original, replacement, swap


def test_a_swap_moves_through_its_states_and_then_the_bytes() -> None:
    store = Store(processing_seconds=1.0)
    original, replacement, job = _swap(store)
    assert job.status(100.5) == "queued"
    store.settle(now=101.5)
    assert job.status(101.5) == "started"
    assert original.sha256 == "old"  # nothing moves before the end
    store.settle(now=103.0)
    assert job.status(103.0) == "finished"
    assert (original.sha256, original.size) == ("new", 20)
    assert original.name == "v1.mp4" and original.captions  # what it was, it keeps
    assert original.updated == 103.0
    assert replacement.hashed_id in store.medias  # still listed by default


def test_a_swap_can_remove_or_exchange_the_replacement() -> None:
    store = Store(processing_seconds=1.0)
    _, replacement, _ = _swap(store, keeps_replacement=False)
    store.settle(now=200.0)
    assert replacement.hashed_id not in store.medias
    assert store.swap_removed == [replacement]

    store = Store(processing_seconds=1.0)
    _, replacement, _ = _swap(store, exchanges_files=True)
    store.settle(now=200.0)
    assert (replacement.sha256, replacement.size) == ("old", 10)


def test_a_swap_fails_when_told_or_when_its_replacement_did() -> None:
    store = Store(processing_seconds=1.0)
    original, _, job = _swap(store, fails=True)
    store.settle(now=200.0)
    assert job.status(200.0) == "failed" and original.sha256 == "old"

    store = Store(processing_seconds=1.0)
    original, replacement, job = _swap(store)
    replacement.size = 0  # an empty file Wistia cannot process: the replacement failed
    store.settle(now=200.0)
    assert job.status(200.0) == "failed" and original.sha256 == "old"


def test_a_swap_waits_for_its_replacement_to_be_processed() -> None:
    store = Store(processing_seconds=10.0)
    original, replacement, job = _swap(store)
    replacement.created = 99.0  # ready at 109
    store.settle(now=105.0)
    assert job.status(105.0) == "started"
    store.settle(now=109.5)
    assert job.status(109.5) == "finished" and original.sha256 == "new"


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
