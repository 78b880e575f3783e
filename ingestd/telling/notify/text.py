"""What a receiver says back, as ingestd quotes it: bounded, on one line."""

from __future__ import annotations

# What a command may print that is logged; what a webhook answers that is quoted.
MAX_OUTPUT_CHARACTERS = 2000
MAX_ANSWER_CHARACTERS = 200


def printable(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return "".join(ch if ch.isprintable() else " " for ch in text)[:MAX_OUTPUT_CHARACTERS]
