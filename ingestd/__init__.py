"""ingestd: a watch folder that uploads finished videos to Wistia, once each."""

__version__ = "0.1.0"
