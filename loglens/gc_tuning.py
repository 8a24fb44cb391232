"""Garbage-collector settings for the processes that ingest."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Collect garbage less often while ingesting.

    Ingest allocates a few container objects per record (records, attribute dicts, row tuples), none
    of them in cycles; with CPython's default thresholds (700, 10, 10) the collector runs every few
    records and keeps re-walking every long-lived object (the miner's templates, caches, queued
    batches): that doubled parse time and added a fifth to writes. Objects alive now are frozen
    out of the collector's walks, and the young generation is collected every 50,000 allocations.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
