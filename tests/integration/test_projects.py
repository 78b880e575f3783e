"""Projects from folders: each top folder of the watch folder is a Wistia project, found by
name or made once, whatever the workers and crashes do."""

from __future__ import annotations

import json
from pathlib import Path

from ingestd.core.jobs import JobState
from tests.conftest import DaemonProcess, wait_until, write_media


def _projects_named(daemon: DaemonProcess, name: str) -> list:
    return [p for p in daemon.sandbox.store.projects.values() if p.name == name]


def _media_of(daemon: DaemonProcess, path: Path):
    job = daemon.wait_state(path, JobState.DONE, timeout=30)
    return daemon.sandbox.store.medias[job.hashed_id]


def test_three_folders_and_the_root_give_three_projects_and_the_default(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"project_from_folder": True, "workers": 3})
    sandbox_default = daemon.sandbox.store.create_project("Default for ingestd")
    daemon.config["wistia"]["project_id"] = sandbox_default.hashed_id
    daemon.start()
    files = {
        "Marketing": [daemon.watch / "Marketing" / f"spot-{n}.mp4" for n in range(4)],
        "Training": [daemon.watch / "Training" / "2026" / f"lesson-{n}.mp4" for n in range(4)],
        "Events": [daemon.watch / "Events" / f"talk-{n}.mp4" for n in range(4)],
    }
    root = daemon.watch / "loose.mp4"
    seed = 0
    for paths in files.values():  # all at once: the workers race for each new folder
        for path in paths:
            seed += 1
            write_media(path, 50_000, seed=seed)
    write_media(root, 50_000, seed=99)
    medias = {path: _media_of(daemon, path) for paths in files.values() for path in paths}
    for name, paths in files.items():
        (project,) = _projects_named(daemon, name)  # one each, however the workers raced
        assert all(medias[path].project is project for path in paths)
    assert _media_of(daemon, root).project is sandbox_default
    asked = [r for r in daemon.sandbox.records if r.path.endswith("/projects.json")]
    assert len([r for r in asked if r.method == "POST"]) == 3
    # One look-up per folder, not per file: the list was read once for each new folder.
    assert len([r for r in asked if r.method == "GET"]) == 3


def test_an_existing_project_of_that_name_is_reused_from_any_page(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"project_from_folder": True})
    for n in range(150):  # the list is paged (100 per page): the one wanted is on page 2
        daemon.sandbox.store.create_project(f"Other {n}")
    existing = daemon.sandbox.store.create_project("Customers")
    daemon.start()
    clip = daemon.watch / "Customers" / "case-study.mp4"
    write_media(clip, seed=1)
    assert _media_of(daemon, clip).project is existing
    assert len(_projects_named(daemon, "Customers")) == 1
    assert not [r for r in daemon.sandbox.records if r.method == "POST" and "projects" in r.path]


def test_a_sidecar_project_id_wins_over_the_folder(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"project_from_folder": True}).start()
    chosen = daemon.sandbox.store.create_project("Chosen by clip.json")
    clip = daemon.watch / "Folder" / "clip.mp4"
    clip.parent.mkdir()
    (clip.parent / "clip.json").write_text(json.dumps({"project_id": chosen.hashed_id}))
    write_media(clip, seed=2)
    assert _media_of(daemon, clip).project is chosen
    assert _projects_named(daemon, "Folder") == []  # not even made


def test_a_kill_right_after_the_project_is_made_makes_no_second_one(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"project_from_folder": True, "workers": 1}).start()
    daemon.sandbox.faults.update(slow_seconds=5.0)  # answers held back after the work is done
    clip = daemon.watch / "Launch" / "teaser.mp4"
    write_media(clip, seed=3)
    wait_until(lambda: _projects_named(daemon, "Launch"), what="the project made in Wistia")
    daemon.kill()  # before its answer arrived: the ledger never heard of it
    daemon.sandbox.faults.update(slow_seconds=0.0)
    daemon.start()
    (project,) = _projects_named(daemon, "Launch")
    assert _media_of(daemon, clip).project is project


def test_a_project_deleted_in_wistia_is_made_again_not_refused_forever(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"project_from_folder": True}).start()
    first = daemon.watch / "Promo" / "first.mp4"
    write_media(first, seed=4)
    old = _media_of(daemon, first).project
    daemon.sandbox.store.projects.pop(old.hashed_id)  # someone deleted it in Wistia
    second = daemon.watch / "Promo" / "second.mp4"
    write_media(second, seed=5)
    wait_until(lambda: _projects_named(daemon, "Promo"), timeout=30, what="the project made again")
    (remade,) = _projects_named(daemon, "Promo")
    assert remade is not old and _media_of(daemon, second).project is remade
