"""Finishing: from a media ready in Wistia to a done job (the finisher stage owns `finishing`).

What it owns: a new version swapped into the media it replaces (swap.py: asked, Wistia's
background job followed, the leftover deleted), sending a media its sidecars (steps.py:
metadata, customizations, tags, captions; thumbnail.py: the thumbnail made the still; sync.py:
both, with the check that nothing changed while they were sent), the partial media a whole
version replaces (partial.py), the file's
fate (fate.py: keep, move, delete) and the receipt (receipt.py); stage.py runs them in order.
Re-sync after done (pipeline.resync) sends through the same sync, not through the stage.

What it does not own: reading sidecars (folder.sidecars), the records of what was done
(ledger.steps), or what a failure means for the job (core.outcomes).
"""

from ingestd.pipeline.finish.stage import Finisher

__all__ = ["Finisher"]
