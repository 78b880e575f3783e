"""Steps: typed records of what finishing (and re-sync) did to a job's media and file, each
written before or right after its side effect, so that a crash neither loses nor repeats one.

    sent           step -> digest of what Wistia accepted (metadata, customizations, tags,
                   captions:<lang>): a step is sent again only when its digest changes
    refused        step -> digest of what Wistia refused with a 403 (the plan or the token's
                   scope), and why: skipped until its sidecar changes; shown as the reason
    fates          what becomes of the file, chosen before anything moves: deleted, or moved
                   to an exact path (bytes: a name need not be UTF-8)
    thumbnails     the thumbnail image by stage: `sending` (an upload began: found again by
                   name and time after a crash), `uploaded` (an image media), `failed` (Wistia
                   could not process it), `still` (it is the video's still)
    replacements   the partial media this version replaced (deleted or kept), done once
    swaps          the media this version replaces in place (Swap) and each step of it:
                   chosen (before the upload), requesting (before the swap is asked),
                   requested (with Wistia's background job), finished or refused, cleaned
                   (the leftover replacement deleted); `unknown`: a `replaces` naming no media
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ingestd.core.jobs import Job
from ingestd.ledger.db import Db, prose, retried_write

ThumbnailStage = Literal["sending", "uploaded", "failed", "still"]
SwapStage = Literal[
    "unknown", "chosen", "requesting", "requested", "finished", "refused", "cleaned"
]
SwapHow = Literal["path", "replaces", "partial"]


@dataclass(frozen=True)
class Fate:
    """What becomes of a done file: deleted, or moved to `target` (the archive path)."""

    action: Literal["move", "delete"]
    target: Path | None = None


@dataclass(frozen=True)
class Image:
    """A thumbnail image: the sha256 of its file, and its media in Wistia once it has one."""

    digest: str
    hashed_id: str | None = None
    began_at: float | None = None  # `sending`: when its upload began (wall time)


@dataclass(frozen=True)
class Refusal:
    """A step Wistia refused (403): the digest of what was refused, and Wistia's reason."""

    digest: str
    reason: str


@dataclass(frozen=True)
class Swap:
    """A new version replacing `original` in place, as far as it got."""

    original: str  # the hashed id kept (embeds, links and stats stay with it)
    how: SwapHow  # the path's earlier version, a clip.json `replaces`, or a partial copy
    stage: SwapStage
    project: str | None = None  # the original's project: the replacement goes there
    replacement: str | None = None  # the new version's own media, swapped in
    background_job: str | None = None  # Wistia's job doing the swap
    api: str | None = None  # which API took the swap: "modern" or "v1"
    requested_at: float | None = None  # wall time the swap was asked (Wistia's clock)
    reason: str | None = None  # why Wistia refused it (or why this version yielded)
    before_size: int | None = None  # the original's file size before the ask
    before_updated: float | None = None  # its last change then, by Wistia's clock
    replacement_size: int | None = None  # the replacement's file size


@dataclass(frozen=True)
class Thumbnail:
    """How far a job's thumbnail got, stage by stage (None: not that far)."""

    sending: Image | None = None
    uploaded: Image | None = None
    failed: Image | None = None
    still: Image | None = None


