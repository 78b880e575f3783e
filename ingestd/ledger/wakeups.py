"""Wake-ups: a stage waits for a job to enter its state instead of asking the ledger again
and again.

One `Wakeups` per process (the daemon makes it and hands it to every Ledger it opens): each
committed write wakes the threads waiting for the states its jobs entered. Only this
process's writes signal; a change from another process (`ingestd retry`) is seen at the
stage's next look, which comes within its longest idle wait anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ingestd.core.jobs import JobState


class Wakeups:
    def __init__(self) -> None:
        self._waiters: dict[JobState, set[threading.Event]] = {state: set() for state in JobState}
        self._lock = threading.Lock()

    def arrivals(self, *states: JobState) -> threading.Event:
        """An event set whenever a job enters one of `states` (one per waiting thread)."""
        event = threading.Event()
        with self._lock:
            for state in states:
                self._waiters[state].add(event)
        return event

    @contextmanager
    def arrivals_while(self, *states: JobState) -> Iterator[threading.Event]:
        """`arrivals(*states)` for one run of a loop, forgotten when it ends (a retired worker
        or a restarted stage leaves no event behind)."""
        event = self.arrivals(*states)
        try:
            yield event
        finally:
            with self._lock:
                for state in states:
                    self._waiters[state].discard(event)

    def wake(self, *states: JobState) -> None:
        """Wake the threads waiting for jobs in any of `states`."""
        with self._lock:
            events = [e for state in states for e in self._waiters[state]]
        for event in events:
            event.set()

    def wake_all(self) -> None:
        """Wake every waiting stage (the daemon is stopping)."""
        self.wake(*JobState)
