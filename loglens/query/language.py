"""The query language: a small tokenizer and a recursive-descent parser producing ``ast`` nodes.

Grammar (``docs/query.md`` is the user documentation)::

    query    := or_expr? EOF
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := unary (["AND"] unary)*          juxtaposition is AND
    unary    := ("NOT" | "-") unary | primary     NOT binds tighter than AND, AND than OR
    primary  := atom | "(" or_expr ")"
    atom     := term | term* | "phrase" | /regex/ | field:value | field:"phrase" | field:pre*
              | field OP value | field:KOP value   OP: < <= > >= = == !=, KOP: < <= > >=

Words are runs of characters up to whitespace or one of ``( ) "``. How a word is read:

* ``AND``, ``OR``, ``NOT`` (uppercase only) are operators;
* ``name:value`` is a field match when ``name`` is a valid field name (a letter, ``_`` or ``@``
  then letters, digits, ``_ . @ -``) and the value does not start with ``//`` (so a bare URL
  ``http://host/x`` stays a term); otherwise the word is a term (``10.0.0.1:8080``, ``12:30:05``);
* ``name<op>value`` is a comparison; a comparison whose left side is not a field name is an error;
* a word starting with ``/`` is a regex when its first unescaped ``/`` after the opening one is
  followed by whitespace, a parenthesis, a quote or the end of the query (the regex may contain
  spaces and parentheses: ``/connection (refused|reset)/``, but writes a double quote ``\\"``);
  otherwise it is a plain term (``/api/v1/users``);
* ``*`` alone matches everything; a trailing ``*`` makes a prefix.

``-`` directly in front of an operand negates it; anywhere else it is part of the word.
"""

from __future__ import annotations

import math
import re
from typing import Final

from loglens.query.ast import (
    And,
    CompareOp,
    FieldCompare,
    FieldMatch,
    MatchAll,
    MatchKind,
    Node,
    Not,
    Or,
    Regex,
    Text,
)
from loglens.query.errors import QueryError

__all__ = ["MAX_DEPTH", "format_query", "is_field_name", "parse"]

#: Deepest nesting of parentheses and negations accepted (keeps every consumer's recursion safe).
MAX_DEPTH: Final = 100

_WS = re.compile(r"\s+")
_WORD = re.compile(r'[^\s()"]+')
_NAME_RUN = re.compile(r"[A-Za-z0-9_.@-]*")
_FIELD_NAME = re.compile(r"[A-Za-z_@][A-Za-z0-9_.@-]*")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PHRASE_CHUNK = re.compile(r'[^"\\]*')
_REGEX_CHUNK = re.compile(r'[^/\\"]*')

# Token kinds.
_ATOM: Final = 0
_LPAREN: Final = 1
_RPAREN: Final = 2
_AND: Final = 3
_OR: Final = 4
_NOT: Final = 5
_MINUS: Final = 6
_EOF: Final = 7

_KEYWORDS: Final = {"AND": _AND, "OR": _OR, "NOT": _NOT}
_SPELLING: Final = {_LPAREN: "(", _RPAREN: ")", _AND: "AND", _OR: "OR", _NOT: "NOT", _MINUS: "-"}
_STARTS_OPERAND: Final = frozenset({_ATOM, _LPAREN, _NOT, _MINUS})
_COMPARE_OP = re.compile(r"<=|>=|!=|==|<|>|=")
_CANONICAL_OP: Final[dict[str, CompareOp]] = {
    "<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "=", "==": "=", "!=": "!="
}

_Token = tuple[int, int, Node | None]  # kind, position, node (atoms only)


def is_field_name(name: str) -> bool:
    """Whether ``name`` can be written as a field in a query (``http.status``, ``@timestamp``...)."""
    return _FIELD_NAME.fullmatch(name) is not None


def _ends_word(query: str, i: int) -> bool:
    """Whether position ``i`` is the end of a word: end of input, whitespace, ``(``, ``)`` or ``"``."""
    return i >= len(query) or query[i] in '()"' or query[i].isspace()


