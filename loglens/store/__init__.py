"""Storage behind one interface (``base.Store``); the embedded SQLite store is the default."""

from loglens.store.base import Bucket, SearchPage, Store, StoreLockedError, StoreStats, TimeRange, TopValue

__all__ = ["Bucket", "SearchPage", "Store", "StoreLockedError", "StoreStats", "TimeRange", "TopValue", "open_store"]


def open_store(data_dir: str, *, writable: bool = False, durability: str = "normal") -> Store:
    from loglens.store.embedded import EmbeddedStore

    return EmbeddedStore(data_dir, writable=writable, durability=durability)
