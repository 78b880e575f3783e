"""Projects from folders: a folder's name -> the hashed id of the Wistia project its media go
to, remembered so that a folder costs one look-up, not one per file."""

from __future__ import annotations

from ingestd.ledger.db import Db, retried_write, storable


class Projects:
    def __init__(self, db: Db) -> None:
        self.db = db

    def named(self, name: str) -> str | None:
        """The hashed id of the Wistia project a folder named `name` goes to, if known."""
        row = self.db.one("SELECT hashed_id FROM projects WHERE name = ?", (storable(name),))
        return row["hashed_id"] if row else None

    @retried_write
    def remember(self, name: str, hashed_id: str) -> None:
        with self.db.write():
            self.db.conn.execute(
                "INSERT OR REPLACE INTO projects (name, hashed_id, found_at) VALUES (?, ?, ?)",
                (storable(name), hashed_id, self.db.clock.wall()),
            )

    @retried_write
    def forget(self, name: str, hashed_id: str) -> None:
        """The project is gone in Wistia: the next upload looks it up (or makes it) again."""
        with self.db.write():
            self.db.conn.execute(
                "DELETE FROM projects WHERE name = ? AND hashed_id = ?",
                (storable(name), hashed_id),
            )
