"""Thumbnails become the video's still; sidecars changed after done reach the done media once,
with no new upload; deleting a sidecar removes nothing."""

from __future__ import annotations

import json
import random
from pathlib import Path

from ingestd.core.jobs import JobState
from tests.conftest import DaemonProcess, wait_until, write_media

JPEG = b"\xff\xd8\xff\xe0" + bytes(12)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(8)
SRT = "1\n00:00:01,000 --> 00:00:02,000\nBonjour\n"


def image(magic: bytes, seed: int) -> bytes:
    return magic + random.Random(seed).randbytes(2000)


def _media(daemon: DaemonProcess, path: Path):
    job = daemon.wait_state(path, JobState.DONE, timeout=30)
    return job, daemon.sandbox.store.medias[job.hashed_id]


def _uploads(daemon: DaemonProcess, kind: str) -> list:
    store = daemon.sandbox.store
    every = list(store.medias.values()) + store.deleted
    return [m for m in every if m.type == kind]


def _settled_after(daemon: DaemonProcess, name: str, seed: int) -> None:
    """Drop another file and wait until it is done: by then every event before it (the
    sidecar changes) has been looked at, and a re-sync it caused has had its time."""
    marker = daemon.watch / name
    write_media(marker, 20_000, seed=seed)
    daemon.wait_state(marker, JobState.DONE, timeout=30)


def test_a_thumbnail_becomes_the_still_in_the_videos_project(daemon: DaemonProcess) -> None:
    clip = daemon.watch / "clip.mp4"
    (daemon.watch / "clip.jpg").write_bytes(image(JPEG, 1))
    write_media(clip, seed=1)
    job, video = _media(daemon, clip)
    (still,) = _uploads(daemon, "Image")
    assert video.still == still.hashed_id and still.project is video.project
    notes = " ".join(e.note or "" for e in daemon.ledger.jobs.events(job.id))
    assert "done" in notes


def test_an_image_wistia_cannot_process_holds_the_job_until_replaced(daemon: DaemonProcess) -> None:
    daemon.sandbox.faults.update(fail_images=True)
    clip = daemon.watch / "held.mp4"
    (daemon.watch / "held.png").write_bytes(image(PNG, 2))
    write_media(clip, seed=2)
    job = daemon.wait_state(clip, JobState.HELD, timeout=30)
    assert "Wistia could not process the thumbnail held.png" in job.reason
    daemon.sandbox.faults.update(fail_images=False)
    (daemon.watch / "held.png").write_bytes(image(PNG, 3))  # a new image: it goes on
    _, video = _media(daemon, clip)
    good = [m for m in _uploads(daemon, "Image") if m.processable]
    assert len(good) == 1 and video.still == good[0].hashed_id


def test_sidecars_changed_after_done_reach_the_media_once_with_no_new_upload(
    daemon: DaemonProcess,
) -> None:
    clip = daemon.watch / "talk.mp4"
    write_media(clip, seed=4)
    job, video = _media(daemon, clip)
    assert job.state == JobState.DONE

    (daemon.watch / "talk.json").write_text(json.dumps({"name": "The talk, fixed"}))
    wait_until(lambda: video.name == "The talk, fixed", what="the new name")
    (daemon.watch / "talk.fr.srt").write_text(SRT)
    wait_until(lambda: "fra" in video.captions, what="French captions")
    custom = {"name": "The talk, fixed", "customizations": {"playerColor": "ff0000"}}
    (daemon.watch / "talk.json").write_text(json.dumps(custom))
    wait_until(lambda: video.customizations.get("playerColor") == "ff0000", what="customizations")
    (daemon.watch / "talk.jpg").write_bytes(image(JPEG, 5))
    wait_until(lambda: video.still is not None, what="the still")
    first_still = video.still
    (daemon.watch / "talk.jpg").write_bytes(image(JPEG, 6))  # a new thumbnail replaces it
    wait_until(lambda: video.still not in (None, first_still), timeout=30, what="a new still")
    gone = lambda: [m.hashed_id for m in daemon.sandbox.store.deleted] == [first_still]  # noqa: E731
    wait_until(gone, what="the replaced image deleted")  # just after the new still is set

    _settled_after(daemon, "marker.mp4", 7)
    assert len(_uploads(daemon, "Video")) == 2  # talk and the marker: no new upload
    renames = [
        r
        for r in daemon.sandbox.records
        if r.method == "PUT"
        and r.path == f"/v1/medias/{video.hashed_id}.json"
        and r.form.get("name") == "The talk, fixed"
    ]
    assert len(renames) == 1  # once per change: the second talk.json changed no name
    done = daemon.ledger.get(job.id)
    assert done.state == JobState.DONE and done.reason is None
    notes = [e.note or "" for e in daemon.ledger.jobs.events(job.id)]
    assert sum("re-synced after done" in n for n in notes) >= 4


