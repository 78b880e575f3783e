"""Notifications: telling other systems that a job is done, failed or held.

What it owns: the stage that delivers the outbox, each receiver in a lane of its own
(deliver.py), what a notification says to programs (messages.py) and to people (words.py),
the webhook with its signature (webhook.py), one HTTP request within its deadline for the
webhook and the heartbeat (within.py), the command without a shell
(command.py), messages for people through Apprise, one URL per receiver, and the secrets in
those URLs (people.py), the heartbeat's stage (heartbeat.py), and how a receiver's words are
quoted (text.py).

What it does not own: writing notifications (the ledger writes them in the transaction that
moves their job: ledger.outbox, which also decides when a digest's window closes), which
events are told to whom (the daemon's Outbox, from `[notify]`), or whether the daemon is well
(the supervisor's last look, handed to the heartbeat).
"""
