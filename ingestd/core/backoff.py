"""The one backoff law: every wait in ingestd grows the same way.

Retries after transient errors (tenacity calls it as its wait strategy for in-process retries
of Data API calls; the outcome policy asks it directly for retries kept in the ledger across
restarts), polls, held rechecks, hold probes, notification retries and stage restarts. A
Retry-After from Wistia is obeyed exactly instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import tenacity


class Backoff(tenacity.wait.wait_base):
    """A growing interval: `first`, times `factor` each time, at most `cap`, plus jitter.

    The one law for every wait in ingestd: retries after transient errors (tenacity calls it
    as its wait strategy for in-process retries; the outcome policy asks it directly for
    retries kept in the ledger across restarts), polls, held rechecks, hold probes and stage
    restarts. A Retry-After from Wistia is obeyed exactly instead.
    """

    def __init__(
        self,
        first: float,
        cap: float,
        factor: float = 2.0,
        jitter: float = 0.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.first = first
        self.cap = max(cap, first)
        self.factor = factor
        self.jitter = jitter
        self._rng = rng

    def seconds(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed attempt number `attempt` (1 for the first)."""
        if retry_after is not None:
            return retry_after
        try:
            grown = self.first * self.factor ** max(0, attempt - 1)
        except OverflowError:
            grown = self.cap
        return min(self.cap, grown + self.jitter * self._rng())

    def after(self, previous: float | None) -> float:
        """The interval that follows `previous` (None: the first one)."""
        return self.first if previous is None else min(self.cap, previous * self.factor)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        return self.seconds(retry_state.attempt_number, getattr(error, "retry_after", None))
