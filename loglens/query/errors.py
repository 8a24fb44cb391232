"""The one exception a malformed query raises, from the parser and from the planner alike."""

from __future__ import annotations

__all__ = ["QueryError"]

#: Characters of context shown either side of the caret when the query is long.
_CONTEXT = 60


class QueryError(ValueError):
    """A query that cannot be parsed or planned.

    ``message`` says what was expected, ``position`` is the 0-based offset in ``query`` where the
    problem is (``len(query)`` for "at the end"), ``query`` is the query text when known.
    ``str(error)`` is ``"<message> at position <n>"`` followed, when the query is known, by the
    query and a caret line pointing at the position.
    """

    message: str
    position: int
    query: str

    def __init__(self, message: str, position: int, query: str = "") -> None:
        super().__init__(message, position, query)
        self.message = message
        self.position = position
        self.query = query

    @property
    def headline(self) -> str:
        """The one-line form: ``expected a value after 'level:' at position 6``."""
        return f"{self.message} at position {self.position}"

    def caret_lines(self) -> str:
        """The query (or a window of it) and a ``^`` under the position; ``""`` without a query."""
        query = self.query
        if not query or not 0 <= self.position <= len(query):
            return ""
        start = max(0, self.position - _CONTEXT)
        end = min(len(query), self.position + _CONTEXT)
        prefix = "…" if start > 0 else ""
        suffix = "…" if end < len(query) else ""
        # Control characters (tabs, newlines) would break the alignment of the caret.
        shown = "".join(c if c.isprintable() else " " for c in query[start:end])
        caret = " " * (len(prefix) + self.position - start) + "^"
        return f"  {prefix}{shown}{suffix}\n  {caret}"

    def with_query(self, query: str) -> QueryError:
        """The same error, attached to ``query`` (for callers that only learn the text later)."""
        return QueryError(self.message, self.position, query)

    def __str__(self) -> str:
        caret = self.caret_lines()
        return f"{self.headline}\n{caret}" if caret else self.headline

    def __repr__(self) -> str:
        return f"QueryError({self.message!r}, {self.position!r}, {self.query!r})"
