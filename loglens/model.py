"""The data model every stage shares: a log record, its level, and a template.

Field names follow OpenTelemetry's log data model where one exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


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


@dataclass(slots=True)
class Template:
    """A message pattern with ``<*>`` for its variable parts."""

    id: int
    text: str
    count: int = 0
    first_seen: int = 0
    last_seen: int = 0
    aliases: list[str] = field(default_factory=list)
