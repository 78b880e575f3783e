"""Wistia: the one HTTP client every request to Wistia goes through.

What it owns: the client (client.py: auth only to the configured origins, in-process retries of
Data API calls, the Upload and Data API calls ingestd makes), what an answer means
(classify.py: transient, hold or permanent, by status code then Wistia's own words), how fast
it talks (limiter.py: the shared requests-per-minute window, Retry-After pauses, the upload
bandwidth), the streamed multipart body (multipart.py), the shapes it reads (models.py), and
its counters (meters.py: bytes, requests, upload times).

What it does not own: what an error means for a job (core.outcomes), or the Wistia stand-in
(ingestd.sandbox, a separate program).
"""
