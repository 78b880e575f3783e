"""What a listing says about a file older than the ledger: its receipt's media, the one media
of its name and size, several, or none (pure: no Wistia, no ledger)."""

from __future__ import annotations

from typing import Any

from ingestd.core.jobs import Job, JobState
from ingestd.pipeline.adopt import Found, Listed, Several, Wanted, listed, verdict
from ingestd.wistia.models import Media


def media(
    hashed_id: str, name: str, size: int | None, status: str = "ready", **more: Any
) -> Listed:
    """As a listing keeps it, from the media as Wistia's answer gives it."""
    assets = [] if size is None else [{"type": "OriginalFile", "fileSize": size}]
    return listed(
        Media(
            id=hash(hashed_id) % 10_000,
            hashed_id=hashed_id,
            name=name,
            status=status,
            assets=assets,
            **more,
        )
    )


def wanted(name: str = "a.mp4", size: int = 100, receipt: str | None = None) -> Wanted:
    job = Job(id=1, path=f"/w/{name}", kind="file", state=JobState.QUEUED, size=size)
    return Wanted(job, name, size, None, receipt, named=False, description=None)


def test_the_one_media_of_its_name_and_size_is_it() -> None:
    listing = [media("m1", "a.mp4", 100), media("m2", "a.mp4", 99), media("m3", "b.mp4", 100)]
    found = verdict(wanted(), listing, set())
    assert isinstance(found, Found) and found.media.hashed_id == "m1"
    assert found.how == "same name and size"


def test_several_are_named_and_none_is_none() -> None:
    listing = [media("m2", "a.mp4", 100), media("m1", "a.mp4", 100)]
    several = verdict(wanted(), listing, set())
    assert isinstance(several, Several)
    assert {m.hashed_id for m in several.medias} == {"m1", "m2"}
    assert verdict(wanted(size=5), listing, set()) is None
    assert verdict(wanted("c.mp4"), listing, set()) is None


def test_no_size_known_a_failed_media_or_one_taken_is_no_candidate() -> None:
    assert verdict(wanted(), [media("m1", "a.mp4", None)], set()) is None
    assert verdict(wanted(), [media("m1", "a.mp4", 100, status="failed")], set()) is None
    listing = [media("m1", "a.mp4", 100), media("m2", "a.mp4", 100)]
    found = verdict(wanted(), listing, {"m2"})
    assert isinstance(found, Found) and found.media.hashed_id == "m1"


def test_a_receipt_names_its_media_whatever_its_name_now() -> None:
    listing = [media("m1", "renamed in Wistia", 100), media("m2", "a.mp4", 100)]
    found = verdict(wanted(receipt="m1"), listing, set())
    assert isinstance(found, Found) and found.media.hashed_id == "m1"
    assert "receipt" in found.how
    # A receipt naming a media that is gone: the name and size decide.
    found = verdict(wanted(receipt="gone"), listing, set())
    assert isinstance(found, Found) and found.media.hashed_id == "m2"
