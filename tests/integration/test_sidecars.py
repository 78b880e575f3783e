"""Sidecars and the file's fate, end to end: what Wistia ends up holding, and where files go."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ingestd.core.jobs import JobState
from tests.conftest import DaemonProcess, sha256, wait_until, write_media

SRT_EN = "1\n00:00:00,000 --> 00:00:02,000\nHello there\n\n2\n00:00:02,500 --> 00:00:04,000\nBye\n"
SRT_FR = "1\n00:00:00,000 --> 00:00:02,000\nBonjour\n"
SRT_DE = "1\n00:00:00,000 --> 00:00:02,000\nHallo\n"
BROKEN_SRT = "1\n00:00:00,000 --> 00:00:02,000\nfine\n\n2\n00:00:0x,500 -> 00:00:04,000\nbad\n"


def write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")


def media_of(daemon: DaemonProcess, hashed_id: str | None):
    assert hashed_id is not None
    return daemon.sandbox.store.medias[hashed_id]


def test_everything_in_sidecars_and_defaults_reaches_wistia(daemon: DaemonProcess) -> None:
    project = daemon.sandbox.store.create_project("Launch week")
    show = daemon.watch / "show"
    write_json(
        daemon.watch / "_defaults.json",
        {"customizations": {"smallPlayButton": True, "playerColor": "000000"}},
    )
    write_json(
        show / "_defaults.json",
        {
            "project_id": project.hashed_id,
            "description": "From the folder defaults",
            "customizations": {"playerColor": "ff0000", "autoPlay": False},
        },
    )
    write_json(
        show / "clip.json", {"name": "Launch teaser", "customizations": {"playerColor": "00ff00"}}
    )
    (show / "clip.srt").write_text(SRT_EN, encoding="utf-8")
    (show / "clip.fr.srt").write_text("\ufeff" + SRT_FR, encoding="utf-8")  # with a BOM
    (show / "clip.deu.srt").write_text(SRT_DE, encoding="utf-8")
    clip = show / "clip.mp4"
    write_media(clip, seed=1)

    job = daemon.wait_state(clip, JobState.DONE)

    media = media_of(daemon, job.hashed_id)
    assert media.name == "Launch teaser"
    assert media.description == "From the folder defaults"
    assert media.project is project
    assert media.captions == {"eng": SRT_EN, "fra": SRT_FR, "deu": SRT_DE}
    assert media.customizations == {
        "playerColor": "00ff00",
        "autoPlay": "false",
        "smallPlayButton": "true",
    }
    upload = daemon.sandbox.uploads()[0]
    assert upload.form["name"] == "Launch teaser"
    assert upload.form["project_id"] == project.hashed_id
    # after_upload = "keep": the file and its sidecars stay where they were
    assert clip.exists() and (show / "clip.json").exists() and (show / "clip.fr.srt").exists()
    custom = [r for r in daemon.sandbox.records if r.path.endswith("customizations.json")]
    assert len(custom) == 1 and custom[0].method == "PUT"  # merged, not replaced
    assert custom[0].headers.get("Content-Type", "").startswith("application/json")


def test_caption_dropped_after_upload_is_applied_and_existing_ones_replaced(
    daemon: DaemonProcess,
) -> None:
    daemon.sandbox.store.processing_seconds = 3.0
    clip = daemon.watch / "late.mp4"
    write_media(clip, seed=2)
    job = daemon.wait_state(clip, JobState.PROCESSING)
    media = media_of(daemon, job.hashed_id)
    media.captions["eng"] = "1\n00:00:00,000 --> 00:00:01,000\nold\n"  # already in Wistia
    (daemon.watch / "late.srt").write_text(SRT_EN, encoding="utf-8")
    (daemon.watch / "late.fr.srt").write_text(SRT_FR, encoding="utf-8")

    daemon.wait_state(clip, JobState.DONE)

    assert media.captions == {"eng": SRT_EN, "fra": SRT_FR}
    eng = [
        (r.method, r.status)
        for r in daemon.sandbox.records
        if "captions" in r.path and (r.form.get("language") == "eng" or "/eng." in r.path)
    ]
    assert eng == [("POST", 400), ("PUT", 200)]


def test_metadata_changed_after_upload_is_applied_with_a_media_update(
    daemon: DaemonProcess,
) -> None:
    daemon.sandbox.store.processing_seconds = 3.0
    clip = daemon.watch / "renamed.mp4"
    write_json(daemon.watch / "renamed.json", {"name": "First title"})
    write_media(clip, seed=3)
    job = daemon.wait_state(clip, JobState.PROCESSING)
    write_json(
        daemon.watch / "renamed.json",
        {"name": "Final title", "description": "Now with words", "titel": "typo"},
    )
    daemon.wait_state(clip, JobState.DONE)
    media = media_of(daemon, job.hashed_id)
    assert (media.name, media.description) == ("Final title", "Now with words")
    updates = [
        r
        for r in daemon.sandbox.records
        if r.method == "PUT"
        and r.hashed_id is None
        and r.path == f"/v1/medias/{job.hashed_id}.json"
    ]
    assert len(updates) == 1


def test_unchanged_metadata_sends_no_update(daemon: DaemonProcess) -> None:
    clip = daemon.watch / "plain.mp4"
    write_json(daemon.watch / "plain.json", {"name": "Plain", "titel": "typo"})
    write_media(clip, seed=4)
    job = daemon.wait_state(clip, JobState.DONE)
    assert not [r for r in daemon.sandbox.records if r.method == "PUT"]
    assert media_of(daemon, job.hashed_id).name == "Plain"
    assert "plain.json: titel" in daemon.logs()  # the unknown key is reported, not fatal


def test_broken_srt_and_bad_metadata_hold_only_their_jobs_until_fixed(
    daemon: DaemonProcess,
) -> None:
    good = daemon.watch / "good.mp4"
    broken = daemon.watch / "broken.mp4"
    badmeta = daemon.watch / "badmeta.mp4"
    (daemon.watch / "broken.srt").write_text(BROKEN_SRT, encoding="utf-8")
    (daemon.watch / "badmeta.json").write_text('{\n  "name": "x",\n  "description": 5,\n', "utf-8")
    for n, clip in enumerate((good, broken, badmeta)):
        write_media(clip, seed=10 + n)

    daemon.wait_state(good, JobState.DONE)
    held_srt = daemon.wait_state(broken, JobState.HELD)
    held_meta = daemon.wait_state(badmeta, JobState.HELD)
    shown = {j["path"]: j for j in daemon.status_json()["jobs"]}
    assert "broken.srt, line 5" in shown[str(broken)]["reason"]
    assert "badmeta.json, line 4" in shown[str(badmeta)]["reason"]
    assert held_srt.hashed_id is not None  # uploaded; only finishing waits
    assert held_meta.hashed_id is None  # metadata goes with the upload: nothing sent yet

    (daemon.watch / "broken.srt").write_text(SRT_EN, encoding="utf-8")
    write_json(daemon.watch / "badmeta.json", {"name": "x", "description": "fixed"})
    daemon.wait_state(broken, JobState.DONE)
    job = daemon.wait_state(badmeta, JobState.DONE)
    assert media_of(daemon, held_srt.hashed_id).captions == {"eng": SRT_EN}
    assert media_of(daemon, job.hashed_id).description == "fixed"
    assert len(daemon.sandbox.uploads()) == 3


def test_kill_9_between_two_sidecars_applies_each_once(daemon: DaemonProcess) -> None:
    daemon.sandbox.faults.update(latency=0.4)
    clip = daemon.watch / "many.mp4"
    for lang, text in (("en", SRT_EN), ("fr", SRT_FR), ("de", SRT_DE)):
        (daemon.watch / f"many.{lang}.srt").write_text(text, encoding="utf-8")
    write_json(daemon.watch / "many.json", {"customizations": {"playerColor": "abcdef"}})
    write_media(clip, seed=20)
    job = daemon.wait_state(clip, JobState.FINISHING, timeout=30)
    applied = wait_until(
        lambda: [k for k in daemon.ledger.steps.sent(job.id) if k != "metadata"],
        what="a first sidecar applied",
    )
    daemon.kill()
    before = set(daemon.ledger.steps.sent(job.id))
    assert len(before) < 5, "everything was applied before the kill; nothing was tested"

    daemon.sandbox.faults.update(latency=0)
    daemon.start()
    daemon.wait_state(clip, JobState.DONE)
    media = media_of(daemon, job.hashed_id)
    assert media.captions == {"eng": SRT_EN, "fra": SRT_FR, "deu": SRT_DE}
    assert media.customizations == {"playerColor": "abcdef"}

    def sends(step: str) -> int:
        if step == "customizations":
            return len(
                [
                    r
                    for r in daemon.sandbox.records
                    if r.path.endswith("customizations.json") and r.status in (200, 201)
                ]
            )
        lang = step.split(":")[1]
        return len(
            [
                r
                for r in daemon.sandbox.records
                if "captions" in r.path
                and r.status == 200
                and (r.form.get("language") == lang or f"/{lang}." in r.path)
            ]
        )

    for step in applied:
        assert sends(step) == 1, f"{step} was applied before the kill and again after"


def test_url_imports_rewrite_dropbox_and_keep_query_strings(daemon: DaemonProcess) -> None:
    s3 = (
        "https://bucket.s3.amazonaws.com/promo.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Signature=ab%2Fcd&X-Amz-Expires=3600"
    )
    (daemon.watch / "promo.url").write_text(s3 + "\n", encoding="utf-8")
    (daemon.watch / "box.url").write_text(
        "[InternetShortcut]\r\nURL=https://www.dropbox.com/s/abc123/Box%20Clip.mp4?dl=0\r\n",
        encoding="utf-8",
    )
    (daemon.watch / "ftp.url").write_text("ftp://example.com/a.mp4\n", encoding="utf-8")
    promo = daemon.wait_state(daemon.watch / "promo.url", JobState.DONE)
    box = daemon.wait_state(daemon.watch / "box.url", JobState.DONE)
    refused = daemon.wait_state(daemon.watch / "ftp.url", JobState.HELD)
    assert "only http:// and https://" in (refused.reason or "")

    imports = {r.form["url"]: r for r in daemon.sandbox.records if r.is_upload}
    assert set(imports) == {s3, "https://dl.dropbox.com/s/abc123/Box%20Clip.mp4"}
    for record in imports.values():
        assert record.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
        assert record.files == {}
    assert media_of(daemon, promo.hashed_id).name == "promo.mp4"
    assert media_of(daemon, box.hashed_id).name == "Box Clip.mp4"


def test_move_takes_sidecars_along_and_never_overwrites(daemon_factory, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    daemon = daemon_factory(ingest={"after_upload": "move", "archive_dir": str(archive)}).start()
    existing = archive / "sub" / "clip.mp4"
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"an older clip already archived")
    clip = daemon.watch / "sub" / "clip.mp4"
    write_json(daemon.watch / "sub" / "clip.json", {"name": "Moved"})
    write_json(daemon.watch / "sub" / "_defaults.json", {"description": "shared"})
    (daemon.watch / "sub" / "clip.srt").write_text(SRT_EN, encoding="utf-8")
    data = write_media(clip, seed=30)

    job = daemon.wait_state(clip, JobState.DONE)

    moved = archive / "sub" / "clip (1).mp4"
    assert moved.read_bytes() == data
    assert json.loads((archive / "sub" / "clip (1).json").read_text()) == {"name": "Moved"}
    assert (archive / "sub" / "clip (1).srt").read_text() == SRT_EN
    assert existing.read_bytes() == b"an older clip already archived"
    assert sorted(p.name for p in (daemon.watch / "sub").iterdir()) == ["_defaults.json"]
    assert f"moved to {moved}" in daemon.ledger.jobs.events(job.id)[-1].note
    assert len(daemon.sandbox.uploads()) == 1  # the archive is not watched


def test_delete_removes_file_and_sidecars_once_done(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"after_upload": "delete"}).start()
    daemon.sandbox.store.processing_seconds = 1.5
    clip = daemon.watch / "bye.mp4"
    (daemon.watch / "bye.srt").write_text(SRT_EN, encoding="utf-8")
    write_json(daemon.watch / "bye.json", {"name": "Bye"})
    write_json(daemon.watch / "_defaults.json", {"description": "shared"})
    write_media(clip, seed=31)
    daemon.wait_state(clip, JobState.PROCESSING)
    assert clip.exists()  # not before the job is done
    daemon.wait_state(clip, JobState.DONE)
    assert sorted(p.name for p in daemon.watch.iterdir()) == ["_defaults.json"]


def test_replaced_file_is_a_new_job_and_a_touched_one_is_not(daemon_factory) -> None:
    daemon = daemon_factory(ingest={"rescan_seconds": 1.0}).start()
    clip = daemon.watch / "v.mp4"
    write_media(clip, seed=40)
    first = daemon.wait_state(clip, JobState.DONE)
    os.utime(clip, ns=(10**18, 10**18))
    wait_until(lambda: "content unchanged" in daemon.logs(), what="touch recognised")
    assert len(daemon.sandbox.uploads()) == 1
    new = write_media(clip, seed=41)
    second = wait_until(
        lambda: (j := daemon.job_for(clip)) and j.id != first.id and j.state == JobState.DONE and j,
        what="new version done",
    )
    assert second.sha256 == sha256(new)
    assert [u.files["file"]["sha256"] for u in daemon.sandbox.uploads()][-1] == sha256(new)
    assert len(daemon.sandbox.uploads()) == 2


def test_a_customization_set_in_wistias_app_survives_a_resync(daemon: DaemonProcess) -> None:
    """Customizations are merged (PUT), never replaced: what someone set in Wistia's app
    stays, and a null in the sidecar deletes that one key."""
    clip = daemon.watch / "promo.mp4"
    write_json(daemon.watch / "promo.json", {"customizations": {"playerColor": "00ff00"}})
    write_media(clip, seed=7)
    job = daemon.wait_state(clip, JobState.DONE)
    media = media_of(daemon, job.hashed_id)
    # Someone sets two things in Wistia's app (the app calls the same API).
    with daemon.sandbox.store.lock:
        media.customizations.update({"autoPlay": "true", "controlsVisibleOnLoad": "false"})
    write_json(
        daemon.watch / "promo.json",
        {"customizations": {"playerColor": "ff0000", "controlsVisibleOnLoad": None}},
    )
    wait_until(lambda: media.customizations.get("playerColor") == "ff0000", what="the re-sync")
    assert media.customizations == {"playerColor": "ff0000", "autoPlay": "true"}


def test_tags_add_up_down_the_folders_in_order_and_follow_changes(daemon: DaemonProcess) -> None:
    show = daemon.watch / "show" / "season1"
    write_json(daemon.watch / "_defaults.json", {"tags": ["brand", "2026"]})
    write_json(daemon.watch / "show" / "_defaults.json", {"tags": ["show", "brand"]})
    write_json(show / "ep1.json", {"tags": ["episode 1", "2026"]})
    clip = show / "ep1.mp4"
    write_media(clip, seed=8)
    job = daemon.wait_state(clip, JobState.DONE)
    media = media_of(daemon, job.hashed_id)
    assert media.tags == ["brand", "2026", "show", "episode 1"]
    tagged = [r for r in daemon.sandbox.records if "tags" in r.params]
    assert len(tagged) == 1 and tagged[0].method == "PUT"
    assert tagged[0].path == f"/v1/medias/{job.hashed_id}.json"

    write_json(show / "ep1.json", {"tags": ["episode 1", "finale"]})
    wait_until(lambda: "finale" in media.tags, what="the changed tags")
    assert media.tags == ["brand", "2026", "show", "episode 1", "finale"]
    assert job.hashed_id == daemon.job_for(clip).hashed_id  # the same media, no new upload
    assert len(daemon.sandbox.uploads()) == 1


def test_bad_tags_hold_the_job_with_a_reason(daemon: DaemonProcess) -> None:
    write_json(daemon.watch / "odd.json", {"tags": "launch"})
    clip = daemon.watch / "odd.mp4"
    write_media(clip, seed=9)
    job = daemon.wait_state(clip, JobState.HELD)
    assert '"tags" must be a list of strings' in job.reason
    write_json(daemon.watch / "odd.json", {"tags": ["launch"]})
    job = daemon.wait_state(clip, JobState.DONE)
    assert media_of(daemon, job.hashed_id).tags == ["launch"]
