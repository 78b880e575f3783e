"""The status page (`web.listen`): what `ingestd status` shows, for the people who drop files
and have no shell on the server.

What it owns: the page and its JSON API (page.py: a Flask app with templates/ and static/,
served from a process of its own by telling.serving), its basic auth, and the words it says to
people about holds and failures.

What it does not own: the view itself (telling.status builds it, exactly as `status --json`),
or any change: nothing on the page changes anything, and the token never appears on it.
"""

from ingestd.telling.web.page import PageSettings, create_app, page_context, page_process

__all__ = ["PageSettings", "create_app", "page_context", "page_process"]
