"""ingestd: a watch folder that uploads finished videos to Wistia, once each.

The packages, in the order a file travels through them and imports run (each imports only
what stands before it in this list; logs and redact serve them all):

    core       the model and the policy: jobs and their moves, errors, outcomes, backoff,
               clocks, heartbeats, names
    config     the settings: the TOML file and the environment, validated
    ledger     the job ledger (SQLite): every state and every fact the daemon must not forget
    folder     the untrusted watch folder: opening files safely, sidecars, .url files
    wistia     the one HTTP client for Wistia: auth, rate, classification, uploads
    pipeline   the stages: watch -> upload -> poll -> finish, held jobs, re-sync
    telling    what people and programs are told: status, notifications, metrics, the page
    daemon     the process: wiring, supervision, reload, systemd
    cli        the commands

The sandbox (ingestd.sandbox) is a separate program: a Wistia stand-in that imports nothing
of the rest and is not used by it, except to be started by `ingestd sandbox` and
`ingestd run --sandbox`.
"""

__version__ = "0.1.0"