def test_a_defaults_change_reaches_every_done_media_below_it(daemon: DaemonProcess) -> None:
    below = [daemon.watch / "team" / "a.mp4", daemon.watch / "team" / "deep" / "b.mp4"]
    outside = daemon.watch / "other.mp4"
    for n, path in enumerate([*below, outside]):
        write_media(path, 30_000, seed=10 + n)
    medias = {path: _media(daemon, path)[1] for path in [*below, outside]}
    (daemon.watch / "team" / "_defaults.json").write_text(
        json.dumps({"description": "Made by the team"})
    )
    for path in below:
        wait_until(lambda p=path: medias[p].description == "Made by the team", what=str(path))
    _settled_after(daemon, "marker2.mp4", 13)
    assert medias[outside].description != "Made by the team"


def test_resync_off_sends_nothing_after_done(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"resync": False}).start()
    clip = daemon.watch / "fixed.mp4"
    write_media(clip, seed=20)
    _, video = _media(daemon, clip)
    before = len(daemon.sandbox.records)
    (daemon.watch / "fixed.json").write_text(json.dumps({"name": "Renamed"}))
    _settled_after(daemon, "marker.mp4", 21)
    later = daemon.sandbox.records[before:]
    assert not [r for r in later if video.hashed_id in r.path]
    assert video.name != "Renamed"


def test_a_sidecar_deleted_after_done_removes_nothing(daemon: DaemonProcess) -> None:
    clip = daemon.watch / "kept.mp4"
    (daemon.watch / "kept.json").write_text(json.dumps({"name": "Kept name"}))
    (daemon.watch / "kept.en.srt").write_text(SRT)
    write_media(clip, seed=30)
    _, video = _media(daemon, clip)
    assert video.name == "Kept name" and "eng" in video.captions
    before = len(daemon.sandbox.records)
    (daemon.watch / "kept.json").unlink()
    (daemon.watch / "kept.en.srt").unlink()
    _settled_after(daemon, "marker.mp4", 31)
    later = daemon.sandbox.records[before:]
    assert not [r for r in later if video.hashed_id in r.path]
    assert video.name == "Kept name" and "eng" in video.captions


def test_sidecars_changed_while_stopped_reach_the_media_at_start_up_once(
    daemon: DaemonProcess,
) -> None:
    clip = daemon.watch / "away.mp4"
    other = daemon.watch / "team" / "other.mp4"
    write_media(clip, seed=40)
    write_media(other, 30_000, seed=41)
    _, video = _media(daemon, clip)
    _, other_video = _media(daemon, other)
    assert daemon.stop() == 0

    (daemon.watch / "away.json").write_text(json.dumps({"name": "Renamed while away"}))
    (daemon.watch / "away.de.srt").write_text(SRT)
    (daemon.watch / "team" / "_defaults.json").write_text(json.dumps({"description": "Team"}))
    daemon.start()
    wait_until(lambda: video.name == "Renamed while away", what="the new name")
    wait_until(lambda: "deu" in video.captions, what="German captions")
    wait_until(lambda: other_video.description == "Team", what="the folder's defaults")

    _settled_after(daemon, "marker.mp4", 42)
    assert daemon.stop() == 0
    before = len(daemon.sandbox.records)
    daemon.start()  # nothing changed since: the next start-up sends nothing for them
    _settled_after(daemon, "marker2.mp4", 43)
    later = daemon.sandbox.records[before:]
    assert not [r for r in later if video.hashed_id in r.path or other_video.hashed_id in r.path]
    assert len(_uploads(daemon, "Video")) == 4  # away, other and two markers: no new upload


