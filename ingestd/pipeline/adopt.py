"""Adopt: a file older than the ledger is looked for in Wistia before it is uploaded.

SPEC, "Adopting what Wistia already has". The ledger is not the only memory: a first start on
a library uploaded by hand, a ledger lost with its disk or a move to a new server finds files
that Wistia already holds. The watcher queues such a file (last modified before the ledger was
created, at a path with no done version) with a look to wait for (ledger/adoption.py); the
uploader claims none of them. This stage looks, for many files at once:

- a receipt beside the file (`<file name>.wistia.json`) whose sha256 is the file's names its
  media for certain;
- else a media in the file's target project (the project it would be uploaded to; with none,
  the whole account) with the name ingestd would send and an `OriginalFile` asset of exactly
  the file's size (a media Wistia failed to process is no candidate).

One candidate: the job goes on with that media, as if it had just been uploaded (to
`finishing` when Wistia says it is ready, else to `processing`), and finishing applies its
sidecars. Several: the job fails, naming them (`ingestd retry` uploads it anyway). None: the
job is uploaded as usual.

What it costs: the medias of a target are listed once (pages of 100, oldest first) and that
listing answers for every file of the target for LISTING_FRESH_SECONDS; a target with only a
few files waiting (at most NAME_LOOKS_PER_LISTING between listings, and fewer than the pages
its listing could take: the account's media count over 100) is asked by name instead, one
request each, which is cheaper than listing a large project; files bound for several
projects at once are answered by one listing of the whole account where that takes no more
pages than there are projects. So a first start on 1,000 files already in Wistia costs
(medias listed / 100) plus a few requests, and no upload. Every request goes through the
client's rate limiter with the rest of the work.

One job's trouble is that job's (`_contained`): Wistia refusing a look at one file (a 4xx
other than 401) uploads that file as usual, with a note; Wistia unable to answer for one file
(a 5xx on its name or its receipt's media) skips it for the pass, and after `max_attempts`
such looks in a row (counted while the daemon runs) fails it; a sidecar it cannot read holds
it (back in the queue once fixed, it is looked for then); a surprise fails it, by the outcome
policy. A listing Wistia cannot answer (unreachable, 5xx, 429) ends the pass: the files wait
(uploading them instead could make duplicates) and it is tried again with the retries'
backoff; after `max_attempts` such passes in a row the files still waiting fail with the
last error, and `ingestd retry` uploads them without looking. A 401 starts the auth hold.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple, TypeVar

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core import liveness
from ingestd.core.errors import (
    AuthError,
    Cancelled,
    HoldError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from ingestd.core.jobs import HoldRequest, Job, JobState, StaleTransition
from ingestd.core.names import display, media_name
from ingestd.core.outcomes import Stage
from ingestd.folder.sidecars import metadata_digest, read_metadata, read_receipt
from ingestd.ledger import Adopted, Ledger, Ledgers
from ingestd.ledger.adoption import WAITING_REASON
from ingestd.pipeline.loop import LONGEST_IDLE_SECONDS, WistiaStage, policy_for
from ingestd.pipeline.projects import FolderProjects, folder_of
from ingestd.wistia.client import WistiaClient
from ingestd.wistia.models import PER_PAGE, Media

log = logs.get("ingestd.adopt")

# Jobs looked for in one pass.
LOOK_AT_ONCE = 1000
# A target's listing answers for its files this long (steady seconds).
LISTING_FRESH_SECONDS = 600.0
# Files of a target asked for by name between two listings of it; more cost its listing.
NAME_LOOKS_PER_LISTING = 5
# A listing longer than this many pages (a million medias) is not read to its end.
MAX_PAGES = 10_000
# Candidates a failed job's reason names; the rest are counted.
NAMED_AT_MOST = 5
# The account's media count `status` shows is taken as it is for this long (wall seconds).
ACCOUNT_FRESH_SECONDS = 3600.0

T = TypeVar("T")


@dataclass(frozen=True)
class Wanted:
    """A file to look for: what ingestd would send, and where."""

    job: Job
    name: str  # the name ingestd would send (clip.json's, else the file name)
    size: int
    project: str | None  # the project it would go to; None: anywhere in the account
    receipt: str | None  # the hashed id a receipt with the file's sha256 names
    named: bool  # the name comes from a sidecar (else it is the file name)
    description: str | None  # what the sidecars say, to be applied by finishing


class Listed(NamedTuple):
    """What a listing says of one media, and only that: a listing of a large account is
    kept (for LISTING_FRESH_SECONDS) as these, not as whole answers."""

    id: int
    hashed_id: str
    name: str
    size: int | None  # its OriginalFile's size, where the answer gives one
    state: str  # queued, processing, ready, failed
    project: str | None  # the hashed id of its project, where the answer says


def listed(media: Media) -> Listed:
    return Listed(
        media.id,
        media.hashed_id,
        media.name,
        media.original_size,
        media.state,
        media.project_hashed_id,
    )


@dataclass(frozen=True)
class Found:
    media: Listed
    how: str  # how it was found, for the history


@dataclass(frozen=True)
class Several:
    medias: list[Listed]


def verdict(wanted: Wanted, medias: list[Listed], taken: set[str]) -> Found | Several | None:
    """What `medias` say about `wanted`: the one media it is, several it could be, or none.
    `taken`: hashed ids other jobs already have (never adopted twice)."""
    alive = [m for m in medias if m.state != "failed" and m.hashed_id not in taken]
    if wanted.receipt is not None:
        for media in alive:
            if media.hashed_id == wanted.receipt:
                return Found(media, "its receipt's sha256 is the file's")
    same = [m for m in alive if m.name == wanted.name and m.size == wanted.size]
    if len(same) == 1:
        return Found(same[0], "same name and size")
    if len(same) > 1:
        return Several(sorted(same, key=lambda m: m.id))
    return None


class Index:
    """A listing by name and by hashed id: a thousand files cost a look-up each, not a scan.
    `whole_account`: the listing is the account's, and answers for one project's files by
    the project each media is in."""

    def __init__(self, medias: list[Listed], *, whole_account: bool = False) -> None:
        self.whole_account = whole_account
        self._by_name: dict[str, list[Listed]] = defaultdict(list)
        self._by_hashed_id: dict[str, Listed] = {}
        for media in medias:
            self._by_name[media.name].append(media)
            self._by_hashed_id[media.hashed_id] = media
        # Whether every media says its project (Wistia's list does): only then can the
        # account's listing answer for one project.
        self.knows_projects = all(media.project is not None for media in medias)

    def named(self, name: str, project: str | None = None) -> list[Listed]:
        """The medias of that name; in `project`, when the listing is the whole account's."""
        medias = self._by_name.get(name, [])
        if not self.whole_account or project is None:
            return medias
        return [m for m in medias if m.project == project]

    def with_hashed_id(self, hashed_id: str) -> Listed | None:
        return self._by_hashed_id.get(hashed_id)


