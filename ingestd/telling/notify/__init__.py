"""Notifications: telling other systems that a job is done, failed or held.

What it owns: the stage that delivers the outbox, each receiver in a lane of its own
(deliver.py), what a notification says (messages.py), the webhook with its signature and
deadline (webhook.py), the command without a shell (command.py), and how a receiver's words
are quoted (text.py).

What it does not own: writing notifications (the ledger writes them in the transaction that
moves their job: ledger.outbox), or which events are told to whom (the daemon's Outbox, from
`[notify]`).
"""
