"""Join multi-line records (stack traces) from a stream of lines.

A line continues the record before it when it starts with whitespace (``\\tat ...``, ``  File "..."``),
``at ``, ``Caused by:``, ``Suppressed:``, ``... 5 more`` / ``...5 more`` / ``... 12 common frames
omitted``, or is a qualified Java exception header (``java.lang.IllegalStateException: boom``, the
line ``logger.error("...", e)`` prints right after the message).

Python tracebacks: the joiner adds a ``Traceback (most recent call last):`` line to the record before
it, because ``logger.exception(...)`` prints the message line and then the traceback, and a user
wants them as one event (a traceback with no line before it starts its own record). Its indented
frames are continuations, and the joiner also keeps the final ``ValueError: boom`` line and chained
tracebacks (``During handling of the above exception...`` / ``The above exception was the direct
cause...``, with their blank lines) in the same record. ``is_continuation`` alone, being stateless,
does not count a ``Traceback`` line.

Empty lines are held while a record is pending and kept only if the record continues after them;
otherwise they are dropped (an empty line carries nothing to search). A record is capped at 1,000
lines or 1 MiB of text (counted in characters); the line that would exceed the cap starts a new
record, so memory stays bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MAX_RECORD_CHARS", "MAX_RECORD_LINES", "MultilineJoiner", "is_continuation"]

MAX_RECORD_LINES = 1000
MAX_RECORD_CHARS = 1 << 20

_MORE = re.compile(r"\.\.\. ?\d+ (?:more|common frames omitted)")
_JAVA_EXCEPTION = re.compile(r"(?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error|Throwable)(?::|\s*$)")
_PY_EXCEPTION_END = re.compile(r"[A-Za-z_][\w.]*(?::|$)")
_TRACEBACK = "Traceback (most recent call last):"
#: First characters of the lines that may continue a record or open a traceback; other lines
#: starting with a capital, a digit or punctuation start a record.
_MAY_CONTINUE = frozenset(" \taCS.T")
_CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


def is_continuation(line: str) -> bool:
    """Whether ``line`` continues the previous record (see the module docstring). Stateless."""
    if not line:
        return False
    c = line[0]
    if c == " " or c == "\t":
        return True
    if c == "a":
        return line.startswith("at ")
    if c == "C":
        return line.startswith("Caused by:")
    if c == "S":
        return line.startswith("Suppressed:")
    if c == ".":
        return _MORE.match(line) is not None
    if ("a" <= c <= "z") and ("Exception" in line or "Error" in line or "Throwable" in line):
        return _JAVA_EXCEPTION.match(line) is not None
    return False


# Python traceback states of the pending record
_TB_NONE = 0
_TB_FRAMES = 1  # inside "Traceback ..." frames: the next unindented line is the exception
_TB_ENDED = 2  # after the exception line: a chain message may follow
_TB_CHAIN = 3  # after a chain message: a new "Traceback ..." may follow


class MultilineJoiner:
    """Stateful joiner: ``feed`` lines, get completed records (lines joined with ``"\\n"``)."""

    __slots__ = ("_blanks", "_chars", "_lines", "_tb")

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._chars = 0
        self._blanks = 0  # empty lines held after the pending record
        self._tb = _TB_NONE

    def pending(self) -> bool:
        """Whether a record is waiting for more lines (or a flush)."""
        return bool(self._lines)

    def feed(self, line: str) -> list[str]:
        """Add one line (a trailing newline is removed); return the records it completed."""
        if not isinstance(line, str):
            raise TypeError(f"line must be str, not {type(line).__name__}")
        if line and line[-1] in "\r\n":
            line = line.rstrip("\r\n")
        lines = self._lines
        if not line:
            if lines and self._blanks < MAX_RECORD_LINES:
                self._blanks += 1
            return []
        if not lines:
            self._start(line)
            return []
        if self._continues(line):
            extra = self._blanks
            if len(lines) + extra + 1 <= MAX_RECORD_LINES and self._chars + len(line) + extra + 1 <= MAX_RECORD_CHARS:
                if extra:
                    lines.extend([""] * extra)
                    self._chars += extra
                    self._blanks = 0
                lines.append(line)
                self._chars += len(line) + 1
                return []
        done = "\n".join(lines)
        self._start(line)
        return [done]

    def feed_many(self, lines: Iterable[str]) -> list[str]:
        """:meth:`feed` for many lines at once (the same records), faster: a line that plainly starts
        a record (a digit, capital or punctuation first, not one that may continue or open a
        traceback) takes a short path."""
        out: list[str] = []
        feed = self.feed
        for line in lines:
            c = line[:1]
            if c and c not in _MAY_CONTINUE and not ("a" <= c <= "z") and line[-1] != "\r" and line[-1] != "\n" \
                    and self._tb == _TB_NONE:
                pending = self._lines
                if pending:
                    out.append(pending[0] if len(pending) == 1 else "\n".join(pending))
                self._lines = [line]
                self._chars = len(line)
                self._blanks = 0
            else:
                out.extend(feed(line))
        return out

    def flush(self) -> list[str]:
        """Return the pending record, if any, and reset."""
        if not self._lines:
            return []
        done = "\n".join(self._lines)
        self._lines = []
        self._chars = 0
        self._blanks = 0
        self._tb = _TB_NONE
        return [done]

    def _start(self, line: str) -> None:
        self._lines = [line]
        self._chars = len(line)
        self._blanks = 0
        self._tb = _TB_FRAMES if line.startswith(_TRACEBACK) else _TB_NONE

    def _continues(self, line: str) -> bool:
        tb = self._tb
        if tb == _TB_NONE:
            if line.startswith(_TRACEBACK):
                self._tb = _TB_FRAMES
                return True
            return is_continuation(line)
        c = line[0]
        if c == " " or c == "\t":
            return True
        if tb == _TB_FRAMES:
            if _PY_EXCEPTION_END.match(line) is not None:
                self._tb = _TB_ENDED
                return True
        elif tb == _TB_ENDED:
            if line.startswith(_CHAIN):
                self._tb = _TB_CHAIN
                return True
        elif line.startswith(_TRACEBACK):
            self._tb = _TB_FRAMES
            return True
        return is_continuation(line)
