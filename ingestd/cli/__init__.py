"""The command line: `ingestd run | status | retry | check | completion | sandbox`.

What it owns: arguments, what a command prints (redacted, control characters escaped) and its
exit code; one module per command (main.py puts them together; common.py is what they share).
What it does not own: any decision or diagnosis. Commands call the library (the daemon,
daemon.check, telling.status, ledger.jobs.retry) and turn its errors into one line.
"""
