"""Settings, from command-line flags and ``LOGLENS_*`` environment variables."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOGLENS_", extra="ignore")

    data: str = "./loglens-data"
    host: str = "127.0.0.1"
    port: int = 8080
    #: Keep data this long (``7d``, ``12h``); empty keeps everything.
    retention: str = ""
    #: ``normal``: a commit survives the process being killed (SQLite WAL, synchronous=NORMAL);
    #: ``full``: it also survives power loss (fsync on every commit), at some cost in speed.
    durability: str = "normal"
    #: Largest request body accepted (after gzip decompression), in bytes.
    max_body_bytes: int = 64 << 20
    #: Records waiting to be written before ingest answers 429.
    max_queued: int = 200_000
