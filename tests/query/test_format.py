from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglens.query.ast import And, FieldCompare, FieldMatch, MatchAll, Node, Not, Or, Regex, Text
from loglens.query.errors import QueryError
from loglens.query.language import format_query, parse

from .test_language import FRAGMENTS
from .util import strip


def roundtrip(node: Node) -> Node:
    return strip(parse(format_query(node)))


@pytest.mark.parametrize(
    ("query", "formatted"),
    [
        ("", ""),
        ("   ", ""),
        ("*", ""),
        ("timeout", "timeout"),
        ("  a   AND   b  ", "a b"),
        ("a OR b c", "a OR (b c)"),
        ("(a OR b) c", "(a OR b) c"),
        ("NOT a", "-a"),
        ("NOT (a b)", "-(a b)"),
        ("-(a OR b)", "-(a OR b)"),
        ("NOT NOT a", "--a"),
        ("time*", "time*"),
        ('"say \\"hi\\""', '"say \\"hi\\""'),
        ('"C:\\path"', '"C:\\path"'),
        ("status:>=500", "status>=500"),
        ("status==200.0", "status=200"),
        ("t<20.50", "t<20.5"),
        ("n>1e20", "n>1e+20"),
        ("n>1e999", "n>1e999"),
        ("n>-1e999", "n>-1e999"),
        ("level>=WARN", "level>=WARN"),
        ('code="500"', 'code="500"'),
        ('svc="api gw"', 'svc="api gw"'),
        ('svc="api"', "svc=api"),
        ("f:*", "f:*"),
        ('f:"a b"', 'f:"a b"'),
        ("url:http://x", "url:http://x"),
        ("/a\\/b c/", "/a\\/b c/"),
        ('/say \\"x\\"/', '/say \\"x\\"/'),
        ("a *", "a *"),
        ("/api/v1/users code=x", '/api/v1/users code="x"'),
    ],
)
def test_format_examples(query: str, formatted: str) -> None:
    assert format_query(parse(query)) == formatted
    assert strip(parse(formatted)) == strip(parse(query))


HAND_BUILT = [
    (Text("a b", "term"), '"a b"'),
    (Text("AND", "term"), '"AND"'),
    (Text("-x", "term"), '"-x"'),
    (Text("f:x", "term"), '"f:x"'),
    (Text("/a/", "term"), '"/a/"'),
    (Text("", "term"), '""'),
    (Text("a\\", "phrase"), '"a\\\\"'),
    (Text('q"', "phrase"), '"q\\""'),
    (FieldMatch("f", "a b", "term"), 'f:"a b"'),
    (FieldMatch("f", ">5", "term"), 'f:">5"'),
    (FieldCompare("status", ">=", 500), "status>=500"),
    (FieldCompare("v", "=", "500"), 'v="500"'),
    (FieldCompare("v", "=", ""), 'v=""'),
    (Regex(""), "/(?:)/"),
    (Regex('a"b/c'), '/a\\"b\\/c/'),
    (And(()), "*"),
    (Or(()), "-*"),
    (And((Text("a", "term"),)), "a"),
    (And((Or((Text("a", "term"),)),)), "a"),
    (And((Text("x", "term"), And((Or((Text("a", "term"), Text("b", "term"))),)))), "x (a OR b)"),
    (And((Text("a", "term"), And((Text("b", "term"), Text("c", "term"))))), "a (b c)"),
    (Or((Or((Text("a", "term"), Text("b", "term"))), Text("c", "term"))), "(a OR b) OR c"),
    (Not(And((Text("a", "term"),))), "-a"),
    (And((MatchAll(), Text("a", "term"))), "* a"),
]


@pytest.mark.parametrize(("node", "formatted"), HAND_BUILT)
def test_format_hand_built_nodes(node: Node, formatted: str) -> None:
    assert format_query(node) == formatted
    parse(formatted)  # always parseable