class Listings:
    """Each target's medias as Wistia last listed them, and the name looks made since."""

    def __init__(self, client: WistiaClient) -> None:
        self.client = client
        self._listed: dict[str | None, tuple[float, list[Listed]]] = {}
        self._named: dict[str | None, int] = defaultdict(int)

    def fresh(self, target: str | None, now: float) -> list[Listed] | None:
        listed = self._listed.get(target)
        if listed is None or now - listed[0] > LISTING_FRESH_SECONDS:
            return None
        return listed[1]

    def may_ask_by_name(self, target: str | None, files: int) -> bool:
        return self._named[target] + files <= NAME_LOOKS_PER_LISTING

    def by_name(self, target: str | None, name: str) -> list[Listed]:
        """The target's medias of that name (one request, or one a page)."""
        self._named[target] += 1
        return self._pages(target, name)

    def listing(self, target: str | None, now: float) -> list[Listed]:
        """Every media of the target, listed now."""
        medias = self._pages(target, None)
        self._listed[target] = (now, medias)
        self._named[target] = 0
        return medias

    def forget(self) -> None:
        self._listed.clear()
        self._named.clear()

    def _pages(self, target: str | None, name: str | None) -> list[Listed]:
        medias: list[Listed] = []
        for page in range(1, MAX_PAGES + 1):
            liveness.beat()
            found, held = self.client.medias_listed(page, target, name)
            medias += [listed(media) for media in found]
            if held < PER_PAGE:
                break
        return medias


