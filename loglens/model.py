"""The data model every stage shares: a log record, its level, a batch of records as columns, and a
template.

Field names follow OpenTelemetry's log data model where one exists.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, overload


class Level(IntEnum):
    """Severity. UNKNOWN is a real value: a level we could not find is never guessed."""

    UNKNOWN = 0
    TRACE = 1
    DEBUG = 2
    INFO = 3
    WARN = 4
    ERROR = 5
    FATAL = 6

    @classmethod
    def from_name(cls, name: str) -> Level:
        """Exact canonical name (case-insensitive); raises KeyError otherwise."""
        return cls[name.upper()]


LEVEL_NAMES: tuple[str, ...] = tuple(level.name for level in Level)


@dataclass(slots=True)
class LogRecord:
    """One log event.

    ``header`` + ``message`` is the line as it was received for plain-text input (``header`` is
    the prefix holding timestamp, level, pid, component...); for JSON input ``header`` is empty.
    Times are integer nanoseconds since the Unix epoch, UTC.
    """

    timestamp: int
    message: str
    level: Level = Level.UNKNOWN
    service: str = ""
    host: str = ""
    header: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    trace_id: str = ""
    observed_at: int = 0
    source: str = ""
    template_id: int = 0
    id: int = 0

    @property
    def line(self) -> str:
        """The text as received (header and message)."""
        return self.header + self.message


_LEVELS = tuple(Level)


class RecordBatch(Sequence[LogRecord]):
    """A batch of records as columns: one list per field of :class:`LogRecord` (levels as ints).

    Ingest moves batches from the worker to the store as columns, which is how the store reads
    them; a subscriber that looks at records gets them built once, on first use. ``ids`` is filled
    when the batch is written."""

    __slots__ = ("_records", "attributes", "headers", "hosts", "ids", "levels", "messages", "observed_ats",
                 "services", "sources", "template_ids", "timestamps", "trace_ids")

    def __init__(self, timestamps: list[int], messages: list[str], levels: list[int], services: list[str],
                 hosts: list[str], headers: list[str], attributes: list[dict[str, Any]], trace_ids: list[str],
                 observed_ats: list[int], sources: list[str], template_ids: list[int]) -> None:
        self.timestamps = timestamps
        self.messages = messages
        self.levels = levels
        self.services = services
        self.hosts = hosts
        self.headers = headers
        self.attributes = attributes
        self.trace_ids = trace_ids
        self.observed_ats = observed_ats
        self.sources = sources
        self.template_ids = template_ids
        self.ids: list[int] = []
        self._records: list[LogRecord] | None = None

    @classmethod
    def of(cls, records: Sequence[LogRecord]) -> RecordBatch:
        """The batch of these records (itself for a batch); ids set later reach the records."""
        if isinstance(records, RecordBatch):
            return records
        batch = cls(
            [r.timestamp for r in records], [r.message for r in records], [int(r.level) for r in records],
            [r.service for r in records], [r.host for r in records], [r.header for r in records],
            [r.attributes for r in records], [r.trace_id for r in records], [r.observed_at for r in records],
            [r.source for r in records], [r.template_id for r in records],
        )
        batch._records = list(records)
        return batch

    def columns(self) -> tuple[list[Any], ...]:
        """The field columns in :class:`LogRecord`'s order, without ids (what the worker sends)."""
        return (self.timestamps, self.messages, self.levels, self.services, self.hosts, self.headers,
                self.attributes, self.trace_ids, self.observed_ats, self.sources, self.template_ids)

    def take(self, indices: list[int]) -> RecordBatch:
        """The batch of the records at these positions."""
        return RecordBatch(*([column[i] for i in indices] for column in self.columns()))

    def set_ids(self, ids: list[int]) -> None:
        """The ids the store gave, in the batch's order (records already built get theirs)."""
        self.ids = ids
        if self._records is not None:
            for rec, rid in zip(self._records, ids, strict=True):
                rec.id = rid

    def records(self) -> list[LogRecord]:
        """The batch as records, built on the first call."""
        if self._records is None:
            levels = [_LEVELS[n] for n in self.levels]
            ids = self.ids or [0] * len(self.timestamps)
            self._records = list(map(LogRecord, self.timestamps, self.messages, levels, self.services, self.hosts,
                                     self.headers, self.attributes, self.trace_ids, self.observed_ats,
                                     self.sources, self.template_ids, ids))
        return self._records

    def __len__(self) -> int:
        return len(self.timestamps)

    @overload
    def __getitem__(self, index: int) -> LogRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[LogRecord]: ...

    def __getitem__(self, index: int | slice) -> LogRecord | list[LogRecord]:
        return self.records()[index]

    def __iter__(self) -> Iterator[LogRecord]:
        return iter(self.records())


@dataclass(slots=True)
class Template:
    """A message pattern with ``<*>`` for its variable parts."""

    id: int
    text: str
    count: int = 0
    first_seen: int = 0
    last_seen: int = 0
    aliases: list[str] = field(default_factory=list)
