"""The query language's syntax tree. ``language.parse`` builds it; ``planning`` consumes it.

Every node carries ``pos``, the 0-based offset in the query string where it starts, so that later
stages (unknown field names, bad values) can report a position too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CompareOp = Literal["<", "<=", ">", ">=", "=", "!="]
MatchKind = Literal["term", "phrase", "prefix"]


@dataclass(frozen=True, slots=True)
class Text:
    """Free text anywhere in the line: a bare term, a "quoted phrase" or a ``pre*`` prefix."""

    value: str
    kind: MatchKind
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Regex:
    """``/pattern/`` matched against the message (Python ``re`` syntax, searched not anchored)."""

    pattern: str
    pos: int = 0


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """``field:value``, ``field:"a phrase"`` or ``field:pre*``."""

    field: str
    value: str
    kind: MatchKind
    pos: int = 0


@dataclass(frozen=True, slots=True)
class FieldCompare:
    """``field>=value`` and friends; ``value`` is a float when it parses as a number."""

    field: str
    op: CompareOp
    value: str | float
    pos: int = 0


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Not:
    item: Node
    pos: int = 0


@dataclass(frozen=True, slots=True)
class MatchAll:
    """The empty query."""

    pos: int = 0


Node = Text | Regex | FieldMatch | FieldCompare | And | Or | Not | MatchAll
