"""The embedded store against a brute-force reference: every query answered by the index must equal
the plan's predicate applied to every record."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from loglens.model import Level, LogRecord, RecordBatch, Template
from loglens.query.planning import plan_query
from loglens.store import StoreLockedError, TimeRange, open_store
from loglens.store.embedded.store import DAY_MS, MS, SEQ_BITS, EmbeddedStore

BASE = 1_763_596_800_000_000_000  # 2025-11-20T00:00:00Z in ns
SECOND = 1_000_000_000

WORDS = ["timeout", "connection", "refused", "user", "login", "disk", "full", "payment", "retry", "ok"]
SERVICES = ["api-gateway", "billing", "auth", ""]
HOSTS = ["web-1", "web-2", "db-1"]


def make_records(n: int, seed: int = 7, days: int = 3) -> list[LogRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = BASE + rng.randrange(days * 86_400) * SECOND + rng.randrange(1000) * MS
        words = rng.sample(WORDS, 3)
        status = rng.choice([200, 404, 500, 503])
        attrs: dict[str, object] = {"http.status": status, "user": rng.choice(["alice", "bob"])}
        if rng.random() < 0.1:
            words.append(f"10.0.0.{rng.randrange(3)}:80")
        out.append(LogRecord(
            timestamp=ts, observed_at=ts, message=" ".join(words) + f" #{i}",
            header=f"2025-11-20 {rng.choice(['ERROR', 'INFO'])} " if rng.random() < 0.5 else "",
            level=rng.choice(list(Level)), service=rng.choice(SERVICES), host=rng.choice(HOSTS),
            attributes=attrs, template_id=rng.randrange(1, 5), source="test",
            trace_id=f"{i % 3:032x}" if i % 4 == 0 else "",
        ))
    return out


@pytest.fixture
def loaded(tmp_path: Path) -> tuple[EmbeddedStore, list[LogRecord]]:
    store = open_store(str(tmp_path / "data"), writable=True)
    assert isinstance(store, EmbeddedStore)
    records = make_records(3000)
    for i in range(0, len(records), 700):
        store.write(records[i:i + 700], [Template(1, "a <*>", 1, BASE, BASE)])
    return store, records


QUERIES = [
    "", "timeout", "TIMEOUT", "timeout refused", "timeout OR disk", "timeout -refused", "NOT timeout",
    '"connection refused"', "conn*", "level:ERROR", "level>=WARN", "level:ERROR AND service:billing",
    "service:api-gateway", "service:api*", "host:web-1 -level:INFO", "http.status:500", "http.status>=500",
    "user:alice", "10.0.0.1", "10.0.0.1:80", "/ref.sed/", "template:2", "message:retry", "(disk OR full) AND user:bob",
    "service:nope", "api-gateway", "-user:alice level:DEBUG", "level:UNKNOWN", "service:*", "http.status:*",
    "-service:* OR timeout", "user:ali*",
]


def brute(records: list[LogRecord], query: str, store: EmbeddedStore, time: TimeRange) -> list[LogRecord]:
    plan = plan_query(query, store.known_attributes())
    lo = time.start // MS if time.start is not None else None
    hi = time.end // MS if time.end is not None else None
    keep = [r for r in records if plan.predicate(r)
            and (lo is None or r.timestamp // MS >= lo) and (hi is None or r.timestamp // MS <= hi)]
    return sorted(keep, key=lambda r: r.id, reverse=True)


@pytest.mark.parametrize("query", QUERIES)
def test_search_and_count_equal_brute_force(loaded: tuple[EmbeddedStore, list[LogRecord]], query: str) -> None:
    store, records = loaded
    for time in (TimeRange(), TimeRange(BASE + 3600 * SECOND, BASE + 30 * 3600 * SECOND + 123_456_789)):
        plan = plan_query(query, store.known_attributes())
        expected = brute(records, query, store, time)
        assert store.count(plan, time) == len(expected)
        page = store.search(plan, time, 50)
        assert [r.id for r in page.records] == [r.id for r in expected[:50]]
        buckets = store.histogram(plan, time, 3600 * SECOND)
        assert sum(b.total for b in buckets) == len(expected)
        by_level: dict[str, int] = {}
        for r in expected:
            by_level[r.level.name] = by_level.get(r.level.name, 0) + 1
        merged: dict[str, int] = {}
        for b in buckets:
            for k, v in b.counts.items():
                merged[k] = merged.get(k, 0) + v
        assert merged == by_level
        for field in TOP_FIELDS:
            top = store.top(plan, time, field, 10)
            assert [(t.value, t.count) for t in top] == brute_top(expected, field)[:10], field


#: Fields of a top-N: key columns, the message, attributes (strings and numbers), and one no record has.
TOP_FIELDS = ["service", "host", "source", "level", "template", "trace_id", "message", "user", "http.status", "nope"]


def brute_top(records: list[LogRecord], field: str) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for r in records:
        if field == "level":
            value: object = r.level.name
        elif field == "template":
            value = str(r.template_id)
        elif field in ("service", "host", "source", "message", "trace_id"):
            value = getattr(r, field) or None
        else:
            raw = r.attributes.get(field)
            value = raw if raw is None or isinstance(raw, str) else str(raw)
        if value is not None:
            counts[str(value)] = counts.get(str(value), 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def test_cursor_paging_is_stable_and_complete(loaded: tuple[EmbeddedStore, list[LogRecord]]) -> None:
    store, records = loaded
    plan = plan_query("timeout", store.known_attributes())
    seen: list[int] = []
    cursor = None
    while True:
        page = store.search(plan, TimeRange(), 97, cursor)
        seen.extend(r.id for r in page.records)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [r.id for r in brute(records, "timeout", store, TimeRange())]
    assert len(seen) == len(set(seen))


def test_ids_sort_by_time_and_are_unique(loaded: tuple[EmbeddedStore, list[LogRecord]]) -> None:
    _, records = loaded
    ids = [r.id for r in records]
    assert len(set(ids)) == len(ids)
    for r in records:
        assert r.id >> SEQ_BITS == r.timestamp // MS


def test_same_millisecond_gets_distinct_ids_across_batches_and_reopen(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    store = open_store(data, writable=True)
    recs = [LogRecord(timestamp=BASE, message=f"m{i}") for i in range(5)]
    store.write(recs[:2])
    store.close()
    store = open_store(data, writable=True)
    store.write(recs[2:])
    assert len({r.id for r in recs}) == 5
    assert store.count(plan_query(""), TimeRange()) == 5
    store.close()


def test_get_context_and_stats(loaded: tuple[EmbeddedStore, list[LogRecord]]) -> None:
    store, records = loaded
    target = sorted(records, key=lambda r: r.id)[1500]
    got = store.get(target.id)
    assert got is not None and got.message == target.message and got.attributes == target.attributes
    before, after = store.context(target.id, 5, 5)
    same = sorted((r for r in records if r.service == target.service and r.host == target.host),
                  key=lambda r: r.id)
    i = [r.id for r in same].index(target.id)
    assert [r.id for r in before] == [r.id for r in same[max(0, i - 5):i]]
    assert [r.id for r in after] == [r.id for r in same[i + 1:i + 6]]
    stats = store.stats()
    assert stats.records == len(records)
    assert stats.shards == 3
    assert sum(stats.services.values()) == len(records)
    assert stats.bytes_on_disk > 0


def test_retention_unlinks_whole_days(loaded: tuple[EmbeddedStore, list[LogRecord]]) -> None:
    store, records = loaded
    cutoff = BASE + 2 * DAY_MS * MS  # everything before day 3
    removed = store.apply_retention(cutoff)
    assert removed == sum(1 for r in records if r.timestamp < cutoff)
    assert store.count(plan_query(""), TimeRange()) == len(records) - removed
    assert store.stats().shards == 1


def test_second_writer_is_refused_but_readers_see_data(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    writer = open_store(data, writable=True)
    writer.write([LogRecord(timestamp=BASE, message="hello world", service="svc")])
    with pytest.raises(StoreLockedError, match="in use"):
        open_store(data, writable=True)
    reader = open_store(data)
    assert reader.count(plan_query("hello service:svc"), TimeRange()) == 1
    writer.close()
    reader.close()


def test_reader_on_missing_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no LogLens data"):
        open_store(str(tmp_path / "nothing"))


def test_template_counts_and_trends_equal_brute_force(loaded: tuple[EmbeddedStore, list[LogRecord]]) -> None:
    store, records = loaded
    time = TimeRange(BASE + 1800 * SECOND, BASE + 50 * 3600 * SECOND + 5)
    for query in ("", "level>=WARN service:billing", "timeout"):
        plan = plan_query(query, store.known_attributes())
        expected: dict[int, dict[str, int]] = {}
        for r in brute(records, query, store, time):
            levels = expected.setdefault(r.template_id, {})
            levels[r.level.name] = levels.get(r.level.name, 0) + 1
        assert store.template_counts(plan, time) == expected
    trends = store.template_trends([1, 2], time, 3600 * SECOND)
    for template in (1, 2):
        expected_trend: dict[int, int] = {}
        for r in brute(records, f"template:{template}", store, time):
            start = (r.id >> SEQ_BITS) // 3_600_000 * 3_600_000 * MS
            expected_trend[start] = expected_trend.get(start, 0) + 1
        assert trends[template] == expected_trend


def test_merged_templates_show_under_the_general_one(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "d"), writable=True)
    recs = [LogRecord(timestamp=BASE + i * SECOND, message=f"m{i}", template_id=5 if i % 2 else 6) for i in range(6)]
    store.write(recs, [Template(5, "user <*> in", 3, BASE, BASE), Template(6, "user bob in", 3, BASE, BASE)])
    store.write([], [], [(6, 5)])
    plan = plan_query("template:5")
    assert store.count(plan, TimeRange()) == 6
    assert {r.template_id for r in store.search(plan, TimeRange(), 10).records} == {5}
    assert [t.id for t in store.templates()] == [5]
    assert store.template_counts(plan_query(""), TimeRange()) == {5: {"UNKNOWN": 6}}
    assert sum(store.template_trends([5], TimeRange(), 3600 * SECOND)[5].values()) == 6
    store.close()
    reader = open_store(str(tmp_path / "d"))
    assert reader.count(plan_query("template:5"), TimeRange()) == 6
    reader.close()


def test_a_batch_of_columns_is_stored_like_its_records(tmp_path: Path) -> None:
    """Ingest hands the store columns (a RecordBatch), not records: a batch over three days stores
    the same records, with ids in the batch's order, as the list of its records does; records built
    from the batch after the write carry those ids."""
    records = make_records(300, seed=11)
    by_list = open_store(str(tmp_path / "list"), writable=True)
    by_batch = open_store(str(tmp_path / "batch"), writable=True)
    try:
        by_list.write(records)
        batch = RecordBatch(*RecordBatch.of(records).columns())  # columns only, as from the worker
        by_batch.write(batch)
        assert batch.ids == [r.id for r in records]
        assert [r.id for r in batch] == batch.ids and batch[0].level is records[0].level
        everything = plan_query("")
        page = by_batch.search(everything, TimeRange(), limit=1000)
        assert page.records == by_list.search(everything, TimeRange(), limit=1000).records
        assert len(page.records) == len(records)
        assert by_batch.search(plan_query("timeout"), TimeRange(), limit=1000).records == \
            by_list.search(plan_query("timeout"), TimeRange(), limit=1000).records
    finally:
        by_list.close()
        by_batch.close()
