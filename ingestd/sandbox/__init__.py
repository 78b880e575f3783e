"""The sandbox: a Wistia stand-in that ships with ingestd, for trying it without an account and
for the tests, which talk to it over real loopback HTTP.

What it owns: a loopback server answering as Wistia's Upload API and the Data API parts ingestd
uses do, in the shapes Wistia's current reference gives, with faults that imitate what Wistia
and the network really do, and a record of every request for tests to assert on.

What it does not own: anything of the client. It imports nothing of the rest of ingestd, and
it must never be shaped to suit the client: where the two disagree, Wistia's reference wins.
"""

from ingestd.sandbox.faults import Faults
from ingestd.sandbox.records import Record
from ingestd.sandbox.server import Sandbox

__all__ = ["Faults", "Record", "Sandbox"]
