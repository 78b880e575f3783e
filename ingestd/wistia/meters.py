"""What the daemon counts that the ledger does not keep: bytes sent, requests by API and
answer, upload times, and the process's own metrics (prometheus_client). One `Meters` per
daemon, passed to the Wistia client; `/metrics` (metrics.py) asks the daemon for its text.
"""

from __future__ import annotations

import math
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)


class Meters:
    """What the daemon counts that the ledger does not keep, in a registry of its own (with
    the process's own metrics when it is the daemon's)."""

    def __init__(self, *, process: bool = False) -> None:
        self.registry = CollectorRegistry()
        self.uploaded_bytes = Counter(
            "ingestd_uploaded_bytes",
            "Bytes of media files sent to Wistia.",
            registry=self.registry,
        )
        self.requests = Counter(
            "ingestd_requests",
            "Requests to Wistia by API (upload, data) and HTTP status (error: no answer came).",
            ["api", "code"],
            registry=self.registry,
        )
        self.upload_seconds = Histogram(
            "ingestd_upload_seconds",
            "How long an upload took, from its first byte to Wistia's answer.",
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, math.inf),
            registry=self.registry,
        )
        if process:
            ProcessMetrics(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def count_request(self, api: str, code: int | None) -> None:
        self.requests.labels(api=api, code=str(code) if code is not None else "error").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class ProcessMetrics(ProcessCollector):
    """prometheus_client's process collector, with the boot time from the kernel's clock
    instead of /proc/stat: the unit's `ProcSubset=pid` hides /proc/stat, and without a boot
    time the collector yields nothing at all."""

    def _boot_time(self) -> float:
        return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
