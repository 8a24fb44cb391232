"""QA cache: a previous answer for the same or a near-identical question, while it still holds.

A cached answer is returned when the question's normalised tokens are the same or nearly so (token
Jaccard similarity at least 0.9), the filters are the same, it has not expired (questions with
relative times such as "in the last hour" expire fast, absolute ones slowly), and no new matching
data has arrived: the count of the answer's query over its window (extended to now for windows
that end at "now") is still what it was when the answer was made. The cache is bounded (LRU).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RELATIVE_TTL = 60.0
ABSOLUTE_TTL = 3600.0
SIMILARITY = 0.9
MAX_ENTRIES = 256

_FILLER = frozenset({"the", "a", "an", "please", "me", "us", "of", "to", "in", "on", "for", "is", "are", "was",
                     "were", "do", "does", "did", "can", "you", "i", "we", "our", "my", "and"})


def normalise(question: str) -> str:
    text = question.lower().replace("\u2019", "'")
    text = re.sub(r"[^\w\s'\"*:.=<>-]", " ", text)
    return " ".join(text.split())


def tokens(question: str) -> frozenset[str]:
    words = [w.strip(".'\"") for w in normalise(question).split()]
    return frozenset(w for w in words if w and w not in _FILLER)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class Entry:
    tokens: frozenset[str]
    filters: str
    answer: dict[str, Any]
    created: float  # time.monotonic()
    ttl: float
    query: str
    start: str | None  # engine time parameters (epoch ns as text), as the answer used them
    end: str | None
    ends_now: bool  # the window ended at "now": new data after it counts as new
    count: int


class QACache:
    def __init__(self, max_entries: int = MAX_ENTRIES, relative_ttl: float = RELATIVE_TTL,
                 absolute_ttl: float = ABSOLUTE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.relative_ttl = relative_ttl
        self.absolute_ttl = absolute_ttl
        self.clock = clock
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._next = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, question: str, filters: str, count: Callable[[str, str | None, str | None], int]) -> \
            dict[str, Any] | None:
        """A still-valid cached answer, or None. ``count(query, from, to)`` recounts the query."""
        toks = tokens(question)
        now = self.clock()
        with self._lock:
            candidates = sorted(
                ((jaccard(toks, e.tokens), key, e) for key, e in self._entries.items()
                 if e.filters == filters),
                key=lambda c: -c[0])
        for similarity, key, entry in candidates:
            if similarity < SIMILARITY:
                break
            if now - entry.created > entry.ttl:
                self._drop(key)
                continue
            try:
                current = count(entry.query, entry.start, None if entry.ends_now else entry.end)
            except Exception:
                self._drop(key)
                continue
            if current != entry.count:  # new matching data arrived
                self._drop(key)
                continue
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                self.hits += 1
            return {**entry.answer, "cached": True}
        with self._lock:
            self.misses += 1
        return None

    def put(self, question: str, filters: str, answer: dict[str, Any], *, query: str, start: str | None,
            end: str | None, relative: bool, ends_now: bool, count: int) -> None:
        entry = Entry(tokens(question), filters, {k: v for k, v in answer.items() if k != "cached"}, self.clock(),
                      self.relative_ttl if relative else self.absolute_ttl, query, start, end, ends_now, count)
        with self._lock:
            self._entries[self._next] = entry
            self._next += 1
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def _drop(self, key: int) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
