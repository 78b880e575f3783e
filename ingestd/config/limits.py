"""`ingest.upload_bandwidth` and `ingest.upload_hours`: their syntax, and the questions the
uploader and `status` ask of them. No pydantic here: `status` reads them too, and stays light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

# "20M", "20 MB", "20MiB/s": bytes. A small "b" is bits, as in "20Mb": refused, not guessed.
_BANDWIDTH = re.compile(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?B(?:/s)?)?")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_bandwidth(text: str) -> float | None:
    """ "20M" -> 20 * 1024^2 bytes per second; "" -> None (no limit)."""
    if not text.strip():
        return None
    found = _BANDWIDTH.fullmatch(text.strip())
    if found is None:
        bits = (
            " (a small b means bits; write B for bytes)" if text.rstrip("/s").endswith("b") else ""
        )
        raise ValueError(f'must be a rate like "500K", "20M" or "1G" (bytes per second){bits}')
    rate = float(found.group(1)) * _UNITS[found.group(2).lower()]
    if rate < 1024:
        raise ValueError("must be at least 1K (1024 bytes per second); empty means no limit")
    return rate


_HOURS = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")


@dataclass(frozen=True)
class UploadHours:
    """The daily window, in local time, when new uploads may start; it may cross midnight."""

    start: int  # minutes after midnight
    end: int

    @classmethod
    def parse(cls, text: str) -> UploadHours | None:
        if not text.strip():
            return None
        found = _HOURS.fullmatch(text.strip())
        if found is None:
            raise ValueError('must be a window like "19:00-07:00" (local time)')
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError("hours run from 00:00 to 24:00")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == end % (24 * 60):
            raise ValueError("start and end are the same; leave it empty for always")
        return cls(start, end)

    def open_at(self, moment: datetime) -> bool:
        minute = moment.hour * 60 + moment.minute
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end  # across midnight

    def next_opening(self, moment: datetime) -> datetime:
        """When the window next opens after `moment` (its start, today or tomorrow)."""
        opening = moment.replace(hour=self.start // 60, minute=self.start % 60, second=0,
                                 microsecond=0)  # fmt: skip
        return opening if opening > moment else opening + timedelta(days=1)

    def __str__(self) -> str:
        start, end = divmod(self.start, 60), divmod(self.end, 60)
        return f"{start[0]:02d}:{start[1]:02d}-{end[0]:02d}:{end[1]:02d}"