def test_format_rejects_unwritable_field_names() -> None:
    with pytest.raises(ValueError, match="field name"):
        format_query(FieldMatch("1x", "a", "term"))
    with pytest.raises(ValueError, match="field name"):
        format_query(FieldCompare("a b", "=", 1.0))


ROUND_TRIP_QUERIES = [
    "timeout",
    'level>=WARN service:api-gateway "connection refused" -timeout (status>=500 OR status=429)',
    "a OR b c OR (d -e) NOT f",
    "/api/v1/users -/debug|trace/ http://example.com/x",
    'msg:"a \\"b\\" \\\\ c" f:pre* g:* h:>=1.5 i!=x j<="k l"',
    "((a OR b) (c OR -d)) OR NOT (e f)",
    "/api x=y /b/",
    '/api "\\\\/x" b/c',
    '/api f="x" b/',
    "10.0.0.1:8080 12:30:05 ::1 a-b api-gateway blk_123 *",
]


@pytest.mark.parametrize("query", ROUND_TRIP_QUERIES)
def test_round_trip_examples(query: str) -> None:
    node = strip(parse(query))
    assert roundtrip(node) == node


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join))
def test_round_trip_of_parsed_text(query: str) -> None:
    try:
        node = strip(parse(query))
    except QueryError:
        return
    assert roundtrip(node) == node


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_round_trip_of_arbitrary_text(query: str) -> None:
    try:
        node = strip(parse(query))
    except QueryError:
        return
    assert roundtrip(node) == node


# Trees in the canonical shape the parser produces: flat And/Or of two or more items, values that
# have a spelling of their kind.

_word = st.from_regex(r"[a-z0-9_][a-z0-9_.@-]{0,8}", fullmatch=True).filter(lambda w: not w.endswith("*"))
_path = st.from_regex(r"/[a-z0-9]{1,5}/[a-z0-9/]{1,5}", fullmatch=True)
_field = st.sampled_from(["level", "service", "http.status", "@timestamp", "_x", "k8s.pod-name", "AND"])
# ``field://x`` reads as one word (a URL), so a value starting with ``//`` has no bare spelling.
_value = st.from_regex(r"[a-zA-Z0-9_.:/@-]{1,10}", fullmatch=True).filter(
    lambda v: not v.endswith("*") and v[0] not in "<>" and not v.startswith("//")
)
_number = st.floats(allow_nan=False, width=64) | st.integers(-10**6, 10**6).map(float)
# Patterns as the parser returns them: ``\/`` already unescaped, double quotes escaped.
_pattern = st.sampled_from(["a+", "x y", "a/b", r"\d+", "/", r'say \"hi\"', "(a|b)c", "[/]", r"\\", "a\tb"])


def _atoms() -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(Text, _word | _path, st.just("term")),
        st.builds(Text, _word | _path, st.just("prefix")),
        st.builds(Text, st.text(max_size=12), st.just("phrase")),
        st.builds(Regex, _pattern),
        st.builds(FieldMatch, _field, _value, st.sampled_from(["term", "prefix"])),
        st.builds(FieldMatch, _field, st.text(max_size=12), st.just("phrase")),
        st.builds(FieldCompare, _field, st.sampled_from(["<", "<=", ">", ">=", "=", "!="]),
                  _number | _value | st.text(max_size=8)),
    )


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    def flat_and(items: list[Node]) -> Node:
        return And(tuple(i for item in items for i in (item.items if isinstance(item, And) else (item,))))

    def flat_or(items: list[Node]) -> Node:
        return Or(tuple(i for item in items for i in (item.items if isinstance(item, Or) else (item,))))

    return st.one_of(
        st.builds(Not, children),
        st.lists(children, min_size=2, max_size=4).map(flat_and),
        st.lists(children, min_size=2, max_size=4).map(flat_or),
    )


_trees = st.recursive(_atoms(), _extend, max_leaves=12)


@settings(max_examples=1500, deadline=None)
@given(_trees)
def test_round_trip_of_generated_trees(node: Node) -> None:
    assert roundtrip(node) == node
