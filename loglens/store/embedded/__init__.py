from loglens.store.embedded.store import EmbeddedStore

__all__ = ["EmbeddedStore"]
