"""Adopting what Wistia already has (issue 23): a lost ledger, a new server or a library
uploaded by hand uploads nothing twice. Files older than the ledger are looked for in Wistia
(a receipt with their sha256, else the same name and size in their project) before they are
uploaded; files dropped later cost nothing; many files cost a listing, not a request each."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ingestd.core.jobs import JobState
from tests.conftest import DaemonProcess, sha256, wait_until, write_media


def forget_ledger(daemon: DaemonProcess) -> None:
    """The ledger is lost (a disk replaced, `rm -rf /var/lib/ingestd`)."""
    if daemon._ledger is not None:
        daemon._ledger.close()
        daemon._ledger = None
    for suffix in ("", "-wal", "-shm"):
        Path(f"{daemon.ledger_path}{suffix}").unlink(missing_ok=True)


def uploads(daemon: DaemonProcess) -> int:
    return sum(1 for r in daemon.sandbox.records if r.is_upload)


def history(daemon: DaemonProcess, path: Path) -> str:
    job = daemon.job_for(path)
    assert job is not None
    return "\n".join(e.note or "" for e in daemon.ledger.jobs.events(job.id))


def all_in(daemon: DaemonProcess, paths: list[Path], *states: JobState, timeout: float = 60):
    def reached() -> bool:
        jobs = [daemon.job_for(p) for p in paths]
        return all(j is not None and j.state in states for j in jobs)

    wait_until(reached, timeout=timeout, what=f"{len(paths)} files {'/'.join(states)}")
    return [daemon.job_for(p) for p in paths]


def aged(path: Path, seconds: float = 3600) -> None:
    """Last modified an hour ago: a file from before the ledger."""
    then = path.stat().st_mtime - seconds
    os.utime(path, (then, then))


def test_a_lost_ledger_uploads_nothing_again(daemon_factory) -> None:
    daemon = daemon_factory().start()
    clips = [daemon.watch / f"clip{n}.mp4" for n in range(3)]
    for n, clip in enumerate(clips):
        write_media(clip, 50_000 + n, seed=n)
    before = {j.path: j.hashed_id for j in all_in(daemon, clips, JobState.DONE)}
    assert uploads(daemon) == 3
    daemon.stop()
    forget_ledger(daemon)

    daemon.start()
    after = all_in(daemon, clips, JobState.DONE)
    assert {j.path: j.hashed_id for j in after} == before
    assert uploads(daemon) == 3  # nothing uploaded again
    assert len(daemon.sandbox.store.medias) == 3
    assert "already in Wistia as" in history(daemon, clips[0])
    assert "(same name and size); not uploaded again" in history(daemon, clips[0])

    # A file dropped after the new ledger was made is uploaded as usual, without a look.
    seen = len(daemon.sandbox.records)
    fresh = daemon.watch / "fresh.mp4"
    write_media(fresh, 40_000, seed=9)
    job = daemon.wait_state(fresh, JobState.DONE)
    assert uploads(daemon) == 4
    assert job.hashed_id not in before.values()
    assert "looked for in Wistia" not in history(daemon, fresh)
    listed = [
        r
        for r in daemon.sandbox.records[seen:]
        if r.path == "/v1/medias.json" and r.query.get("sort_by") == "created"
    ]
    assert listed == []


def test_first_start_on_a_library_partly_in_wistia(daemon_factory, sandbox) -> None:
    daemon = daemon_factory()
    clips, by_hand = [], {}
    for n in range(50):
        clip = daemon.watch / f"library/talk{n:02}.mp4"
        data = write_media(clip, 20_000 + n, seed=100 + n)
        aged(clip)
        clips.append(clip)
        if n < 30:
            by_hand[clip] = sandbox.add_media(clip.name, data=data, created=1_700_000_000).hashed_id
    # Other medias in the account, none of them these files.
    for n in range(20):
        sandbox.add_media(f"other{n}.mp4", size=1_000 + n, created=1_700_000_000)
    medias_before = len(sandbox.store.medias)

    daemon.start()
    jobs = all_in(daemon, clips, JobState.DONE)
    adopted = [j for j in jobs if j.path in {str(c) for c in by_hand}]
    assert all(j.hashed_id == by_hand[Path(j.path)] for j in adopted)
    assert uploads(daemon) == 20
    assert len(sandbox.store.medias) == medias_before + 20
    # Looking cost a listing of the account (70 medias: one page) and a few requests, not
    # one per file: everything before the first upload is within the bound.
    first_upload = next(n for n, r in enumerate(sandbox.records) if r.is_upload)
    assert first_upload <= math.ceil(medias_before / 100) + 10, [
        (r.method, r.path, r.query) for r in sandbox.records[:first_upload]
    ]


def test_a_thousand_files_cost_a_listing_and_no_upload(daemon_factory, sandbox) -> None:
    """The bound at a smaller scale: 150 files all in Wistia among 400 medias of the
    account: no upload, at most (400 / 100) + 10 requests until every job is done."""
    daemon = daemon_factory(ingest={"workers": 2})
    clips = []
    for n in range(150):
        clip = daemon.watch / f"clip{n:03}.mov"
        data = write_media(clip, 2_000 + n, seed=n)
        aged(clip)
        clips.append(clip)
        sandbox.add_media(clip.name, data=data, created=1_700_000_000 + n)
    for n in range(250):
        sandbox.add_media(f"else{n}.mp4", size=10 + n, created=1_700_000_000)

    daemon.start()
    all_in(daemon, clips, JobState.DONE, timeout=90)
    assert uploads(daemon) == 0
    requests = sandbox.records
    assert len(requests) <= 400 / 100 + 10, [(r.method, r.path, r.query) for r in requests]


def test_two_medias_of_the_same_name_and_size_fail_naming_both(daemon_factory, sandbox) -> None:
    daemon = daemon_factory()
    clip = daemon.watch / "twice.mp4"
    data = write_media(clip, 30_000, seed=3)
    aged(clip)
    one = sandbox.add_media("twice.mp4", data=data, created=1_700_000_000).hashed_id
    two = sandbox.add_media("twice.mp4", size=len(data), created=1_700_000_100).hashed_id

    daemon.start()
    job = daemon.wait_state(clip, JobState.FAILED)
    assert one in job.error and two in job.error
    assert "ingestd retry" in job.error
    assert uploads(daemon) == 0
    status = daemon.cli("status").stdout
    assert one in status and two in status

    # `ingestd retry` uploads it anyway.
    result = daemon.cli("retry", str(job.id))
    assert result.returncode == 0, result.stderr
    done = daemon.wait_state(clip, JobState.DONE)
    assert uploads(daemon) == 1
    assert done.hashed_id not in (one, two)


def test_a_receipt_names_the_media_for_certain_and_only_with_the_files_sha256(
    daemon_factory, sandbox
) -> None:
    daemon = daemon_factory()
    # Renamed in Wistia since: only its receipt can find it.
    renamed = daemon.watch / "renamed.mp4"
    data = write_media(renamed, 30_000, seed=4)
    kept = sandbox.add_media("Our launch (final)", data=data, created=1_700_000_000).hashed_id
    receipt = {"hashed_id": kept, "sha256": sha256(data), "size": len(data)}
    (daemon.watch / "renamed.mp4.wistia.json").write_text(json.dumps(receipt))
    aged(renamed)
    # A receipt whose sha256 is not the file's (the file was edited since): not taken.
    edited = daemon.watch / "edited.mp4"
    write_media(edited, 31_000, seed=5)
    other = sandbox.add_media("older cut", size=31_000, created=1_700_000_000).hashed_id
    stale = {"hashed_id": other, "sha256": "0" * 64, "size": 31_000}
    (daemon.watch / "edited.mp4.wistia.json").write_text(json.dumps(stale))
    aged(edited)

    daemon.start()
    adopted = daemon.wait_state(renamed, JobState.DONE)
    uploaded = daemon.wait_state(edited, JobState.DONE)
    assert adopted.hashed_id == kept
    assert "its receipt's sha256 is the file's" in history(daemon, renamed)
    assert sandbox.store.medias[kept].name == "Our launch (final)"  # its name in Wistia stays
    assert uploaded.hashed_id != other
    assert uploads(daemon) == 1


def test_the_same_name_with_another_size_is_uploaded(daemon_factory, sandbox) -> None:
    daemon = daemon_factory()
    clip = daemon.watch / "cut.mp4"
    write_media(clip, 30_000, seed=6)
    aged(clip)
    there = sandbox.add_media("cut.mp4", size=29_999, created=1_700_000_000).hashed_id

    daemon.start()
    job = daemon.wait_state(clip, JobState.DONE)
    assert job.hashed_id != there
    assert uploads(daemon) == 1
    assert "not in Wistia yet" in history(daemon, clip)


def test_adopt_off_uploads_as_before(daemon_factory, sandbox) -> None:
    daemon = daemon_factory(ingest={"adopt": False})
    clip = daemon.watch / "again.mp4"
    data = write_media(clip, 30_000, seed=7)
    aged(clip)
    there = sandbox.add_media("again.mp4", data=data, created=1_700_000_000).hashed_id

    daemon.start()
    job = daemon.wait_state(clip, JobState.DONE)
    assert job.hashed_id != there
    assert uploads(daemon) == 1
    assert "looked for in Wistia" not in history(daemon, clip)


def test_sidecars_are_applied_to_an_adopted_media(daemon_factory, sandbox) -> None:
    daemon = daemon_factory(ingest={"project_from_folder": True})
    clip = daemon.watch / "Launch" / "promo.mp4"
    data = write_media(clip, 30_000, seed=8)
    clip.with_name("promo.json").write_text(
        json.dumps({"description": "The promo", "tags": ["q4"]})
    )
    clip.with_name("promo.eng.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n")
    for sidecar in (clip, clip.with_name("promo.json"), clip.with_name("promo.eng.srt")):
        aged(sidecar)
    project = sandbox.store.create_project("Launch")
    there = sandbox.add_media("promo.mp4", data=data, project=project, created=1_700_000_000)
    # The same file in another project is not this one's media.
    sandbox.add_media("promo.mp4", data=data, created=1_700_000_000)

    daemon.start()
    job = daemon.wait_state(clip, JobState.DONE)
    assert job.hashed_id == there.hashed_id
    assert uploads(daemon) == 0
    media = sandbox.store.medias[there.hashed_id]
    assert media.description == "The promo"
    assert media.tags == ["q4"]
    assert list(media.captions) == ["eng"]


def test_status_says_what_it_is_looking_for(daemon_factory, sandbox) -> None:
    daemon = daemon_factory()
    clips = []
    for n in range(4):
        clip = daemon.watch / f"wait{n}.mp4"
        write_media(clip, 10_000 + n, seed=20 + n)
        aged(clip)
        clips.append(clip)
    sandbox.faults.update(list_fail_status=503)  # Wistia cannot list: the look waits

    daemon.start()
    words = "looking for 4 files in Wistia before uploading them: 0 checked"
    wait_until(lambda: words in daemon.cli("status").stdout, timeout=20, what="the look shown")
    view = daemon.status_json()
    assert view["adoption"] == {"files": 4, "checked": 0, "shown": words}
    assert uploads(daemon) == 0  # a look that cannot be made is not an upload

    sandbox.faults.update(list_fail_status=0)
    all_in(daemon, clips, JobState.DONE, timeout=90)
    assert uploads(daemon) == 4
    assert daemon.status_json()["adoption"] is None


def test_a_receipts_media_moved_to_another_project_is_still_found(daemon_factory, sandbox) -> None:
    """The receipt names a media the target project's listing does not show: it is asked
    about on its own, and the stage carries on (no error of its own in the log)."""
    ours = sandbox.store.create_project("Ours")
    elsewhere = sandbox.store.create_project("Moved there")
    daemon = daemon_factory(wistia={"project_id": ours.hashed_id})
    clip = daemon.watch / "moved.mp4"
    data = write_media(clip, 30_000, seed=11)
    kept = sandbox.add_media("moved.mp4", data=data, project=elsewhere, created=1_700_000_000)
    receipt = {"hashed_id": kept.hashed_id, "sha256": sha256(data), "size": len(data)}
    (daemon.watch / "moved.mp4.wistia.json").write_text(json.dumps(receipt))
    aged(clip)

    daemon.start()
    job = daemon.wait_state(clip, JobState.DONE)
    assert job.hashed_id == kept.hashed_id
    assert uploads(daemon) == 0
    assert "Traceback" not in daemon.logs() and "internal error" not in daemon.logs()


def test_a_bad_sidecar_holds_the_file_and_once_fixed_it_is_looked_for(daemon_factory, sandbox):
    """A lost ledger and a broken `_defaults.json`: the file is held with the reason, not
    uploaded; fixed, it is looked for and adopted."""
    daemon = daemon_factory()
    clip = daemon.watch / "sub" / "lib.mp4"
    data = write_media(clip, 30_000, seed=12)
    defaults = daemon.watch / "sub" / "_defaults.json"
    defaults.write_text("{not json")
    aged(clip)
    there = sandbox.add_media("lib.mp4", data=data, created=1_700_000_000).hashed_id
    # Another old file, fine, whose look ends the round while the first is held.
    other = daemon.watch / "other.mp4"
    other_data = write_media(other, 20_000, seed=14)
    aged(other)
    also = sandbox.add_media("other.mp4", data=other_data, created=1_700_000_000).hashed_id

    daemon.start()
    held = daemon.wait_state(clip, JobState.HELD)
    assert "_defaults.json" in held.reason
    assert daemon.wait_state(other, JobState.DONE).hashed_id == also
    defaults.write_text("{}")
    job = daemon.wait_state(clip, JobState.DONE, timeout=60)
    assert job.hashed_id == there
    assert uploads(daemon) == 0


def test_files_for_many_projects_cost_one_listing_of_the_account(daemon_factory, sandbox) -> None:
    daemon = daemon_factory(ingest={"project_from_folder": True})
    clips = []
    for n in range(6):
        project = sandbox.store.create_project(f"Team {n}")
        for k in range(3):
            clip = daemon.watch / f"Team {n}" / f"take{k}.mp4"
            data = write_media(clip, 10_000 + k, seed=n * 10 + k)
            aged(clip)
            clips.append(clip)
            sandbox.add_media(clip.name, data=data, project=project, created=1_700_000_000)
    for n in range(150):
        sandbox.add_media(f"else{n}.mp4", size=10 + n, created=1_700_000_000)
    medias = len(sandbox.store.medias)

    daemon.start()
    all_in(daemon, clips, JobState.DONE)
    assert uploads(daemon) == 0
    assert len(sandbox.records) <= medias / 100 + 10, [
        (r.method, r.path, r.query) for r in sandbox.records
    ]


def test_a_look_wistia_never_answers_fails_the_files_and_retry_uploads(daemon_factory, sandbox):
    daemon = daemon_factory(
        ingest={"max_attempts": 2, "retry_min_seconds": 0.5, "retry_max_seconds": 1.0}
    )
    clip = daemon.watch / "stuck.mp4"
    write_media(clip, 30_000, seed=13)
    aged(clip)
    sandbox.faults.update(list_fail_status=500)

    daemon.start()
    # Each look is the client's own retries of a GET (15 s), then the stage's.
    job = daemon.wait_state(clip, JobState.FAILED, timeout=90)
    assert "could not look for it in Wistia" in job.error and "ingestd retry" in job.error
    assert uploads(daemon) == 0
    sandbox.faults.update(list_fail_status=0)
    assert daemon.cli("retry", str(job.id)).returncode == 0
    daemon.wait_state(clip, JobState.DONE)
    assert uploads(daemon) == 1


def test_listings_wistia_refuses_upload_the_files_as_usual(daemon_factory, sandbox) -> None:
    """Four projects, and Wistia refuses every media listing (403): the account's listing
    and each project's are refused, the files are uploaded with a note, and the stage runs on
    (it used to die on the account's refusal, leaving the files waiting)."""
    daemon = daemon_factory(ingest={"project_from_folder": True})
    clips = []
    for n in range(4):
        sandbox.store.create_project(f"Crew {n}")
        clip = daemon.watch / f"Crew {n}" / "cut.mp4"
        write_media(clip, 10_000 + n, seed=40 + n)
        aged(clip)
        clips.append(clip)
    sandbox.faults.update(forbidden=("medias_list",))

    daemon.start()
    all_in(daemon, clips, JobState.DONE)
    assert uploads(daemon) == 4
    assert "could not look in the project" in history(daemon, clips[0])
    assert "Traceback" not in daemon.logs()
