"""The sandbox: a Wistia stand-in on a loopback port, for trying ingestd without an account
and for the test suite.

`Sandbox` wires the account (store.py), the switches (faults.py) and the endpoints
(upload_api, data_api, captions_api, customizations_api, projects_api, modern_api) into one
HTTP server (http.py), started in a background thread by `start()`. It is a separate
program in spirit: nothing here imports the rest of ingestd.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ingestd.sandbox import (
    captions_api,
    customizations_api,
    data_api,
    modern_api,
    projects_api,
    upload_api,
)
from ingestd.sandbox.faults import Faults, RateWindow
from ingestd.sandbox.handmade import MediaSpec, checked, create
from ingestd.sandbox.http import Handler, Server
from ingestd.sandbox.jobs import SwapJob
from ingestd.sandbox.records import Record
from ingestd.sandbox.routing import Route
from ingestd.sandbox.store import Media, Project, Store

ROUTES: list[Route] = [
    *upload_api.ROUTES,
    *data_api.ROUTES,
    *captions_api.ROUTES,
    *customizations_api.ROUTES,
    *projects_api.ROUTES,
    *modern_api.ROUTES,
]
# How often background jobs are checked for their end while none is asked about.
SETTLE_INTERVAL = 0.05


class Sandbox:
    """A Wistia stand-in on a loopback port. `start()` serves from a background thread."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        any_token: bool = False,
        processing_seconds: float = 3.0,
        data_dir: Path | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.token = token or secrets.token_hex(32)
        # Standalone without --token: any Bearer token is accepted, but one must be sent.
        self.any_token = any_token
        self.store = Store(processing_seconds)
        self.faults = faults or Faults()
        self.rate_window = RateWindow()
        self.routes = ROUTES
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="ingestd-sandbox-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._records: list[Record] = []
        self._lock = threading.Lock()
        self._server = Server((host, port), Handler)
        self._server.sandbox = self
        self._thread: threading.Thread | None = None
        self._settler: threading.Thread | None = None
        self._stopping = threading.Event()
        self.account = {"id": 1, "name": "ingestd sandbox", "url": "https://sandbox.wistia.test"}

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def upload_url(self) -> str:
        return self.url

    @property
    def api_url(self) -> str:
        return self.url + "v1/"

    @property
    def modern_url(self) -> str:
        """The newer API's base (Swap and background jobs), as https://api.wistia.com/modern/."""
        return self.url + "modern/"

    def start(self) -> Sandbox:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sandbox", kwargs={"poll_interval": 0.1}
        )
        self._thread.daemon = True
        self._thread.start()
        self._start_settler()
        return self

    def serve_forever(self) -> None:
        self._start_settler()
        self._server.serve_forever(poll_interval=0.2)

    def _start_settler(self) -> None:
        """Swaps end on time even while nobody asks (tests read `store.medias` directly)."""
        if self._settler is not None:
            return

        def settle() -> None:
            while not self._stopping.wait(SETTLE_INTERVAL):
                self.store.settle()

        self._settler = threading.Thread(target=settle, name="sandbox-jobs", daemon=True)
        self._settler.start()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- records --------------------------------------------------------------------------

    @property
    def records(self) -> list[Record]:
        with self._lock:
            return list(self._records)

    def uploads(self) -> list[Record]:
        """Upload requests that created a media."""
        return [r for r in self.records if r.is_upload and r.status == 200]

    def new_record(self, **values: Any) -> Record:
        with self._lock:
            record = Record(id=len(self._records) + 1, **values)
            self._records.append(record)
            return record

    @property
    def swaps(self) -> list[SwapJob]:
        """Every swap asked for, oldest first, with its background job's state."""
        self.store.settle()
        with self.store.lock:
            return sorted(self.store.jobs.values(), key=lambda job: job.id)

    def token_seen_in(self, texts: list[str]) -> bool:
        return any(self.token in unquote(text) for text in texts)

    # --- the account's content, set up by tests -------------------------------------------

    def add_media(
        self,
        name: str,
        *,
        data: bytes | None = None,
        size: int | None = None,
        project: str | Project | None = None,
        type: str | None = None,
        created: float | None = None,
        archived: bool = False,
        tags: Sequence[str] = (),
        description: str = "",
        content_type: str | None = None,
    ) -> Media:
        """A media "uploaded by hand" (handmade.py): `data` (kept, with its sha256) or only a
        `size`; `project` a hashed id or a Project (default: the day's Uploads_ project);
        `type` from the name's extension unless given; `created` in epoch seconds."""
        spec = MediaSpec(
            name=name,
            data=data,
            size=size,
            project=project,
            type=type,
            created=created,
            archived=archived,
            tags=list(tags),
            description=description,
            content_type=content_type,
        )
        filled, found = checked(self, spec)
        return create(self, filled, found)