def test_a_kill_right_after_the_image_is_uploaded_sends_no_second_image(
    daemon: DaemonProcess,
) -> None:
    clip = daemon.watch / "cut.mp4"
    write_media(clip, seed=50)
    _, video = _media(daemon, clip)
    daemon.sandbox.faults.update(slow_upload_seconds=5.0)  # the answer held back, image made
    (daemon.watch / "cut.jpg").write_bytes(image(JPEG, 51))
    wait_until(lambda: _uploads(daemon, "Image"), what="the image made in Wistia")
    daemon.kill()  # before its answer arrived: the ledger never heard of it
    daemon.sandbox.faults.update(slow_upload_seconds=0.0)
    daemon.start()
    wait_until(lambda: video.still is not None, what="the still")
    (only,) = _uploads(daemon, "Image")
    assert video.still == only.hashed_id


def test_a_media_deleted_in_wistia_is_reported_not_uploaded_again(daemon: DaemonProcess) -> None:
    clip = daemon.watch / "gone.mp4"
    write_media(clip, seed=60)
    job, video = _media(daemon, clip)
    daemon.sandbox.store.delete_media(video.hashed_id)  # someone deleted it in Wistia
    (daemon.watch / "gone.json").write_text(json.dumps({"name": "Too late"}))
    reported = wait_until(
        lambda: (daemon.ledger.get(job.id).reason or "").startswith("the media was deleted"),
        what="the deletion reported",
    )
    assert reported
    _settled_after(daemon, "marker.mp4", 61)
    after = daemon.ledger.get(job.id)
    assert after.state == JobState.DONE and after.hashed_id == video.hashed_id
    assert len(_uploads(daemon, "Video")) == 2  # gone.mp4 once, and the marker
    shown = daemon.status_json(str(job.id))["job"]
    assert shown["reason"].startswith("the media was deleted in Wistia")


def _edit_while_finishing(daemon: DaemonProcess, name: str, seed: int) -> tuple[Path, str]:
    """A media whose clip.json sets a player colour, and an edit of it made while the
    finisher is sending the first colour to Wistia (answers are slow): after the finisher
    read it."""
    clip = daemon.watch / name
    sidecar = clip.with_suffix(".json")
    sidecar.write_text(json.dumps({"customizations": {"playerColor": "111111"}}))
    daemon.sandbox.faults.update(slow_seconds=1.5)
    write_media(clip, 30_000, seed=seed)
    job = daemon.wait_state(clip, JobState.FINISHING, timeout=30)
    wait_until(
        lambda: any(
            r.method != "GET" and r.path == f"/v1/medias/{job.hashed_id}/customizations.json"
            for r in daemon.sandbox.records
        ),
        what="the finisher sending the first colour",
    )
    sidecar.write_text(json.dumps({"customizations": {"playerColor": "222222"}}))
    return clip, job.hashed_id


def test_a_sidecar_edited_while_its_job_is_finishing_reaches_the_media(
    daemon: DaemonProcess,
) -> None:
    clip, hashed_id = _edit_while_finishing(daemon, "race.mp4", seed=61)
    daemon.wait_state(clip, JobState.DONE, timeout=30)
    daemon.sandbox.faults.update(slow_seconds=0.0)
    media = daemon.sandbox.store.medias[hashed_id]
    wait_until(
        lambda: media.customizations.get("playerColor") == "222222",
        timeout=15,
        what="the edit in Wistia",
    )
    assert len(daemon.sandbox.uploads()) == 1  # applied to the same media


def test_an_edit_while_finishing_reaches_the_media_with_resync_off(daemon_factory) -> None:
    """Whatever re-sync is set to, a job ends done with what its sidecars say on disk."""
    daemon = daemon_factory(ingest={"resync": False}).start()
    clip, hashed_id = _edit_while_finishing(daemon, "race-off.mp4", seed=62)
    daemon.wait_state(clip, JobState.DONE, timeout=30)
    assert daemon.sandbox.store.medias[hashed_id].customizations["playerColor"] == "222222"
