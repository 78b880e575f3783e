"""The polls' share of the request budget."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from ingestd.config.settings import Settings
from ingestd.core.jobs import JobState
from ingestd.wistia.client import WistiaClient
from ingestd.wistia.limiter import RateLimiter

S = JobState


def test_polls_take_at_most_their_share_of_the_budget() -> None:
    from ingestd.wistia.limiter import POLL_SHARE

    client = WistiaClient(
        Settings(watch_dir=Path("/w")).wistia, "t", RateLimiter(600), threading.Event(),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=[])),
    )  # fmt: skip
    assert client.poll_budget.per_minute == 600 * POLL_SHARE == 150
    client.close()
