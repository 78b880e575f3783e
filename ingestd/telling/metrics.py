"""Prometheus metrics at `/metrics` (`metrics.listen`), through prometheus_client.

Served from a process of its own (serving.py), so that no number of scrapers, idle or
hostile, can take a descriptor, thread or CPU second the uploads need:

    scraper --HTTP--> metrics process --------------------------> the ledger (read-only)
                        |  job gauges, the hold, waiting notifications, read at scrape time
                        +--pipe--> the daemon's MetricsFeed thread
                                   what only the daemon knows: bytes sent, requests by API and
                                   answer, upload times (Meters), and the daemon's own
                                   process_* metrics

The job counts are read from the ledger, never counted a second time, so they cannot drift
from `ingestd status`. Each source is asked at most once a second however many scrape, and
the daemon answers the pipe from one thread with a ready-made text.
"""

from __future__ import annotations

import math
import multiprocessing.connection
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from ingestd import logs
from ingestd.config.settings import Settings
from ingestd.core.errors import LedgerError
from ingestd.core.jobs import JobState
from ingestd.ledger import Ledger
from ingestd.telling.serving import ServedProcess, address_of, become_served_process, listen, serve
from ingestd.wistia.meters import Meters

log = logs.get("ingestd.metrics")

HOLD_KINDS = ("video_limit", "auth")
# Scrapers are few; beyond this many open connections, new ones wait in the kernel's queue.
MOST_CONNECTIONS = 256
# Each source of numbers is asked at most this often, however many scrape.
FRESH_SECONDS = 1.0
# How long a scrape waits for the daemon's numbers before answering without them.
FEED_WAIT_SECONDS = 2.0

# --- the daemon's side ------------------------------------------------------------------------


class MetricsService:
    """`/metrics` for the daemon: the served process, and the thread that answers it with
    the daemon's own numbers."""

    def __init__(self, settings: Settings, meters: Meters, stop: threading.Event) -> None:
        self.settings = settings
        self.meters = meters
        self.stop_event = stop
        self.process = ServedProcess(
            "ingestd-metrics",
            listen(settings.metrics.listen, "metrics.listen"),
            _serve_metrics,
            self._child_arguments,
        )
        self._feed: multiprocessing.connection.Connection | None = None
        self._their_end: multiprocessing.connection.Connection | None = None
        self._feed_lock = threading.Lock()

    def start(self) -> None:
        self.process.start()
        threading.Thread(target=self._answer, name="metrics-feed", daemon=True).start()
        log.info("serving metrics", url=address_of(self.process.sock) + "metrics")

    def check(self, now: float) -> None:
        self.process.check(now)

    def stop(self) -> None:
        self.process.stop()
        with self._feed_lock:
            for end in (self._feed, self._their_end):
                if end is not None:
                    end.close()
            self._feed = self._their_end = None

    def _child_arguments(self) -> tuple[Any, ...]:
        """A fresh pipe for each start of the served process (the last one's child is gone)."""
        ours, theirs = multiprocessing.Pipe()
        with self._feed_lock:
            for end in (self._feed, self._their_end):
                if end is not None:
                    end.close()
            self._feed, self._their_end = ours, theirs
        settings = self.settings
        return (theirs, settings.ledger, settings.log.level, settings.log.format)

    def _answer(self) -> None:
        """Each request on the pipe gets the daemon's numbers, as exposition text."""
        while not self.stop_event.is_set():
            with self._feed_lock:
                feed = self._feed
            try:
                if feed is None or not feed.poll(0.5):
                    continue
                feed.recv_bytes()
                feed.send_bytes(self.meters.exposition())
            except (EOFError, OSError):  # the served process is gone; a new one gets a new pipe
                self.stop_event.wait(0.5)


# --- the served process's side --------------------------------------------------------------


def _serve_metrics(
    sock: socket.socket,
    daemon: int,
    feed: multiprocessing.connection.Connection,
    ledger_path: Path,
    log_level: str,
    log_format: str,
) -> None:
    become_served_process(daemon, log_level, log_format, ())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fresh(LedgerCollector(ledger_path)))
    registry.register(Fresh(DaemonNumbers(feed)))
    app = _only_metrics(make_wsgi_app(registry, disable_compression=True))
    serve(app, sock, most_connections=MOST_CONNECTIONS)


def _only_metrics(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """`/metrics` (and `/`); anything else is not found."""

    def only(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in ("/metrics", "/"):
            return app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found; metrics are at /metrics\n"]

    return only


class Fresh(Collector):
    """Another collector's families, collected at most once per FRESH_SECONDS."""

    def __init__(self, inner: Collector) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._families: list[Metric] = []
        self._at = -math.inf

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._at >= FRESH_SECONDS:
                self._families = list(self.inner.collect())
                self._at = time.monotonic()
            return iter(self._families)


class DaemonNumbers(Collector):
    """The daemon's own numbers, asked over the pipe (see MetricsService._answer)."""

    def __init__(self, feed: multiprocessing.connection.Connection) -> None:
        self.feed = feed

    def collect(self) -> Iterator[Metric]:
        try:
            while self.feed.poll(0):  # a late answer to a question given up on
                self.feed.recv_bytes()
            self.feed.send_bytes(b"?")
            if not self.feed.poll(FEED_WAIT_SECONDS):
                log.warning("metrics: the daemon did not answer; its counters are left out")
                return iter(())
            text = self.feed.recv_bytes().decode()
        except (EOFError, OSError):
            return iter(())  # the daemon is going away, and this process with it
        return text_string_to_metric_families(text)


class LedgerCollector(Collector):
    """The job gauges, read from the ledger."""

    def __init__(self, ledger_path: Path) -> None:
        self.ledger_path = ledger_path

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            ledger = Ledger(self.ledger_path, read_only=True)
            try:
                counts = {state.value: 0 for state in JobState}
                counts.update(ledger.jobs.counts())
                hold = ledger.hold.current()
                waiting = ledger.outbox.waiting()["waiting"]
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
