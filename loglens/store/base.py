"""The store interface. Everything above ``store/`` speaks this, never one backend's SQL."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from loglens.model import LogRecord, Template
from loglens.query.planning import Plan


@dataclass(slots=True)
class TimeRange:
    """Inclusive bounds in UTC nanoseconds; None means unbounded."""

    start: int | None = None
    end: int | None = None


@dataclass(slots=True)
class Bucket:
    start: int  # ns
    counts: dict[str, int] = field(default_factory=dict)  # level name (or "UNKNOWN") -> count

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(slots=True)
class TopValue:
    value: str
    count: int


@dataclass(slots=True)
class StoreStats:
    records: int
    bytes_on_disk: int
    first_timestamp: int | None
    last_timestamp: int | None
    services: dict[str, int]
    templates: int
    shards: int


@dataclass(slots=True)
class SearchPage:
    records: list[LogRecord]
    next_cursor: int | None


class StoreLockedError(RuntimeError):
    """Another process holds the data directory for writing."""


class Store(abc.ABC):
    """A log store. Writes are durable when ``write`` returns."""

    @abc.abstractmethod
    def write(self, records: Sequence[LogRecord], templates: Iterable[Template] = (),
              merges: Iterable[tuple[int, int]] = ()) -> None:
        """Assign ids and persist ``records`` (durably when this returns), with the templates that
        changed and the template merges ``(old id, new id)`` since the last write. ``records`` is a
        list of records (each gets its ``id``) or a :class:`~loglens.model.RecordBatch` (its
        ``ids`` are filled)."""

    @abc.abstractmethod
    def load_templates(self) -> list[Template]: ...

    @abc.abstractmethod
    def templates(self) -> list[Template]:
        """Live templates (those merged into another are left out)."""

    @abc.abstractmethod
    def known_attributes(self) -> set[str]: ...

    @abc.abstractmethod
    def values(self, field_name: str) -> list[str]:
        """Known values of a keyword field (service, host, source)."""

    @abc.abstractmethod
    def search(self, plan: Plan, time: TimeRange, limit: int, cursor: int | None = None) -> SearchPage:
        """Matching records newest first; ``cursor`` is the id the next page starts below."""

    @abc.abstractmethod
    def count(self, plan: Plan, time: TimeRange) -> int: ...

    @abc.abstractmethod
    def histogram(self, plan: Plan, time: TimeRange, interval_ns: int) -> list[Bucket]: ...

    @abc.abstractmethod
    def top(self, plan: Plan, time: TimeRange, field_name: str, limit: int) -> list[TopValue]: ...

    @abc.abstractmethod
    def template_counts(self, plan: Plan, time: TimeRange) -> dict[int, dict[str, int]]:
        """Matching records per template id, by level name."""

    @abc.abstractmethod
    def template_trends(self, template_ids: list[int], time: TimeRange, interval_ns: int) -> dict[int, dict[int, int]]:
        """Per template: bucket start (ns) -> records, for buckets of ``interval_ns``."""

    @abc.abstractmethod
    def get(self, record_id: int) -> LogRecord | None: ...

    @abc.abstractmethod
    def context(self, record_id: int, before: int, after: int) -> tuple[list[LogRecord], list[LogRecord]]:
        """Records from the same service and host just before and after, both oldest first."""

    @abc.abstractmethod
    def stats(self) -> StoreStats: ...

    @abc.abstractmethod
    def apply_retention(self, cutoff_ns: int) -> int:
        """Drop data older than ``cutoff_ns``; returns the number of records removed."""

    @abc.abstractmethod
    def refresh(self) -> None:
        """Pick up what another process wrote (dictionaries, templates, new shards)."""

    @abc.abstractmethod
    def close(self) -> None: ...


Subscriber = Callable[[list[LogRecord]], None]