class _Lexer:
    __slots__ = ("n", "query", "tokens")

    def __init__(self, query: str) -> None:
        self.query = query
        self.n = len(query)
        self.tokens: list[_Token] = []

    def error(self, message: str, position: int) -> QueryError:
        return QueryError(message, position, self.query)

    def run(self) -> list[_Token]:
        query, n, tokens = self.query, self.n, self.tokens
        i = 0
        while True:
            m = _WS.match(query, i)
            if m is not None:
                i = m.end()
            if i >= n:
                break
            c = query[i]
            if c == "(":
                tokens.append((_LPAREN, i, None))
                i += 1
            elif c == ")":
                tokens.append((_RPAREN, i, None))
                i += 1
            elif c == '"':
                value, i_end = self.phrase(i)
                tokens.append((_ATOM, i, Text(value, "phrase", i)))
                i = i_end
            elif c == "-":
                if i + 1 >= n or query[i + 1].isspace():
                    raise self.error("expected a term right after '-'", i + 1)
                tokens.append((_MINUS, i, None))
                i += 1
            else:
                i = self.word(i)
        tokens.append((_EOF, n, None))
        return tokens

    def phrase(self, start: int) -> tuple[str, int]:
        """Read the quoted phrase opening at ``start``; ``\\"`` and ``\\\\`` are escapes."""
        query, n = self.query, self.n
        parts: list[str] = []
        i = start + 1
        while True:
            m = _PHRASE_CHUNK.match(query, i)
            assert m is not None  # the pattern matches the empty string
            parts.append(m.group())
            i = m.end()
            if i >= n or (query[i] == "\\" and i + 1 >= n):
                raise self.error("unterminated phrase: expected a closing '\"'", start)
            if query[i] == '"':
                return "".join(parts), i + 1
            escaped = query[i + 1]
            parts.append(escaped if escaped in '"\\' else "\\" + escaped)
            i += 2

    def regex(self, start: int) -> tuple[str, int] | None:
        """The pattern and end of a ``/regex/`` opening at ``start``, or None if it is not one."""
        query, n = self.query, self.n
        parts: list[str] = []
        i = start + 1
        while True:
            m = _REGEX_CHUNK.match(query, i)
            assert m is not None
            parts.append(m.group())
            i = m.end()
            if i >= n or query[i] == '"':  # a regex writes a double quote as \"
                return None
            if query[i] == "/":
                if not _ends_word(query, i + 1):
                    return None
                return "".join(parts), i + 1
            if i + 1 >= n:  # a backslash at the very end
                return None
            escaped = query[i + 1]
            parts.append("/" if escaped == "/" else "\\" + escaped)
            i += 2

    def word(self, start: int) -> int:
        """Tokenize the word (or regex) at ``start``; returns where the next token may begin."""
        query = self.query
        if query[start] == "/":
            found = self.regex(start)
            if found is not None:
                pattern, end = found
                self.check_regex(pattern, start)
                self.tokens.append((_ATOM, start, Regex(pattern, start)))
                return end
        m = _WORD.match(query, start)
        assert m is not None  # query[start] is not whitespace, a parenthesis or a quote
        end = m.end()
        word = m.group()
        keyword = _KEYWORDS.get(word)
        if keyword is not None:
            self.tokens.append((keyword, start, None))
            return end
        name_run = _NAME_RUN.match(query, start, end)
        assert name_run is not None  # the pattern matches the empty string
        name_end = name_run.end()
        if name_end < end:
            sep = query[name_end]
            if sep == ":":
                name = query[start:name_end]
                if is_field_name(name) and not query.startswith("//", name_end + 1):
                    return self.field_value(name, start, name_end + 1)
            elif sep in "<>=!":
                op_match = _COMPARE_OP.match(query, name_end)
                if op_match is not None:
                    op = op_match.group()
                    name = query[start:name_end]
                    if not name:
                        raise self.error(f"expected a field name before '{op}'", start)
                    if not is_field_name(name):
                        raise self.error(
                            f"invalid field name {name!r}: a field name starts with a letter, '_' or '@'",
                            start,
                        )
                    return self.compare_value(name, _CANONICAL_OP[op], start, name_end + len(op))
        if word == "*":
            node: Node = MatchAll(start)
        elif word.endswith("*"):
            node = Text(word[:-1], "prefix", start)
        else:
            node = Text(word, "term", start)
        self.tokens.append((_ATOM, start, node))
        return end

    def field_value(self, name: str, start: int, i: int) -> int:
        """The value after ``name:`` at ``i`` (``start`` is where the field name begins)."""
        query = self.query
        if _ends_word(query, i) and not query.startswith('"', i):
            message = f"expected a value after '{name}:'"
            if query.startswith("(", i):
                message += f" (grouping like {name}:(a OR b) is not supported; write ({name}:a OR {name}:b))"
            raise self.error(message, i)
        c = query[i]
        if c == '"':
            value, end = self.phrase(i)
            self.tokens.append((_ATOM, start, FieldMatch(name, value, "phrase", start)))
            return end
        if c in "<>":
            spelled = query[i : i + 2] if query.startswith("=", i + 1) else c
            end = i + len(spelled)
            return self.compare_value(name, _CANONICAL_OP[spelled], start, end, label=f"{name}:{spelled}")
        m = _WORD.match(query, i)
        assert m is not None
        value = m.group()
        kind: MatchKind = "term"
        if value.endswith("*"):
            value, kind = value[:-1], "prefix"
        self.tokens.append((_ATOM, start, FieldMatch(name, value, kind, start)))
        return m.end()

    def compare_value(self, name: str, op: CompareOp, start: int, i: int, label: str | None = None) -> int:
        query = self.query
        if _ends_word(query, i) and not query.startswith('"', i):
            shown = label if label is not None else query[start:i]
            raise self.error(f"expected a value after '{shown}'", i)
        value: str | float
        if query[i] == '"':
            value, end = self.phrase(i)
        else:
            m = _WORD.match(query, i)
            assert m is not None
            text, end = m.group(), m.end()
            value = float(text) if _NUMBER.fullmatch(text) else text
        self.tokens.append((_ATOM, start, FieldCompare(name, op, value, start)))
        return end

    def check_regex(self, pattern: str, start: int) -> None:
        if not pattern:
            raise self.error("empty regular expression", start)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise self.error(f"invalid regular expression: {exc.msg}", start) from None
        except (OverflowError, RecursionError, ValueError) as exc:
            raise self.error(f"invalid regular expression: {exc}", start) from None


