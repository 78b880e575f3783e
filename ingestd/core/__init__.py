"""The core: the model and the one policy, with no I/O and nothing above it.

What it owns: the job (jobs.py: its states, the TRANSITIONS allowed between them, the Job
record, the Move a decision makes), the exception tree with a reason and a hint on each
error (errors.py), the one outcome policy (outcomes.py: `decide` and `release`, a pure
first-match table), the one backoff law (backoff.py), time as waits and as the world sees it
(clock.py), heartbeats every stage and the Wistia client beat (liveness.py), and how names are
shown, stored and sent (names.py).

What it does not own: storing anything (ledger), reading files (folder), talking to Wistia
(wistia), or running a stage (pipeline). Everything imports core; core imports nothing of
ingestd.
"""
