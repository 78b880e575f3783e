"""Telling: what people and programs learn of the daemon's work.

What it owns: the job as programs see it (views.py), `ingestd status` and its JSON (status.py),
`status --watch` (live.py), notifications, messages for people and the heartbeat, and what
they say (notify/), Prometheus metrics
(metrics.py), the status page (web/), and how the page and metrics are served from processes
of their own (serving.py).

What it does not own: any job's state (it reads the ledger; the outbox's rows are written by
the ledger with each move), or the daemon's own counters (wistia.meters).
"""
