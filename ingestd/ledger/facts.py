"""Facts: what the daemon learned once that other processes show (the account's url, for the
status page), by name."""

from __future__ import annotations

from ingestd.ledger.db import Db, retried_write


class Facts:
    def __init__(self, db: Db) -> None:
        self.db = db

    def get(self, name: str) -> str | None:
        row = self.db.row("SELECT value FROM facts WHERE name = ?", (name,))
        return None if row is None else row[0]

    @retried_write
    def set(self, name: str, value: str) -> None:
        with self.db.write():
            self.db.conn.execute(
                "INSERT OR REPLACE INTO facts (name, value) VALUES (?, ?)", (name, value)
            )
