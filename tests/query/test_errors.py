from __future__ import annotations

import pickle

import pytest

from loglens.query.errors import QueryError


def test_attributes_and_type() -> None:
    err = QueryError("expected a value after 'level:'", 6, "level:")
    assert isinstance(err, ValueError)
    assert err.message == "expected a value after 'level:'"
    assert err.position == 6
    assert err.query == "level:"


def test_str_without_query_is_one_line() -> None:
    err = QueryError("unknown field 'foo'", 3)
    assert err.query == ""
    assert str(err) == "unknown field 'foo' at position 3"
    assert err.caret_lines() == ""


def test_str_with_query_has_a_caret_line() -> None:
    err = QueryError("expected a value after 'level:'", 6, "level:")
    assert err.headline == "expected a value after 'level:' at position 6"
    assert str(err) == "expected a value after 'level:' at position 6\n  level:\n        ^"


def test_caret_under_a_middle_position() -> None:
    err = QueryError("unexpected ')'", 4, "a b ) c")
    assert str(err).splitlines() == ["unexpected ')' at position 4", "  a b ) c", "      ^"]


def test_caret_stays_aligned_with_tabs_and_newlines() -> None:
    err = QueryError("x", 3, "a\tb\nc")
    lines = str(err).splitlines()
    assert lines[1] == "  a b c"
    assert lines[2].index("^") == 2 + 3


def test_long_query_shows_a_window() -> None:
    query = "a" * 200 + "X" + "b" * 200
    err = QueryError("bad", 200, query)
    shown, caret = err.caret_lines().splitlines()
    assert shown.startswith("  …") and shown.endswith("…")
    assert shown[caret.index("^")] == "X"
    assert len(shown) < 140


def test_position_out_of_range_has_no_caret() -> None:
    assert str(QueryError("bad", 10, "abc")) == "bad at position 10"


def test_with_query() -> None:
    err = QueryError("unknown field 'x'", 0).with_query("x:1")
    assert (err.message, err.position, err.query) == ("unknown field 'x'", 0, "x:1")


def test_pickle_and_repr() -> None:
    err = QueryError("bad", 2, "a b")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.message, copy.position, copy.query) == ("bad", 2, "a b")
    assert repr(err) == "QueryError('bad', 2, 'a b')"


def test_raises_as_value_error() -> None:
    with pytest.raises(ValueError, match="at position 1"):
        raise QueryError("bad", 1)