class _Parser:
    __slots__ = ("depth", "i", "query", "tokens")

    def __init__(self, query: str, tokens: list[_Token]) -> None:
        self.query = query
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def error(self, message: str, position: int) -> QueryError:
        return QueryError(message, position, self.query)

    def expect_operand(self, after: str | None, open_pos: int = 0) -> None:
        """Raise unless the next token can start an operand; ``after`` is what precedes it."""
        kind, pos, _ = self.tokens[self.i]
        if kind in _STARTS_OPERAND:
            return
        if kind == _RPAREN:
            if after == "(":
                raise self.error("empty parentheses", open_pos)
            if after is None:
                raise self.error("unexpected ')'", pos)
        elif kind in (_AND, _OR) and after in (None, "("):
            raise self.error(f"expected a term before '{_SPELLING[kind]}'", pos)
        raise self.error(f"expected a term after '{after}'", pos)

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"query is nested too deeply (more than {MAX_DEPTH} levels)", pos)

    def parse(self) -> Node:
        if self.tokens[0][0] == _EOF:
            return MatchAll(0)
        self.expect_operand(None)
        node = self.or_expr()
        kind, pos, _ = self.tokens[self.i]
        if kind != _EOF:  # only ')' can stop or_expr early
            raise self.error("unexpected ')'", pos)
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        tokens = self.tokens
        while tokens[self.i][0] == _OR:
            self.i += 1
            self.expect_operand("OR")
            items.append(self.and_expr())
        return _combine(Or, items)

    def and_expr(self) -> Node:
        items = [self.unary()]
        tokens = self.tokens
        while True:
            kind = tokens[self.i][0]
            if kind == _AND:
                self.i += 1
                self.expect_operand("AND")
            elif kind not in _STARTS_OPERAND:
                return _combine(And, items)
            items.append(self.unary())

    def unary(self) -> Node:
        tokens = self.tokens
        negations: list[int] = []
        while True:
            kind, pos, _ = tokens[self.i]
            if kind != _NOT and kind != _MINUS:
                break
            self.enter(pos)
            negations.append(pos)
            self.i += 1
            self.expect_operand(_SPELLING[kind])
        node = self.primary()
        for pos in reversed(negations):
            node = Not(node, pos)
        self.depth -= len(negations)
        return node

    def primary(self) -> Node:
        kind, pos, node = self.tokens[self.i]
        self.i += 1
        if kind == _ATOM:
            assert node is not None
            return node
        # expect_operand guarantees an atom or '(' here.
        self.enter(pos)
        self.expect_operand("(", pos)
        inner = self.or_expr()
        if self.tokens[self.i][0] != _RPAREN:
            raise self.error("expected ')'", self.tokens[self.i][1])
        self.i += 1
        self.depth -= 1
        return inner


def _combine(cls: type[And] | type[Or], items: list[Node]) -> Node:
    if len(items) == 1:
        return items[0]
    flat: list[Node] = []
    for item in items:
        if isinstance(item, cls):
            flat.extend(item.items)
        else:
            flat.append(item)
    return cls(tuple(flat), flat[0].pos)


def parse(query: str) -> Node:
    """Parse ``query`` into a syntax tree; raises ``QueryError`` with a position when malformed.

    The empty (or all-whitespace) query is ``MatchAll()``.
    """
    tokens = _Lexer(query).run()
    return _Parser(query, tokens).parse()


