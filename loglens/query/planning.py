"""Query planning: the parsed syntax tree, checked against the known fields, becomes a ``Plan``.

A plan is backend-neutral. It carries the resolved tree (canonical field names, typed values) that a
store translates into its own index lookups, and ``predicate``: the exact meaning of the query as a
Python function over one record. Stores use the predicate to verify candidates their index cannot
decide exactly, and live tail uses it on freshly committed records, so there is one definition of
what a query matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from loglens.model import Level, LogRecord
from loglens.query import ast
from loglens.query.errors import QueryError
from loglens.query.language import parse

Predicate = Callable[[LogRecord], bool]

#: Fields every record has. Attribute names are known from the data.
BUILTIN_FIELDS: tuple[str, ...] = ("level", "service", "host", "message", "trace_id", "template", "source")
#: Dictionary-encoded fields with few distinct values: stores can index them as exact tokens.
KEYWORD_FIELDS: frozenset[str] = frozenset({"service", "host", "source"})
FIELD_ALIASES: dict[str, str] = {
    "service.name": "service",
    "host.name": "host",
    "hostname": "host",
    "template_id": "template",
    "traceid": "trace_id",
    "trace.id": "trace_id",
    "msg": "message",
    "severity": "level",
    "log.level": "level",
}

_WORD = re.compile(r"\w+")


def text_pattern(text: str) -> re.Pattern[str]:
    """Regex for a term or phrase: the exact text, case-insensitive, whole tokens at both ends.

    Runs of whitespace inside the text match any whitespace run, so a phrase survives a tab or
    a double space in the line.
    """
    parts = [re.escape(p) for p in text.split()]
    body = r"\s+".join(parts) if parts else re.escape(text)
    left = r"(?<!\w)" if text[:1].isalnum() or text[:1] == "_" else ""
    right = r"(?!\w)" if text[-1:].isalnum() or text[-1:] == "_" else ""
    return re.compile(left + body + right, re.IGNORECASE)


def prefix_pattern(text: str) -> re.Pattern[str]:
    left = r"(?<!\w)" if text[:1].isalnum() or text[:1] == "_" else ""
    return re.compile(left + re.escape(text), re.IGNORECASE)


def word_tokens(text: str) -> list[str]:
    """Lower-cased word tokens, the unit the full-text index stores."""
    return [t.lower() for t in _WORD.findall(text)]


def is_single_token(text: str) -> bool:
    return _WORD.fullmatch(text) is not None


def searchable_values(record: LogRecord) -> Iterable[str]:
    """Every text a bare term may match: the line as received, attribute values, service, host."""
    # header and message together: a phrase may run from the header into the message
    yield record.header + record.message if record.header else record.message
    if record.service:
        yield record.service
    if record.host:
        yield record.host
    if record.trace_id:
        yield record.trace_id
    for value in record.attributes.values():
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield " ".join(str(v) for v in value)
        elif value is not None:
            yield str(value)


def _level_value(value: str | float, pos: int, query: str) -> Level:
    if isinstance(value, float):
        try:
            return Level(int(value))
        except ValueError:
            pass
    else:
        try:
            return Level.from_name(value)
        except KeyError:
            if value.upper() == "WARNING":
                return Level.WARN
    names = ", ".join(lvl.name for lvl in Level)
    raise QueryError(f"unknown level {value!r}; levels are {names}", pos, query)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def resolve_field_name(name: str, known_attributes: Collection[str]) -> str:
    """The canonical name of a built-in field or a known attribute; KeyError says which exist."""
    canonical = FIELD_ALIASES.get(name.lower(), name)
    if canonical.lower() in BUILTIN_FIELDS:
        return canonical.lower()
    if canonical in known_attributes:
        return canonical
    known = sorted(known_attributes)
    shown = ", ".join([*BUILTIN_FIELDS, *known[:60]]) + (" ..." if len(known) > 60 else "")
    raise KeyError(f"unknown field {name!r}; known fields: {shown}")


@dataclass(slots=True)
class Plan:
    """A checked query: the resolved tree and its exact predicate."""

    query: str
    node: ast.Node
    predicate: Predicate
    fields: set[str] = field(default_factory=set)

    @property
    def matches_all(self) -> bool:
        return isinstance(self.node, ast.MatchAll)


#: Resolves ``similar:"text"`` to the ids of the templates that mean the same (semantic search).
SimilarResolver = Callable[[str], list[int]]
SIMILAR_FIELD = "similar"


class _Planner:
    def __init__(self, query: str, known_attributes: Collection[str],
                 similar: SimilarResolver | None = None) -> None:
        self.query = query
        self.known = known_attributes
        self.similar = similar
        self.fields: set[str] = set()

    def resolve_similar(self, node: ast.FieldMatch) -> ast.Node:
        """``similar:"text"`` becomes ``template:a OR template:b ...`` (nothing matches if none is similar)."""
        if self.similar is None:
            raise QueryError("similar: needs the pattern index, which this query path does not have",
                             node.pos, self.query)
        ids = self.similar(node.value)
        self.fields.add("template")
        if not ids:
            return ast.Not(ast.MatchAll(node.pos), node.pos)
        items = tuple(ast.FieldMatch("template", str(i), "term", node.pos) for i in ids)
        return items[0] if len(items) == 1 else ast.Or(items, node.pos)

    def resolve_field(self, name: str, pos: int) -> str:
        try:
            return resolve_field_name(name, self.known)
        except KeyError as exc:
            raise QueryError(exc.args[0], pos, self.query) from None

    def resolve(self, node: ast.Node) -> ast.Node:
        if isinstance(node, ast.FieldMatch):
            if node.field.lower() == SIMILAR_FIELD and SIMILAR_FIELD not in self.known:
                return self.resolve_similar(node)
            name = self.resolve_field(node.field, node.pos)
            self.fields.add(name)
            if name == "level":
                level = _level_value(node.value, node.pos, self.query)
                return ast.FieldCompare("level", "=", float(level), node.pos)
            if name == "template" and not node.value.isdigit():
                raise QueryError(f"template ids are numbers, got {node.value!r}", node.pos, self.query)
            return ast.FieldMatch(name, node.value, node.kind, node.pos)
        if isinstance(node, ast.FieldCompare):
            name = self.resolve_field(node.field, node.pos)
            self.fields.add(name)
            if name == "level":
                return ast.FieldCompare(
                    "level", node.op, float(_level_value(node.value, node.pos, self.query)), node.pos
                )
            return ast.FieldCompare(name, node.op, node.value, node.pos)
        if isinstance(node, ast.And):
            return ast.And(tuple(self.resolve(n) for n in node.items), node.pos)
        if isinstance(node, ast.Or):
            return ast.Or(tuple(self.resolve(n) for n in node.items), node.pos)
        if isinstance(node, ast.Not):
            return ast.Not(self.resolve(node.item), node.pos)
        return node

    def predicate(self, node: ast.Node) -> Predicate:
        if isinstance(node, ast.MatchAll):
            return lambda r: True
        if isinstance(node, ast.Text):
            pattern = prefix_pattern(node.value) if node.kind == "prefix" else text_pattern(node.value)
            search = pattern.search
            return lambda r: any(search(v) for v in searchable_values(r))
        if isinstance(node, ast.Regex):
            rx = re.compile(node.pattern)
            return lambda r: rx.search(r.message) is not None
        if isinstance(node, ast.FieldMatch):
            return self.field_match(node)
        if isinstance(node, ast.FieldCompare):
            return self.field_compare(node)
        if isinstance(node, ast.And):
            parts = [self.predicate(n) for n in node.items]
            return lambda r: all(p(r) for p in parts)
        if isinstance(node, ast.Or):
            parts = [self.predicate(n) for n in node.items]
            return lambda r: any(p(r) for p in parts)
        if isinstance(node, ast.Not):
            inner = self.predicate(node.item)
            return lambda r: not inner(r)
        raise TypeError(f"unexpected node {node!r}")

    def field_match(self, node: ast.FieldMatch) -> Predicate:
        name, value, kind = node.field, node.value, node.kind
        lowered = value.lower()
        if name in KEYWORD_FIELDS or name == "trace_id":
            def get(r: LogRecord) -> str:
                return str(getattr(r, name)).lower()
            if kind == "prefix":
                return lambda r: get(r).startswith(lowered)
            return lambda r: get(r) == lowered
        if name == "template":
            wanted = int(value)
            return lambda r: r.template_id == wanted
        pattern = prefix_pattern(value) if kind == "prefix" else text_pattern(value)
        if name == "message":
            return lambda r: pattern.search(r.message) is not None
        number = _as_number(value)

        def attribute_matches(v: Any) -> bool:
            if isinstance(v, list):
                return any(attribute_matches(x) for x in v)
            if number is not None and kind == "term":
                n = _as_number(v)
                if n is not None:
                    return n == number
            if v is None:
                return False
            text = v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
            if kind == "prefix":
                return text.lower().startswith(lowered) or pattern.search(text) is not None
            return text.lower() == lowered or pattern.search(text) is not None

        return lambda r: name in r.attributes and attribute_matches(r.attributes[name])

    def field_compare(self, node: ast.FieldCompare) -> Predicate:
        name, op = node.field, _OPS[node.op]
        if name == "level":
            level = int(node.value)
            return lambda r: op(int(r.level), level)
        if name == "template":
            wanted = _as_number(node.value)
            if wanted is None:
                raise QueryError("template ids are numbers", node.pos, self.query)
            return lambda r: op(r.template_id, wanted)
        if isinstance(node.value, float):
            number = node.value

            def compare_number(r: LogRecord) -> bool:
                raw = getattr(r, name) if name in BUILTIN_FIELDS else r.attributes.get(name)
                n = _as_number(raw)
                return n is not None and op(n, number)

            return compare_number
        text = node.value.lower()

        def compare_text(r: LogRecord) -> bool:
            raw = getattr(r, name) if name in BUILTIN_FIELDS else r.attributes.get(name)
            return raw is not None and op(str(raw).lower(), text)

        return compare_text


def plan_query(query: str, known_attributes: Collection[str] = (), similar: SimilarResolver | None = None) -> Plan:
    """Parse and check ``query``; raises ``QueryError`` (with a position) when it is malformed.

    ``similar`` resolves ``similar:"text"`` to template ids; without it such a query is an error.
    """
    planner = _Planner(query, known_attributes, similar)
    node = planner.resolve(parse(query))
    return Plan(query=query, node=node, predicate=planner.predicate(node), fields=planner.fields)