class Steps:
    def __init__(self, db: Db) -> None:
        self.db = db

    # --- sidecar steps ------------------------------------------------------------------------

    def sent(self, job_id: int) -> dict[str, str]:
        """Step -> the digest of what Wistia accepted for it."""
        rows = self.db.raw("SELECT step, digest FROM sent WHERE job_id = ?", (job_id,))
        return {step: digest for step, digest in rows}

    @retried_write
    def record_sent(self, job_id: int, step: str, digest: str) -> None:
        with self.db.write():
            self.db.conn.execute(
                """INSERT OR REPLACE INTO sent (job_id, step, digest, sent_at)
                   VALUES (?, ?, ?, ?)""",
                (job_id, step, digest, self.db.clock.wall()),
            )
            self.db.conn.execute(
                "DELETE FROM refused WHERE job_id = ? AND step = ?", (job_id, step)
            )

    def refused(self, job_id: int) -> dict[str, Refusal]:
        """Step -> what Wistia refused of it and why, for the steps it refused last time."""
        rows = self.db.raw(
            "SELECT step, digest, reason FROM refused WHERE job_id = ? ORDER BY at", (job_id,)
        )
        return {step: Refusal(digest, reason) for step, digest, reason in rows}

    @retried_write
    def record_refused(self, job: Job, step: str, digest: str, reason: str) -> None:
        """Wistia refused this step (403): skipped, and said in the job's history."""
        note = f"Wistia refused {step}: {reason}; skipped until its sidecar changes"
        with self.db.write():
            self.db.conn.execute(
                """INSERT OR REPLACE INTO refused (job_id, step, digest, reason, at)
                   VALUES (?, ?, ?, ?, ?)""",
                (job.id, step, digest, prose(reason), self.db.clock.wall()),
            )
            self.db.event(job.id, job.state.value, job.state.value, note)

    # --- the file's fate ----------------------------------------------------------------------

    def fate(self, job_id: int) -> Fate | None:
        row = self.db.row("SELECT action, target FROM fates WHERE job_id = ?", (job_id,))
        if row is None:
            return None
        action, target = row
        return Fate(action, Path(os.fsdecode(target)) if target is not None else None)

    @retried_write
    def record_fate(self, job_id: int, fate: Fate) -> None:
        """Before anything is moved or deleted: from then on a restart only finishes it."""
        target = os.fsencode(fate.target) if fate.target is not None else None
        with self.db.write():
            self.db.conn.execute(
                """INSERT OR REPLACE INTO fates (job_id, action, target, chosen_at)
                   VALUES (?, ?, ?, ?)""",
                (job_id, fate.action, target, self.db.clock.wall()),
            )

    # --- the thumbnail ------------------------------------------------------------------------

    def thumbnail(self, job_id: int) -> Thumbnail:
        rows = self.db.raw(
            """SELECT stage, image_digest, image_hashed_id, began_at FROM thumbnails
               WHERE job_id = ?""",
            (job_id,),
        )
        return Thumbnail(
            **{stage: Image(digest, hashed_id, began) for stage, digest, hashed_id, began in rows}
        )

    @retried_write
    def record_thumbnail(self, job_id: int, stage: ThumbnailStage, image: Image) -> None:
        with self.db.write():
            self.db.conn.execute(
                """INSERT OR REPLACE INTO thumbnails (job_id, stage, image_digest,
                                   image_hashed_id, began_at, at) VALUES (?, ?, ?, ?, ?, ?)""",
                (
                    job_id,
                    stage,
                    image.digest,
                    image.hashed_id,
                    image.began_at,
                    self.db.clock.wall(),
                ),
            )

    def image_known(self, hashed_id: str) -> bool:
        """Whether any job recorded the image media `hashed_id` (uploaded, or as a still)."""
        row = self.db.row(
            "SELECT 1 FROM thumbnails WHERE image_hashed_id = ? LIMIT 1", (hashed_id,)
        )
        return row is not None

    # --- replacing a media in place (Swap) -----------------------------------------------------

    def swap(self, job_id: int) -> Swap | None:
        row = self.db.one(
            """SELECT original, how, stage, project, replacement, background_job, api,
                      requested_at, reason, before_size, before_updated, replacement_size
               FROM swaps WHERE job_id = ?""",
            (job_id,),
        )
        return Swap(**row) if row else None

    @retried_write
    def choose_swap(self, job: Job, original: str, how: SwapHow, project: str | None) -> None:
        """Before the upload: this version will replace `original`. Chosen again on a later
        attempt while nothing was asked of Wistia yet."""
        with self.db.write():
            self.db.conn.execute(
                """INSERT INTO swaps (job_id, original, how, project, stage, at)
                   VALUES (?, ?, ?, ?, 'chosen', ?)
                   ON CONFLICT (job_id) DO UPDATE SET original = excluded.original,
                       how = excluded.how, project = excluded.project, stage = 'chosen',
                       reason = NULL, at = excluded.at
                   WHERE swaps.stage IN ('unknown', 'chosen')""",
                (job.id, original, how, project, self.db.clock.wall()),
            )

    @retried_write
    def forget_swap(self, job: Job) -> None:
        """Nothing to replace after all (the choice was made for an earlier attempt)."""
        with self.db.write():
            self.db.conn.execute(
                "DELETE FROM swaps WHERE job_id = ? AND stage IN ('unknown', 'chosen')", (job.id,)
            )

    @retried_write
    def record_unknown_original(self, job: Job, original: str) -> None:
        """A clip.json `replaces` names no media Wistia has: remembered, so that the held
        job's recheck asks Wistia again only once the sidecar names another."""
        with self.db.write():
            self.db.conn.execute(
                """INSERT OR REPLACE INTO swaps (job_id, original, how, stage, at)
                   VALUES (?, ?, 'replaces', 'unknown', ?)""",
                (job.id, original, self.db.clock.wall()),
            )

    @retried_write
    def record_swap(
        self, job: Job, stage: SwapStage, note: str | None = None, **fields: object
    ) -> Swap:
        """A step of the swap, written as it happens (with a note in the job's history)."""
        columns = ", ".join(f"{name} = :{name}" for name in fields)
        with self.db.write():
            self.db.conn.execute(
                f"""UPDATE swaps SET stage = :stage, at = :at{", " + columns if columns else ""}
                    WHERE job_id = :job_id""",
                {
                    "stage": stage,
                    "at": self.db.clock.wall(),
                    "job_id": job.id,
                    **{k: prose(v) if k == "reason" else v for k, v in fields.items()},
                },
            )
            if note is not None:
                self.db.event(job.id, job.state.value, job.state.value, note)
        swap = self.swap(job.id)
        assert swap is not None
        return swap

    def swap_pending_before(self, job: Job, original: str) -> int | None:
        """An older version on its way to swap into `original` too (processing, or finishing
        before its swap ended): the newer one waits for it, so the newest bytes end up there."""
        row = self.db.row(
            """SELECT swaps.job_id FROM swaps JOIN jobs ON jobs.id = swaps.job_id
               WHERE swaps.original = ? AND swaps.job_id < ?
                 AND swaps.stage IN ('chosen', 'requesting', 'requested')
                 AND jobs.state IN ('processing', 'finishing')
               ORDER BY swaps.job_id LIMIT 1""",
            (original, job.id),
        )
        return None if row is None else int(row[0])

    def swapped_after(self, job: Job, original: str) -> int | None:
        """A newer version that swapped into `original` already: an older version must not
        put its bytes back behind it. (One made by yielding in turn does not count.)"""
        row = self.db.row(
            """SELECT job_id FROM swaps WHERE original = ? AND job_id > ?
                 AND stage IN ('finished', 'cleaned') AND reason IS NULL
               ORDER BY job_id DESC LIMIT 1""",
            (original, job.id),
        )
        return None if row is None else int(row[0])

    def swapping_after(self, job: Job, original: str) -> int | None:
        """A newer version asking Wistia to swap into `original` now: an older version waits
        to see whether it is made (then it yields) or refused (then it swaps). One whose job
        no longer finishes (failed, held) is not waited for."""
        row = self.db.row(
            """SELECT swaps.job_id FROM swaps JOIN jobs ON jobs.id = swaps.job_id
               WHERE swaps.original = ? AND swaps.job_id > ?
                 AND swaps.stage IN ('requesting', 'requested') AND jobs.state = 'finishing'
               ORDER BY swaps.job_id DESC LIMIT 1""",
            (original, job.id),
        )
        return None if row is None else int(row[0])

    @retried_write
    def inherit_thumbnail(self, earlier: int, job: Job) -> None:
        """The earlier version's still becomes this one's to replace: its media now plays
        this version, and a new thumbnail then replaces (and deletes) that image."""
        with self.db.write():
            self.db.conn.execute(
                """INSERT OR IGNORE INTO thumbnails (job_id, stage, image_digest,
                                                     image_hashed_id, began_at, at)
                   SELECT ?, stage, image_digest, image_hashed_id, began_at, at
                   FROM thumbnails WHERE job_id = ? AND stage = 'still'""",
                (job.id, earlier),
            )

    # --- a partial version replaced -----------------------------------------------------------

    def replaced(self, job_id: int) -> bool:
        """Whether the partial media this job's version replaces was dealt with."""
        return self.db.row("SELECT 1 FROM replacements WHERE job_id = ?", (job_id,)) is not None

    @retried_write
    def record_replaced(self, partial: Job, whole: Job, *, deleted: bool, how: str) -> None:
        """The partial media `whole` replaces was dealt with: both histories say how, and it
        is recorded so that it is done once."""
        with self.db.write():
            if deleted:
                self.db.conn.execute(
                    "UPDATE jobs SET replaced_by = ? WHERE id = ?", (whole.id, partial.id)
                )
            self.db.event(partial.id, partial.state.value, partial.state.value, how)
            self.db.event(whole.id, whole.state.value, whole.state.value, how)
            self.db.conn.execute(
                """INSERT OR REPLACE INTO replacements (job_id, partial_job_id,
                                  partial_hashed_id, outcome, at) VALUES (?, ?, ?, ?, ?)""",
                (
                    whole.id,
                    partial.id,
                    partial.hashed_id or "",
                    "deleted" if deleted else "kept",
                    self.db.clock.wall(),
                ),
            )
