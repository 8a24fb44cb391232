"""LogLens: ingest, store, search and understand logs in one process."""

__version__ = "0.1.0"