class Adopter(WistiaStage):
    """The stage: looks for the queued jobs waiting for it, many at once. (A queued job's
    outcomes are the upload stage's; this stage leaves every trouble but its own looks to
    the upload, as the module says.)"""

    kind = Stage.UPLOAD

    def __init__(
        self,
        settings: Settings,
        ledgers: Ledgers,
        client: WistiaClient,
        stop: threading.Event,
        projects: FolderProjects,
    ) -> None:
        super().__init__(settings, ledgers, client, stop)
        self.projects = projects
        self.listings = Listings(client)
        self._failures = 0  # looks in a row that could not be made (a listing, all files)
        self._file_failures: dict[int, int] = {}  # job -> its own looks in a row that failed
        self._skipped = 0  # this pass: the most failures of a file skipped (0: none)
        self._rest_until = 0.0

    def reload(self, fresh: Settings) -> None:
        super().reload(fresh)
        self.listings.forget()  # the projects may differ now

    def run(self) -> None:
        self.run_passes(self._pass, JobState.QUEUED)

    def _pass(self, ledger: Ledger, now: float) -> float | None:
        if not self.settings.ingest.adopt:
            stopped = ledger.adoption.stop_looking(
                "ingest.adopt is off: uploaded without looking in Wistia first"
            )
            if stopped:
                log.info("adoption is off: files waiting for a look are uploaded", files=stopped)
            return None
        if now < self._rest_until:
            return self._rest_until
        hold = ledger.hold.current()
        if hold is not None and hold.kind == "auth":
            return None  # the token first; a look under a video-limit hold costs no upload
        waiting = ledger.adoption.waiting(LOOK_AT_ONCE)
        if not waiting:
            return None
        self._skipped = 0
        try:
            self.look_for(ledger, waiting, now)
        except Cancelled:
            return None  # the daemon stops
        except AuthError as exc:
            ledger.hold.start(HoldRequest("auth", str(exc), self.settings.ingest.probe_min_seconds))
            log.error("Wistia refused the token while looking for files", error=exc.reason)
            return None
        except (TransientError, HoldError) as exc:
            return self._could_not_look(ledger, waiting, exc, now)
        self._failures = 0
        if self._skipped:  # files Wistia could not answer for: they wait their backoff
            wait = policy_for(self.settings.ingest).retry.seconds(self._skipped)
            self._rest_until = now + wait
            return self._rest_until
        left = {job.id for job in ledger.adoption.waiting(LOOK_AT_ONCE)}
        if left and left <= {job.id for job in waiting}:
            return now + LONGEST_IDLE_SECONDS  # nothing decided (a stop): never a busy loop
        return now

    def _could_not_look(
        self, ledger: Ledger, waiting: list[Job], error: TransientError | HoldError, now: float
    ) -> float:
        """Wistia could not answer the look: the files wait (uploading them instead could make
        duplicates) and it is tried again with the retries' backoff; after `max_attempts`
        looks in a row that failed, they fail with the last error (a retry uploads)."""
        self._failures += 1
        attempts = self.settings.ingest.max_attempts
        # Those of the pass still waiting: a file decided before Wistia stopped answering
        # keeps what was decided.
        batch = {job.id for job in waiting}
        waiting = [job for job in ledger.adoption.waiting(LOOK_AT_ONCE) if job.id in batch]
        if self._failures >= attempts:
            self._failures = 0
            for job in waiting:
                self._give_up(ledger, job, error)
            log.error(
                "could not look in Wistia; the files waiting for it fail",
                error=error.reason,
                files=len(waiting),
            )
            return now
        retry_after = error.retry_after if isinstance(error, TransientError) else None
        wait = policy_for(self.settings.ingest).retry.seconds(self._failures, retry_after)
        ledger.adoption.still_waiting(waiting, _no_answer(error))
        log.warning(
            "cannot look in Wistia now; the files wait and it is tried again",
            error=error.reason,
            files=len(waiting),
            retry_in_seconds=round(wait, 1),
        )
        self._rest_until = now + wait
        return self._rest_until

    # --- a pass's files -------------------------------------------------------------------

    def look_for(self, ledger: Ledger, jobs: list[Job], now: float) -> None:
        """Look for `jobs` in Wistia, target by target, and move each on. One job's trouble
        is that job's (`_contained`); Wistia unable to answer at all ends the pass."""
        log.info("looking for files in Wistia before uploading them", files=len(jobs))
        by_target: dict[str | None, list[Wanted]] = defaultdict(list)
        folders: dict[str, str] | None = None  # every project, listed once in this pass
        refused: PermanentError | None = None  # or Wistia's refusal to list them, once

        def folder_project(folder: str) -> str | None:
            nonlocal folders, refused
            known = ledger.projects.named(folder)
            if known is not None:
                return known
            if refused is not None:
                raise refused
            if folders is None:
                try:
                    folders = self.projects.every_project()
                except PermanentError as exc:
                    refused = exc
                    raise
            found = folders.get(folder)
            if found is not None:
                ledger.projects.remember(folder, found)
            return found

        for job in jobs:
            wanted = self._contained(ledger, job, partial(self._wanted, job, folder_project))
            if isinstance(wanted, str):
                ledger.adoption.none(job, wanted)
            elif wanted is not None:
                by_target[wanted.project].append(wanted)
        everyone = self._account_index(ledger, len(by_target), now)
        for target, files in by_target.items():
            if self.stop.is_set():
                return
            try:
                index = everyone or self._index_for(ledger, target, len(files), now)
            except PermanentError as exc:
                where = "the account" if target is None else f"the project {target}"
                for wanted in files:
                    ledger.adoption.none(
                        wanted.job,
                        f"could not look in {where} (Wistia said: {exc}); uploaded as usual",
                    )
                continue
            self._look_in(ledger, target, files, index)

    def _look_in(
        self, ledger: Ledger, target: str | None, files: list[Wanted], index: Index | None
    ) -> None:
        """The files of one target, each contained (a media found is nobody else's). A look
        at one file Wistia cannot answer now (its name, its receipt's media) skips that file
        for this pass, not the others: after `max_attempts` such looks it fails."""
        taken: set[str] = set()
        for wanted in files:
            if self.stop.is_set():
                return
            liveness.beat()
            look = partial(self._look, ledger, wanted, target, index, taken)
            try:
                found = self._contained(ledger, wanted.job, look)
            except TransientError as exc:
                self._skip(ledger, wanted.job, exc)
                continue
            self._file_failures.pop(wanted.job.id, None)
            if isinstance(found, Found):
                taken.add(found.media.hashed_id)

    def _skip(self, ledger: Ledger, job: Job, error: TransientError) -> None:
        failures = self._file_failures.get(job.id, 0) + 1
        self._file_failures[job.id] = failures
        attempts = self.settings.ingest.max_attempts
        if failures < attempts:
            ledger.adoption.still_waiting([job], _no_answer(error))
            self._skipped = max(self._skipped, failures)
            return
        del self._file_failures[job.id]
        self._give_up(ledger, job, error)

    def _give_up(self, ledger: Ledger, job: Job, error: TransientError | HoldError) -> None:
        """After `max_attempts` looks Wistia could not answer: failed with the last error."""
        attempts = self.settings.ingest.max_attempts
        with contextlib.suppress(StaleTransition):  # moved meanwhile: its owner's now
            ledger.adoption.failed(
                job,
                f"could not look for it in Wistia ({attempts} tries; the last: {error.reason}); "
                f"`ingestd retry {job.id}` uploads it without looking",
            )

    def _contained(self, ledger: Ledger, job: Job, step: Callable[[], T]) -> T | None:
        """`step` for one job, its trouble kept to it: Wistia refusing a look at this file
        (a 403 on its receipt's media, say) uploads it as usual; its own problem (a bad
        sidecar) or a surprise is decided by the outcome policy, as the upload's would be
        (held until fixed, when it is looked for again; failed). Wistia unable to answer at
        all, or the ledger's trouble, ends the pass."""
        try:
            return step()
        except (sqlite3.Error, TransientError, HoldError, Cancelled):
            raise
        except PermanentError as exc:
            ledger.adoption.none(
                job, f"could not be looked for in Wistia (Wistia said: {exc}); uploaded as usual"
            )
        except Exception as exc:
            with logs.job_context(job):
                self.guard.outcome(ledger, job, exc)
        return None

    def _wanted(self, job: Job, folder_project: Callable[[str], str | None]) -> Wanted | str:
        """What to look for, or why the file is not looked for. A sidecar that cannot be
        read raises (the job is held until it is fixed, then looked for)."""
        path = Path(job.path)
        watch_dir = self.settings.watch_dir
        metadata = read_metadata(path, watch_dir)
        project = metadata.project_id
        folder = folder_of(path, watch_dir) if self.settings.ingest.project_from_folder else None
        if not project and folder is not None:
            project = folder_project(folder)
            if project is None:
                return (
                    f"not in Wistia yet (no project named {display(folder)} there); "
                    "uploaded as usual"
                )
        if not project and folder is None:
            project = self.settings.wistia.project_id or None
        receipt = read_receipt(path, watch_dir)
        return Wanted(
            job=job,
            name=metadata.name or media_name(path),
            size=job.size or 0,
            project=project or None,
            receipt=receipt.hashed_id if receipt and receipt.sha256 == job.sha256 else None,
            named=metadata.name is not None,
            description=metadata.description,
        )

    def _account_index(self, ledger: Ledger, projects: int, now: float) -> Index | None:
        """Files bound for many projects at once: one listing of the whole account answers
        for all of them, where it costs no more pages than there are projects (each costs a
        request at least). None: each project is looked in on its own (also when Wistia
        refuses the account's listing, or its medias do not say their project)."""
        if projects <= 1:
            return None
        listing = self.listings.fresh(None, now)
        if listing is None:
            if self._pages_at_most(ledger) > projects:
                return None
            try:
                listing = self.listings.listing(None, now)
            except PermanentError as exc:
                log.warning("Wistia refused the account's listing", error=exc.reason)
                return None
        index = Index(listing, whole_account=True)
        return index if index.knows_projects else None

    def _index_for(
        self, ledger: Ledger, target: str | None, files: int, now: float
    ) -> Index | None:
        """The target's listing (fresh, or listed now); None when its few files are cheaper
        asked for by name (fewer than the listing's pages could be). A fresh listing of the
        whole account answers for any project."""
        listing = self.listings.fresh(target, now)
        if listing is not None:
            return Index(listing, whole_account=target is None)
        everyone = self.listings.fresh(None, now)
        if everyone is not None:
            index = Index(everyone, whole_account=True)
            if index.knows_projects:
                return index
        if self.listings.may_ask_by_name(target, files) and files < self._pages_at_most(ledger):
            return None
        return Index(self.listings.listing(target, now), whole_account=target is None)

    def _pages_at_most(self, ledger: Ledger) -> int:
        """How many pages any listing can take: the account's media count over 100, as
        `status` last saw it (within the hour), else asked now (one request)."""
        known = ledger.facts.account_media()
        if known is not None and self.clock.wall() - known.at < ACCOUNT_FRESH_SECONDS:
            count = known.count
        else:
            try:
                account = self.client.account_media()
            except PermanentError:
                return MAX_PAGES  # not told: a listing may be long
            ledger.facts.set_account_media(account.media_count, account.limit)
            count = account.media_count
        return MAX_PAGES if count is None else max(1, math.ceil(count / PER_PAGE))

    def _look(
        self,
        ledger: Ledger,
        wanted: Wanted,
        target: str | None,
        index: Index | None,
        taken: set[str],
    ) -> Found | Several | None:
        """Look for one file, and move its job on by what was found."""
        if index is not None:
            medias = index.named(wanted.name, target)
        else:
            medias = self.listings.by_name(target, wanted.name)
        medias = self._with_receipts_media(wanted, medias, index)
        found = verdict(wanted, medias, taken | self._taken(ledger, wanted, medias))
        self._decide(ledger, wanted, found, target)
        return found

    def _with_receipts_media(
        self, wanted: Wanted, medias: list[Listed], index: Index | None
    ) -> list[Listed]:
        """With the media a receipt names: from the listing, else asked about on its own (it
        may have been renamed, or moved to another project)."""
        receipt = wanted.receipt
        if receipt is None or any(m.hashed_id == receipt for m in medias):
            return medias
        shown = index.with_hashed_id(receipt) if index is not None else None
        if shown is not None:
            return [*medias, shown]
        try:
            return [*medias, listed(self.client.media(receipt))]
        except NotFoundError:
            return medias  # deleted in Wistia: the receipt says nothing more

    def _taken(self, ledger: Ledger, wanted: Wanted, medias: list[Listed]) -> set[str]:
        """The candidates' hashed ids another job of the ledger already has."""
        candidates = {
            m.hashed_id
            for m in medias
            if m.hashed_id == wanted.receipt or (m.name == wanted.name and m.size == wanted.size)
        }
        return {h for h in candidates if ledger.jobs.hashed_id_taken(h, except_job=wanted.job.id)}

    def _decide(
        self, ledger: Ledger, wanted: Wanted, found: Found | Several | None, target: str | None
    ) -> None:
        job = wanted.job
        where = "the account" if target is None else f"the project {target}"
        with logs.job_context(job):
            if isinstance(found, Found):
                media = found.media
                logs.bind_hashed_id(media.hashed_id)
                ledger.adoption.found(job, self._adopted(wanted, found, target))
                log.info(
                    "already in Wistia; not uploaded again",
                    hashed_id=media.hashed_id,
                    how=found.how,
                )
            elif isinstance(found, Several):
                ids = [m.hashed_id for m in found.medias]
                named = ", ".join(ids[:NAMED_AT_MOST])
                more = len(ids) - NAMED_AT_MOST
                named += f" and {more} more" if more > 0 else ""
                error = (
                    f"already in Wistia {len(ids)} times: {named} in {where} have its name and "
                    f"size, and ingestd cannot tell which is this file (`ingestd retry "
                    f"{job.id}` uploads it anyway; or delete the extra medias in Wistia, "
                    "then retry)"
                )
                ledger.adoption.failed(job, error)
                log.warning("more than one media in Wistia could be this file", medias=ids)
            else:
                ledger.adoption.none(
                    job,
                    f"not in Wistia yet (no media of its name and size in {where}); "
                    "uploaded as usual",
                )
                log.info("not in Wistia yet: uploading it")

    @staticmethod
    def _adopted(wanted: Wanted, found: Found, target: str | None) -> Adopted:
        media = found.media
        # The finisher sends name and description like after an upload; what the media has
        # already need not be sent (the name it was found by; or, with no name in the
        # sidecars, the name it has, which someone may have changed in Wistia on purpose).
        name = wanted.name if wanted.named else media.name
        unchanged = wanted.description is None and (not wanted.named or media.name == name)
        return Adopted(
            hashed_id=media.hashed_id,
            media_id=media.id,
            name=media.name,
            project_id=media.project or target,
            ready=media.state == "ready",
            note=f"already in Wistia as {media.hashed_id} ({found.how}); not uploaded again",
            metadata_digest=metadata_digest({"name": name}) if unchanged else None,
        )


def _no_answer(error: TransientError | HoldError) -> str:
    """Why a file still waits for its look, for `status`."""
    return f"{WAITING_REASON}; Wistia could not answer ({error.reason}), tried again"
