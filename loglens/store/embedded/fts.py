"""Translate a resolved query tree into SQLite FTS5 and rollup-table SQL.

The full-text index is contentless (``detail=none``): it stores, per token, the ids of the
records holding it. Besides the words of each record it holds one hidden token per keyword value
(``__l5`` = level ERROR, ``__s3`` = service id 3, ``__h7`` host, ``__r2`` source, ``__t42``
template), so field filters intersect posting lists instead of reading rows.

``compile_fts`` returns the FTS5 expression and whether the index alone decides the query
exactly; when it does not, the store verifies each candidate with the plan's predicate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loglens.model import Level
from loglens.query import ast
from loglens.query.planning import KEYWORD_FIELDS, is_single_token, word_tokens

#: A token that is never indexed: an FTS expression for "no record".
NOTHING = '"__none"'
FIELD_TOKEN_PREFIX = {"level": "__l", "service": "__s", "host": "__h", "source": "__r", "template": "__t"}

Lookup = Callable[[str, str, str], list[int]]  # (field, value, kind) -> dictionary ids


@dataclass(slots=True)
class FtsQuery:
    expr: str | None  # None: the index cannot narrow this query down
    exact: bool


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def _any_of(tokens: list[str]) -> str:
    if not tokens:
        return NOTHING
    if len(tokens) == 1:
        return tokens[0]
    return "(" + " OR ".join(tokens) + ")"


def _level_tokens(op: str, value: float) -> list[str]:
    target = int(value)
    checks = {
        "=": lambda v: v == target,
        "!=": lambda v: v != target,
        "<": lambda v: v < target,
        "<=": lambda v: v <= target,
        ">": lambda v: v > target,
        ">=": lambda v: v >= target,
    }[op]
    return [f'"__l{int(level)}"' for level in Level if checks(int(level))]


def _text(value: str, kind: str) -> FtsQuery:
    tokens = word_tokens(value)
    if not tokens:
        return FtsQuery(None, False)
    if kind == "prefix":
        *head, last = tokens
        parts = [_quote(t) for t in head] + [_quote(last) + "*"]
        exact = len(tokens) == 1 and is_single_token(value)
        return FtsQuery(" AND ".join(parts), exact)
    exact = kind == "term" and len(tokens) == 1 and is_single_token(value)
    return FtsQuery(" AND ".join(_quote(t) for t in tokens), exact)


def compile_fts(node: ast.Node, lookup: Lookup) -> FtsQuery:
    if isinstance(node, ast.MatchAll):
        return FtsQuery(None, True)
    if isinstance(node, ast.Text):
        return _text(node.value, node.kind)
    if isinstance(node, ast.Regex):
        return FtsQuery(None, False)
    if isinstance(node, ast.FieldMatch):
        if node.field in KEYWORD_FIELDS:
            ids = lookup(node.field, node.value, node.kind)
            prefix = FIELD_TOKEN_PREFIX[node.field]
            return FtsQuery(_any_of([f'"{prefix}{i}"' for i in ids]), True)
        if node.field == "template":  # the template and the ones merged into it
            return FtsQuery(_any_of([f'"__t{i}"' for i in lookup("template", node.value, node.kind)]), True)
        # message, trace_id and attributes: the value's words narrow, the predicate decides.
        return FtsQuery(_text(node.value, node.kind).expr, False)
    if isinstance(node, ast.FieldCompare):
        if node.field == "level":
            return FtsQuery(_any_of(_level_tokens(node.op, float(node.value))), True)
        return FtsQuery(None, False)
    if isinstance(node, ast.Not) and isinstance(node.item, ast.MatchAll):  # e.g. similar:"x" with no match
        return FtsQuery(NOTHING, True)
    if isinstance(node, ast.And):
        positives: list[str] = []
        negatives: list[str] = []
        exact = True
        for item in node.items:
            if isinstance(item, ast.Not) and not isinstance(item.item, ast.MatchAll):
                inner = compile_fts(item.item, lookup)
                if inner.expr is not None and inner.exact:
                    negatives.append(inner.expr)
                else:
                    exact = False
                continue
            part = compile_fts(item, lookup)
            if part.expr is None:
                exact = exact and part.exact and isinstance(item, ast.MatchAll)
                continue
            positives.append(part.expr)
            exact = exact and part.exact
        if not positives:
            return FtsQuery(None, False)
        expr = "(" + " AND ".join(f"({p})" for p in positives) + ")"
        for neg in negatives:
            expr = f"({expr} NOT ({neg}))"
        return FtsQuery(expr, exact)
    if isinstance(node, ast.Or):
        parts = [compile_fts(item, lookup) for item in node.items]
        if any(p.expr is None for p in parts):
            return FtsQuery(None, False)
        return FtsQuery("(" + " OR ".join(f"({p.expr})" for p in parts) + ")", all(p.exact for p in parts))
    if isinstance(node, ast.Not):
        return FtsQuery(None, False)
    raise TypeError(f"unexpected node {node!r}")


def compile_rollup(node: ast.Node, lookup: Lookup) -> tuple[str, list[int]] | None:
    """SQL over columns ``level`` and ``service`` when the query only filters on those.

    Both the rollup tables and ``records`` have these columns, so the same clause serves the
    pre-aggregated minutes and the partial minutes at the edges of a time range.
    """
    if isinstance(node, ast.MatchAll):
        return "1", []
    if isinstance(node, ast.FieldCompare) and node.field == "level":
        op = "=" if node.op == "=" else node.op
        return f"level {op} ?", [int(node.value)]
    if isinstance(node, ast.FieldMatch) and node.field == "service":
        ids = lookup("service", node.value, node.kind)
        if not ids:
            return "0", []
        return f"service IN ({','.join('?' * len(ids))})", ids
    if isinstance(node, ast.And | ast.Or):
        parts = [compile_rollup(item, lookup) for item in node.items]
        if any(p is None for p in parts):
            return None
        joiner = " AND " if isinstance(node, ast.And) else " OR "
        params: list[int] = []
        for p in parts:
            assert p is not None
            params.extend(p[1])
        return "(" + joiner.join(f"({p[0]})" for p in parts if p) + ")", params
    if isinstance(node, ast.Not):
        inner = compile_rollup(node.item, lookup)
        if inner is None:
            return None
        return f"(NOT ({inner[0]}))", inner[1]
    return None
