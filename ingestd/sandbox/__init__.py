"""A Wistia stand-in that ships with ingestd: for trying it without an account, and for tests."""

from ingestd.sandbox.faults import Faults
from ingestd.sandbox.records import Record
from ingestd.sandbox.server import Sandbox

__all__ = ["Faults", "Record", "Sandbox"]
