"""The watch folder, which is untrusted: anyone who can write there can put anything there.

What it owns: opening files without following links or blocking, checking what was opened,
reading with bounds, moving and deleting through folder descriptors (files.py); reading,
validating and merging sidecars (sidecars.py: clip.json, _defaults.json, captions, the
thumbnail); `.url` files (urlimport.py).

What it does not own: deciding when a file is complete or what becomes of it (pipeline), or
what a bad file means for its job (core.outcomes: folder raises the job's own error, with a
reason and a hint).
"""
