"""Prometheus metrics at `/metrics` (`metrics.listen`), through prometheus_client.

Job counts, the hold and the waiting notifications are read from the ledger at scrape time
(a collector), never counted a second time here, so they cannot drift from `ingestd status`.
What the ledger does not keep is counted in this process: bytes sent, requests by API and
answer, and how long uploads took. The process's own metrics (CPU, memory, open files) come
with prometheus_client's default registry.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ingestd import logs
from ingestd.config import parse_listen
from ingestd.errors import LedgerError
from ingestd.jobs import JobState
from ingestd.ledger import Ledger

log = logs.get("ingestd.metrics")

HOLD_KINDS = ("video_limit", "auth")

UPLOADED_BYTES = Counter("ingestd_uploaded_bytes", "Bytes of media files sent to Wistia.")
REQUESTS = Counter(
    "ingestd_requests",
    "Requests to Wistia by API (upload, data) and HTTP status (error: no answer came).",
    ["api", "code"],
)
UPLOAD_SECONDS = Histogram(
    "ingestd_upload_seconds",
    "How long an upload took, from its first byte to Wistia's answer.",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, math.inf),
)


class LedgerCollector(Collector):
    """The job gauges, read from the ledger at every scrape."""

    def __init__(self, ledger_path: Path) -> None:
        self.ledger_path = ledger_path

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            ledger = Ledger(self.ledger_path, read_only=True)
            try:
                counts = {state.value: 0 for state in JobState}
                counts.update(ledger.counts())
                hold = ledger.hold()
                waiting = ledger.notifications_waiting()["waiting"]
            finally:
                ledger.close()
        except (LedgerError, sqlite3.Error) as exc:
            # No job gauges rather than wrong ones; the rest of the scrape still answers.
            log.warning("metrics: cannot read the ledger", error=str(exc))
            return
        jobs = GaugeMetricFamily("ingestd_jobs", "Jobs in each state.", labels=["state"])
        for state, count in counts.items():
            jobs.add_metric([state], count)
        yield jobs
        held = GaugeMetricFamily(
            "ingestd_hold", "1 while uploads are on hold for this reason.", labels=["kind"]
        )
        for kind in HOLD_KINDS:
            held.add_metric([kind], 1 if hold is not None and hold.kind == kind else 0)
        yield held
        yield GaugeMetricFamily(
            "ingestd_notifications_waiting", "Notifications not yet delivered.", value=waiting
        )


class MetricsServer:
    """prometheus_client's own HTTP server thread, serving the default registry."""

    def __init__(self, listen: str, ledger_path: Path) -> None:
        self.host, self.port = parse_listen(listen)
        self.collector = LedgerCollector(ledger_path)
        self._server: Any = None

    def start(self) -> None:
        REGISTRY.register(self.collector)
        try:
            self._server, _ = start_http_server(self.port, addr=self.host)
        except OSError:
            REGISTRY.unregister(self.collector)
            raise
        log.info("serving metrics", url=f"http://{self.host}:{self.port}/metrics")

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        REGISTRY.unregister(self.collector)


def count_request(api: str, code: int | None) -> None:
    REQUESTS.labels(api=api, code=str(code) if code is not None else "error").inc()
