"""Watch: detection and settling, the first stage of the pipeline (it owns `settling`).

What it owns: the file watcher (observer.py: inotify or polling, events as hints), which paths
are media (filter.py), the scans and the watcher stage itself (watcher.py: a path looked at,
a new version recorded, done media marked for re-sync when their sidecars change), and when a
settling file is complete (settle.py, with writers.py: no process has it open for writing,
and containers.py: its MP4 or Matroska headers say it is whole), hashed from the descriptor
it is uploaded from.

What it does not own: a file's job once it is queued (pipeline.upload checks the file itself
before sending), or what trouble with a file means for its job (core.outcomes).
"""
