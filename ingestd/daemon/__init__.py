"""The daemon: the process `ingestd run` becomes, and what keeps it healthy.

What it owns: wiring the components together and running them (wiring.py: the Daemon, its
signals and its stop), the stage threads kept alive and watched (supervisor.py), what a reload
changes and what needs a restart (reload.py), systemd's notify protocol (systemd.py), and
`ingestd check`'s diagnostics (check.py).

What it does not own: any stage's work (pipeline, telling), or how a job moves (ledger, core).
"""

from ingestd.daemon.wiring import Daemon

__all__ = ["Daemon"]