# ---------------------------------------------------------------------------------------------
# Formatting


def _parses_to(text: str, expected: Node) -> bool:
    try:
        node = _Lexer(text).run()
    except QueryError:
        return False
    return len(node) == 2 and node[0][0] == _ATOM and node[0][2] == expected


def _quote(value: str) -> str:
    """``value`` as a quoted phrase; backslashes are doubled only where the parser needs it."""
    out = ['"']
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ch == '"':
            out.append('\\"')
        elif ch == "\\" and (i == last or value[i + 1] in '"\\'):
            out.append("\\\\")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _format_number(value: float) -> str:
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _format_regex(pattern: str) -> str:
    if not pattern:
        return "/(?:)/"
    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            out.append(pattern[i : i + 2])
            i += 2
            continue
        out.append("\\/" if ch == "/" else '\\"' if ch == '"' else ch)
        i += 1
    return "/" + "".join(out) + "/"


def _format_atom(node: Node, quote_strings: bool) -> str | None:
    """The text of an atom, or None when ``node`` is not an atom."""
    if isinstance(node, Text):
        if node.kind == "phrase":
            return _quote(node.value)
        text = node.value + "*" if node.kind == "prefix" else node.value
        if _parses_to(text, Text(node.value, node.kind, 0)):
            return text
        return _quote(node.value)  # not writable as a bare word: the closest is a phrase
    if isinstance(node, Regex):
        return _format_regex(node.pattern)
    if isinstance(node, FieldMatch):
        if not is_field_name(node.field):
            raise ValueError(f"cannot write field name {node.field!r} in a query")
        if node.kind != "phrase":
            text = f"{node.field}:{node.value}" + ("*" if node.kind == "prefix" else "")
            if _parses_to(text, FieldMatch(node.field, node.value, node.kind, 0)):
                return text
        return f"{node.field}:{_quote(node.value)}"
    if isinstance(node, FieldCompare):
        if not is_field_name(node.field):
            raise ValueError(f"cannot write field name {node.field!r} in a query")
        value = node.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"{node.field}{node.op}{_format_number(float(value))}"
        text = f"{node.field}{node.op}{value}"
        if not quote_strings and _parses_to(text, FieldCompare(node.field, node.op, value, 0)):
            return text
        return f"{node.field}{node.op}{_quote(str(value))}"
    if isinstance(node, MatchAll):
        return "*"
    return None


def _unwrap(node: Node) -> Node:
    """A one-item And/Or is its item."""
    while isinstance(node, And | Or) and len(node.items) == 1:
        node = node.items[0]
    return node


def _operand(node: Node, quote_strings: bool) -> str:
    """``node`` as an operand of a boolean operator: a group gets parentheses."""
    node = _unwrap(node)
    text = _format(node, quote_strings)
    return f"({text})" if isinstance(node, And | Or) and node.items else text


def _format(node: Node, quote_strings: bool) -> str:
    node = _unwrap(node)
    atom = _format_atom(node, quote_strings)
    if atom is not None:
        return atom
    if isinstance(node, Not):
        return "-" + _operand(node.item, quote_strings)
    if isinstance(node, And):
        if not node.items:
            return "*"
        return " ".join(_operand(item, quote_strings) for item in node.items)
    if isinstance(node, Or):
        if not node.items:
            return "-*"
        return " OR ".join(_operand(item, quote_strings) for item in node.items)
    raise TypeError(f"not a query node: {node!r}")


def _has_slash_term(node: Node) -> bool:
    if isinstance(node, Text):
        return node.kind != "phrase" and node.value.startswith("/")
    if isinstance(node, Not):
        return _has_slash_term(node.item)
    if isinstance(node, And | Or):
        return any(_has_slash_term(item) for item in node.items)
    return False


def format_query(node: Node) -> str:
    """Write ``node`` back as query text that ``parse`` turns into the same tree (positions aside).

    The output is normalized: single spaces, juxtaposition for AND, parentheses around every
    group inside another, ``-`` for negation, ``field>=v`` for comparisons. ``MatchAll`` at the
    top is the empty string. Hand-built nodes that have no exact spelling get the closest one: a
    term with spaces is written as a phrase, an empty And as ``*``, an empty Or as ``-*``; a field
    name that cannot be written raises ``ValueError``.
    """
    if isinstance(node, MatchAll):
        return ""
    # A term starting with "/" is only kept from reading as the start of a regex by what follows
    # it; quoting every comparison string keeps the same stops in the output as in any input.
    return _format(node, _has_slash_term(node))
