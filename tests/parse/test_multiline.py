"""is_continuation and MultilineJoiner."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loglens.parse import MultilineJoiner, is_continuation
from loglens.parse.multiline import MAX_RECORD_CHARS, MAX_RECORD_LINES


@pytest.mark.parametrize(
    "line",
    [
        "\tat com.example.Foo.bar(Foo.java:10)",
        "    at com.example.Foo.bar(Foo.java:10)",
        "at com.example.Foo.bar(Foo.java:10)",
        "Caused by: java.io.IOException: disk full",
        "\t... 5 more",
        "... 5 more",
        "...5 more",
        "... 12 common frames omitted",
        "Suppressed: java.lang.RuntimeException: also",
        '  File "app.py", line 3, in <module>',
        "java.lang.IllegalStateException: boom",
        "java.lang.NullPointerException",
        "org.springframework.beans.factory.BeanCreationException: Error creating bean",
        " ",
    ],
)
def test_continuations(line: str) -> None:
    assert is_continuation(line)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "2024-01-15 10:00:00 INFO started",
        "Traceback (most recent call last):",
        "ValueError: boom",
        "attempting reconnect",
        "Caused nothing",
        "... and then",
        "Started in 3s: Error count 0",
        "java is great",
    ],
)
def test_not_continuations(line: str) -> None:
    assert not is_continuation(line)


def feed_all(lines: list[str]) -> list[str]:
    j = MultilineJoiner()
    out: list[str] = []
    for line in lines:
        out.extend(j.feed(line))
    out.extend(j.flush())
    assert not j.pending()
    return out


JAVA = [
    "2024-01-15 10:00:00,001 ERROR [main] c.e.App: request failed",
    "java.lang.IllegalStateException: outer",
    "\tat com.example.App.handle(App.java:42)",
    "\tat com.example.App.main(App.java:7)",
    "Caused by: java.io.IOException: inner",
    "\tat com.example.Io.read(Io.java:9)",
    "\t... 5 more",
]


def test_java_stack_trace() -> None:
    lines = [*JAVA, "2024-01-15 10:00:01,002 INFO [main] c.e.App: recovered"]
    assert feed_all(lines) == ["\n".join(JAVA), lines[-1]]


def test_feed_returns_completed_records() -> None:
    j = MultilineJoiner()
    assert j.feed("first") == []
    assert j.pending()
    assert j.feed("\tat x") == []
    assert j.feed("second") == ["first\n\tat x"]
    assert j.feed("third\n") == ["second"]  # a trailing newline is removed
    assert j.flush() == ["third"]
    assert j.flush() == []
    assert not j.pending()


def test_leading_continuation_is_its_own_record() -> None:
    assert feed_all(["\tat orphan.Frame(X.java:1)", "\tat next", "line"]) == [
        "\tat orphan.Frame(X.java:1)\n\tat next",
        "line",
    ]


def test_python_traceback() -> None:
    tb = [
        "Traceback (most recent call last):",
        '  File "app.py", line 3, in <module>',
        "    main()",
        "KeyError: 'a'",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "app.py", line 5, in <module>',
        "ValueError: boom",
    ]
    lines = ["2024-01-15 10:00:00 ERROR failed", *tb, "2024-01-15 10:00:01 INFO next"]
    # logger.exception(): the message line and its traceback are one record
    assert feed_all(lines) == ["\n".join(lines[:-1]), lines[-1]]
    assert feed_all(tb) == ["\n".join(tb)]


def test_blank_lines_between_records_are_dropped() -> None:
    assert feed_all(["a", "", "", "b", ""]) == ["a", "b"]
    assert feed_all(["a", "", "\tat x"]) == ["a\n\n\tat x"]


def test_line_cap() -> None:
    lines = ["head"] + ["\tat frame"] * (MAX_RECORD_LINES + 10)
    out = feed_all(lines)
    assert len(out) == 2
    assert out[0].count("\n") + 1 == MAX_RECORD_LINES
    assert out[1].count("\n") + 1 == 11


def test_size_cap() -> None:
    big = "\t" + "x" * (MAX_RECORD_CHARS // 3)
    out = feed_all(["head", big, big, big, big])
    assert len(out) == 2
    assert all(len(r) <= MAX_RECORD_CHARS for r in out)
    assert "\n".join(out) == "\n".join(["head", big, big, big, big])


def test_type_error() -> None:
    with pytest.raises(TypeError):
        MultilineJoiner().feed(None)  # type: ignore[arg-type]


@given(st.lists(st.sampled_from(["x", "\tat y", "Caused by: z", "", "... 3 more", "Traceback (most recent call last):",
                                  "  File", "E: e", "java.lang.Error: q"]), max_size=30))  # fmt: skip
def test_joiner_keeps_every_nonblank_line(lines: list[str]) -> None:
    out = feed_all(lines)
    assert [x for x in "\n".join(out).split("\n") if x] == [x for x in lines if x]


@given(st.lists(st.sampled_from(["x", "2024-01-15 ERROR boom", "\tat y", "Caused by: z", "", "... 3 more",
                                  "Traceback (most recent call last):", "  File", "E: e", "ValueError: v",
                                  "java.lang.Error: q", "During handling of the above exception, another "
                                  "exception occurred:", "Done\r", "[main] ok", "日本 ok"]), max_size=40),
       st.integers(min_value=1, max_value=7))  # fmt: skip
def test_feed_many_gives_the_records_feed_gives(lines: list[str], chunk: int) -> None:
    one = MultilineJoiner()
    expected = [r for line in lines for r in one.feed(line)] + one.flush()
    many = MultilineJoiner()
    got = [r for i in range(0, len(lines), chunk) for r in many.feed_many(lines[i:i + chunk])] + many.flush()
    assert got == expected
