"""Facts: what the daemon learned that other processes show, by name: the account's url (for
the status page), and how full the account was at the last look (for `status`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ingestd.ledger.db import Db, retried_write

ACCOUNT_MEDIA = "account_media"


@dataclass(frozen=True)
class AccountMedia:
    """The account's media count against its limit, as `GET /v1/account.json` said at `at`
    (wall time). `limit` is None where Wistia gives none."""

    count: int | None
    limit: int | None
    at: float

    def shown(self) -> str | None:
        """ "media 48 of 50", where Wistia gives both."""
        if self.count is None or self.limit is None:
            return None
        return f"media {self.count} of {self.limit}"


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

    def account_media(self) -> AccountMedia | None:
        recorded = self.get(ACCOUNT_MEDIA)
        if recorded is None:
            return None
        try:
            values = json.loads(recorded)
            return AccountMedia(values["count"], values["limit"], float(values["at"]))
        except (ValueError, KeyError, TypeError):
            return None

    def set_account_media(self, count: int | None, limit: int | None) -> None:
        at = self.db.clock.wall()
        self.set(ACCOUNT_MEDIA, json.dumps({"count": count, "limit": limit, "at": at}))
