"""Kafka receiver: end to end against a real ``loglens serve`` consuming from librdkafka's mock
cluster (the real Kafka protocol on loopback) fed by confluent-kafka's producer; kill -9 in the
middle of a consumption; deduplication, backpressure and rebalancing in process; the value
conversion fuzzed; a clear error when confluent-kafka is missing."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglens.config import Settings
from loglens.ingest._net import in_range
from loglens.ingest.kafka import (
    INSTALL_HINT,
    KafkaReceiver,
    KafkaUnavailableError,
    OffsetJournal,
    consumer_options,
    record_of,
    stored_among,
    topics_of,
)
from loglens.model import Level, LogRecord
from loglens.pipeline import Pipeline
from loglens.store import open_store
from loglens.store.base import Store
from tests.conftest import count, search_all, start_server, stop_server, wait_count

Produced = list[tuple[int, int]]  # (partition, offset) of every message produced


def _client() -> Any:
    try:
        import confluent_kafka
    except ImportError:
        if os.environ.get("LOGLENS_REQUIRE_SERVICES") == "1":
            raise
        pytest.skip("confluent-kafka is not installed (pip install 'loglens[kafka]')")
    return confluent_kafka


class MockCluster:
    """librdkafka's mock cluster lives inside this producer: keep it alive for the whole test."""

    def __init__(self) -> None:
        ck = _client()
        self.ck = ck
        self.producer = ck.Producer({"test.mock.num.brokers": 1, "linger.ms": 5,
                                     "logger": _quiet_logger()})
        brokers = self.producer.list_topics(timeout=10).brokers.values()
        self.bootstrap = ",".join(f"{b.host}:{b.port}" for b in brokers)

    def produce(self, topic: str, values: list[bytes | None], keys: list[bytes | None] | None = None) -> Produced:
        """Produce and wait for every delivery; returns where each message went, in order."""
        out: list[tuple[int, int] | None] = [None] * len(values)

        def report(i: int) -> Any:
            def cb(err: Any, msg: Any) -> None:
                assert err is None, err
                out[i] = (msg.partition(), msg.offset())
            return cb

        for i, value in enumerate(values):
            while True:
                try:
                    self.producer.produce(topic, value=value, key=keys[i] if keys else None, on_delivery=report(i))
                    break
                except BufferError:  # the local queue is full: let deliveries drain
                    self.producer.poll(0.1)
        assert self.producer.flush(30) == 0
        assert all(o is not None for o in out)
        return [o for o in out if o is not None]

    def consumer_conf(self, group: str) -> dict[str, Any]:
        # the mock cluster completes a rebalance only when a session times out: keep that short
        return {**consumer_options(Settings(kafka_brokers=self.bootstrap, kafka_group=group)),
                "logger": _quiet_logger(), "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def _quiet_logger() -> Any:
    import logging

    logger = logging.getLogger("tests.kafka.librdkafka")
    logger.setLevel(logging.ERROR)
    return logger


@pytest.fixture(scope="module")
def cluster() -> Iterator[MockCluster]:
    c = MockCluster()
    yield c
    c.producer.flush(5)


# ---------------------------------------------------------------------------------------- helpers






def ecs(i: int, level: str, service: str = "orders") -> bytes:
    """What Spring Boot's ECS structured logging writes (logging.structured.format.console=ecs)."""
    return orjson.dumps({
        "@timestamp": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
        "log.level": level, "process.pid": 4242, "process.thread.name": "http-nio-8080-exec-1",
        "service.name": service, "service.version": "1.2.0", "service.environment": "prod",
        "log.logger": "com.example.orders.OrderController", "message": f"order {i} accepted",
        "ecs.version": "8.11",
    })


def logstash(i: int) -> bytes:
    """What logstash-logback-encoder's LogstashEncoder writes, with a stack trace."""
    return orjson.dumps({
        "@timestamp": "2024-05-01T11:00:00.123+02:00", "@version": "1", "message": f"payment {i} failed",
        "logger_name": "com.example.pay.PaymentService", "thread_name": "main", "level": "ERROR",
        "level_value": 40000, "app": "payments",
        "stack_trace": "java.lang.IllegalStateException: card declined\n\tat com.example.pay.P.charge(P.java:42)\n",
    })


def _assert_exactly_once(records: list[dict[str, Any]], produced: Produced) -> None:
    seen = [(r["attributes"]["kafka.partition"], r["attributes"]["kafka.offset"]) for r in records]
    assert len(seen) == len(set(seen)), "a message was stored twice"
    assert set(seen) == set(produced)


# ---------------------------------------------------------------------------------------- end to end
def test_spring_boot_json_and_text_end_to_end(cluster: MockCluster, tmp_path: Path) -> None:
    topic = "app-logs"
    levels = ["INFO", "WARN", "ERROR", "DEBUG"]
    values: list[bytes | None] = [ecs(i, levels[i % 4]) for i in range(400)]
    values += [logstash(i) for i in range(50)]
    values += [f"2024-01-15 10:00:{i % 60:02d},123 ERROR [main] c.e.Billing - invoice {i} rejected".encode()
               for i in range(100)]
    values += [b"plain words without a header, number 7", b"caf\xe9 latin-1 bytes \xff invalid",
               b"2024-01-15 10:00:00,001 WARN retry\n\tat com.example.A.b(A.java:1)\n\tat com.example.C.d(C.java:2)",
               b"{not json at all", b"", None]
    keys: list[bytes | None] = [f"order-{i}".encode() if i < 400 else None for i in range(len(values))]
    produced = cluster.produce(topic, values, keys)
    stored_n = len(values) - 2  # the empty value and the tombstone are skipped

    srv = start_server(tmp_path / "data", "--kafka-brokers", cluster.bootstrap, "--kafka-topic", topic)
    try:
        assert wait_count(srv, "source:kafka", stored_n) == stored_n
        time.sleep(1.0)  # nothing arrives twice
        assert count(srv, "source:kafka") == stored_n
        records = search_all(srv, "source:kafka")
        _assert_exactly_once(records, [p for p, v in zip(produced, values, strict=True) if v])

        # Spring Boot ECS JSON: level, service from service.name, time from @timestamp
        assert count(srv, "service:orders") == 400
        for level in levels:
            assert count(srv, f"service:orders level:{level}") == 100
        assert count(srv, 'kafka.topic="app-logs" service:orders') == 400
        (rec,) = [r for r in records if r["message"] == "order 6 accepted"]
        assert rec["level"] == "ERROR" and rec["service"] == "orders"
        assert rec["timestamp"].startswith("2024-05-01T10:00:06.006")
        attrs = rec["attributes"]
        assert attrs["kafka.topic"] == topic and attrs["kafka.key"] == "order-6"
        assert (attrs["kafka.partition"], attrs["kafka.offset"]) == produced[6]
        assert attrs["process.thread.name"] == "http-nio-8080-exec-1" and attrs["service.version"] == "1.2.0"
        assert count(srv, "kafka.key:order-6") == 1

        # logstash-logback-encoder: app → service, stack trace searchable
        assert count(srv, "service:payments level:ERROR") == 50
        assert count(srv, "service:payments IllegalStateException") == 50
        (pay,) = [r for r in records if r["message"].startswith("payment 3 failed")]
        assert pay["attributes"]["logger_name"] == "com.example.pay.PaymentService"
        assert pay["timestamp"].startswith("2024-05-01T09:00:00.123")
        assert "kafka.key" not in pay["attributes"]

        # plain text: parsed like a file line (header time and level), a stack trace is one record
        assert count(srv, 'level:ERROR "rejected"') == 100
        (txt,) = [r for r in records if r["message"].endswith("invoice 5 rejected")]
        assert txt["timestamp"].startswith("2024-01-15T10:00:05.123")
        assert txt["line"] == "2024-01-15 10:00:05,123 ERROR [main] c.e.Billing - invoice 5 rejected"
        (trace,) = [r for r in records if "A.java:1" in r["line"]]
        assert trace["level"] == "WARN" and "C.java:2" in trace["line"]
        (bad,) = [r for r in records if "latin-1" in r["message"]]
        assert "\ufffd" in bad["message"]
        assert count(srv, '"{not json at all"') == 1
    finally:
        stop_server(srv)


def test_kill_9_mid_consumption_stores_every_message_exactly_once(cluster: MockCluster, tmp_path: Path) -> None:
    topic = "restart-logs"
    n = 20_000
    values: list[bytes | None] = [
        ecs(i, "INFO", "restart") if i % 2 else f"2024-01-15 10:00:00,000 INFO restart line {i}".encode()
        for i in range(n)
    ]
    produced = cluster.produce(topic, values)
    args = ("--kafka-brokers", cluster.bootstrap, "--kafka-topic", topic, "--kafka-group", "restart")
    # the killed member stays in the group until its session (or, during a rebalance, the
    # rebalance timeout: max.poll.interval.ms) times out; keep those short
    env = {"LOGLENS_KAFKA_OPTIONS": "session.timeout.ms=6000;heartbeat.interval.ms=500;max.poll.interval.ms=10000"}
    data = tmp_path / "data"
    srv = start_server(data, *args, env=env)
    try:
        before = wait_count(srv, "source:kafka", 1, timeout=60)
        assert before >= 1
    finally:
        srv.kill()  # SIGKILL in the middle of the consumption
    assert before < n, "the consumption was over before the kill"
    srv = start_server(data, *args, env=env)
    try:
        got = wait_count(srv, "source:kafka", n, timeout=120)
        assert got == n, f"{got} of {n} stored; server log:\n{srv.log.read_text()[-3000:]}"
        time.sleep(1.5)
        assert count(srv, "source:kafka") == n
        _assert_exactly_once(search_all(srv, "source:kafka"), produced)
    finally:
        stop_server(srv)


# ---------------------------------------------------------------------------------------- in process
class SlowStore:
    """A store whose writes take a while: the pipeline's queue fills up."""

    def __init__(self, store: Store, delay: float) -> None:
        self._store = store
        self.delay = delay

    def write(self, *args: Any, **kwargs: Any) -> None:
        time.sleep(self.delay)
        self._store.write(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _wait(pred: Any, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


def _stored(store: Store, topic: str) -> list[tuple[int, int]]:
    from loglens.query.engine import QueryEngine

    engine = QueryEngine(store)
    out: list[tuple[int, int]] = []
    cursor = None
    while True:
        page = engine.search(f'kafka.topic="{topic}"', limit=10_000, cursor=cursor)
        out.extend((r.attributes["kafka.partition"], r.attributes["kafka.offset"]) for r in page.records)
        if page.next_cursor is None or not page.records:
            return out
        cursor = str(page.next_cursor)


def _kafka_record(topic: str, partition: int, offset: int) -> LogRecord:
    rec = record_of(f"stored before the crash {offset}".encode(), topic=topic, partition=partition, offset=offset)
    assert rec is not None
    return rec


@pytest.mark.parametrize("committed", [False, True], ids=["no-commit-yet", "committed-offsets"])
def test_redelivered_offsets_already_stored_are_skipped(cluster: MockCluster, tmp_path: Path,
                                                        committed: bool) -> None:
    """The crash window: records stored, offsets not committed. A receiver started afterwards
    skips exactly the stored ones."""
    ck = cluster.ck
    topic, group = f"dedup-{int(committed)}", f"dedup-{int(committed)}"
    produced = cluster.produce(topic, [f"message {i}".encode() for i in range(2000)])
    by_part: dict[int, list[int]] = {}
    for p, o in produced:
        by_part.setdefault(p, []).append(o)
    store = open_store(str(tmp_path / "data"), writable=True)
    pipeline = Pipeline(store).start()
    journal = OffsetJournal(tmp_path / "journal.jsonl")
    try:
        commit_at: dict[int, int] = {}
        already: list[LogRecord] = []
        for p, offs in by_part.items():
            offs.sort()
            lo = offs[len(offs) // 4] if committed else offs[0]
            hi = offs[len(offs) // 2]
            commit_at[p] = lo
            # what a receiver does before submitting: the journal says these may be stored...
            journal.intend({(topic, p): (lo, hi - 1)})
            # ...and a second batch that never reached the store (the crash came first)
            journal.intend({(topic, p): (hi, min(hi + 10, offs[-1]))})
            already += [_kafka_record(topic, p, o) for o in offs if lo <= o < hi]
        pipeline.write(list(already), source="kafka")
        journal = OffsetJournal(tmp_path / "journal.jsonl")  # as read on restart
        if committed:  # the group had committed up to lo; lo..hi are stored but not committed
            c = ck.Consumer(cluster.consumer_conf(group))
            c.commit(offsets=[ck.TopicPartition(topic, p, o) for p, o in commit_at.items()], asynchronous=False)
            c.close()
            skipped_before = [(p, o) for p, offs in by_part.items() for o in offs if o < commit_at[p]]
        else:
            skipped_before = []
        p0 = next(iter(by_part))
        assert stored_among(store, topic, p0, by_part[p0]) == {
            o for o in by_part[p0] if commit_at[p0] <= o < by_part[p0][len(by_part[p0]) // 2]}

        receiver = KafkaReceiver(pipeline, cluster.consumer_conf(group), [topic], journal)
        try:
            expect = len(produced) - len(skipped_before)
            assert _wait(lambda: receiver.stats["received"] >= expect and not receiver._inflight)
        finally:
            receiver.close()
        stored = _stored(store, topic)
        assert len(stored) == len(set(stored)), "a message was stored twice"
        assert set(stored) == set(produced) - set(skipped_before)
        assert receiver.stats["duplicates"] == len(already)
        assert receiver.stats["commits"] >= 1
        assert journal.ranges == {}  # everything committed: nothing left to look up on a restart
    finally:
        pipeline.close()
        store.close()


def test_backpressure_pauses_and_loses_nothing(cluster: MockCluster, tmp_path: Path) -> None:
    topic = "pressure"
    produced = cluster.produce(topic, [f"2024-01-15 10:00:00,000 INFO busy {i}".encode() for i in range(6000)])
    store = open_store(str(tmp_path / "data"), writable=True)
    slow = SlowStore(store, 0.05)
    pipeline = Pipeline(slow, max_queued=500, batch_records=500).start()  # type: ignore[arg-type]
    try:
        # another client keeps the queue full
        stop = threading.Event()

        def flood() -> None:
            while not stop.is_set():
                try:
                    pipeline.submit(["other client line"] * 400, source="http")
                except Exception:
                    time.sleep(0.005)

        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        receiver = KafkaReceiver(pipeline, cluster.consumer_conf("pressure"), [topic],
                                 OffsetJournal(tmp_path / "journal.jsonl"))
        try:
            time.sleep(2)
            stop.set()
            flooder.join()
            assert _wait(lambda: receiver.stats["stored"] == len(produced), timeout=120), receiver.stats
        finally:
            receiver.close()
        assert receiver.stats["pauses"] >= 1
        stored = _stored(store, topic)
        assert sorted(stored) == sorted(produced)
    finally:
        pipeline.close()
        store.close()


def test_rebalance_commits_in_flight_before_giving_partitions_up(cluster: MockCluster, tmp_path: Path) -> None:
    """A second group member joins mid-way: the first finishes its in-flight batches before the
    partitions move, and both then share the topic; every message is stored once."""
    topic = "rebalance"
    produced = cluster.produce(topic, [f"rebalance {i}".encode() for i in range(8000)])
    store = open_store(str(tmp_path / "data"), writable=True)
    pipeline = Pipeline(SlowStore(store, 0.2), batch_records=1000).start()  # type: ignore[arg-type]
    try:
        journal = OffsetJournal(tmp_path / "journal.jsonl")  # one store, one journal
        first = KafkaReceiver(pipeline, cluster.consumer_conf("rebalance"), [topic], journal)
        second: KafkaReceiver | None = None
        try:
            assert _wait(lambda: first.stats["stored"] > 0)
            second = KafkaReceiver(pipeline, cluster.consumer_conf("rebalance"), [topic], journal)
            assert first.stats["stored"] < len(produced), "the consumption was over before the rebalance"
            members = (first, second)
            assert _wait(lambda: first.stats["rebalances"] >= 2 and members[1].stats["rebalances"] >= 1), \
                (first.stats, second.stats)
            # keyed: spread over every partition, so both members get some
            produced += cluster.produce(topic, [f"after {i}".encode() for i in range(4000)],
                                        [f"key-{i}".encode() for i in range(4000)])
            assert _wait(lambda: sum(m.stats["stored"] for m in members) >= len(produced), timeout=120), \
                (first.stats, second.stats)
            assert second.stats["stored"] > 0
        finally:
            first.close()
            if second is not None:
                second.close()
        stored = _stored(store, topic)
        assert len(stored) == len(set(stored)), "a message was stored twice"
        assert set(stored) == set(produced)
    finally:
        pipeline.close()
        store.close()


# ---------------------------------------------------------------------------------------- units
def test_missing_client_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from loglens.ingest import kafka

    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # import fails
    settings_ = Settings(kafka_brokers="127.0.0.1:9", data=str(tmp_path))
    with pytest.raises(KafkaUnavailableError, match=r"pip install 'loglens\[kafka\]'"):
        kafka.start(settings_, None)  # type: ignore[arg-type]
    assert INSTALL_HINT == "pip install 'loglens[kafka]'"


def test_journal_replay_commit_and_compaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loglens.ingest import kafka

    path = tmp_path / "j.jsonl"
    j = OffsetJournal(path)
    j.intend({("a", 0): (0, 9), ("a", 1): (5, 6)})
    j.intend({("a", 0): (10, 19)})
    j.committed({("a", 0): 10})
    with open(path, "ab") as f:
        f.write(b'{"t": "a", "p": 0, "lo": 2')  # torn by a crash
    j = OffsetJournal(path)
    assert j.ranges == {("a", 0): [(10, 19)], ("a", 1): [(5, 6)]}
    assert j.candidates(("a", 0), 15) == [15, 16, 17, 18, 19]
    assert j.candidates(("a", 1), 0) == [5, 6] and j.candidates(("b", 0), 0) == []
    monkeypatch.setattr(kafka, "JOURNAL_COMPACT_BYTES", 200)
    for i in range(20, 400, 10):
        j.intend({("a", 0): (i, i + 9)})
        j.committed({("a", 0): i})
    assert path.stat().st_size < 400  # compacted to the live ranges
    assert OffsetJournal(path).ranges == j.ranges == {("a", 0): [(390, 399)], ("a", 1): [(5, 6)]}


def test_topics_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    assert topics_of("app-logs, audit ,,^svc-.*") == ["app-logs", "audit", "^svc-.*"]
    with pytest.raises(ValueError):
        topics_of(" , ")
    monkeypatch.setenv("LOGLENS_KAFKA_OPTIONS", "security.protocol=SASL_SSL; sasl.mechanism=PLAIN\nfetch.min.bytes=1")
    conf = consumer_options(Settings(kafka_brokers="k1:9092,k2:9092", kafka_group="g"))
    assert conf["bootstrap.servers"] == "k1:9092,k2:9092" and conf["group.id"] == "g"
    assert conf["enable.auto.commit"] is False
    assert conf["security.protocol"] == "SASL_SSL" and conf["fetch.min.bytes"] == "1"


def test_value_conversion() -> None:
    stats: dict[str, int] = {}
    rec = record_of(ecs(3, "WARN"), topic="t", partition=2, offset=9, key=b"k\xff", stats=stats)
    assert rec is not None and rec.level is Level.WARN and rec.service == "orders" and rec.source == "kafka"
    assert rec.attributes["kafka.offset"] == 9 and rec.attributes["kafka.key"] == "k\ufffd"
    # the Kafka identity wins over same-named fields of the value
    rec = record_of(b'{"message": "m", "kafka": {"offset": "x", "key": "y"}}', topic="t", partition=0, offset=1)
    assert rec is not None and rec.attributes["kafka.offset"] == 1 and "kafka.key" not in rec.attributes
    # no timestamp in the value: the Kafka message time
    rec = record_of(b"no time here", topic="t", partition=0, offset=1, timestamp_ms=1_700_000_000_000)
    assert rec is not None and rec.timestamp == 1_700_000_000_000_000_000
    # out of range: the message time, the original kept
    rec = record_of(b'{"@timestamp": "9999-12-31T23:59:59Z", "msg": "x"}', topic="t", partition=0, offset=1,
                    timestamp_ms=1_700_000_000_000)
    assert rec is not None and rec.timestamp == 1_700_000_000_000_000_000
    assert rec.attributes["timestamp_original"] == "9999-12-31T23:59:59Z"
    assert record_of(None, topic="t", partition=0, offset=1, stats=stats) is None
    assert record_of(b" \r\n", topic="t", partition=0, offset=1, stats=stats) is None
    assert stats == {"empty": 2}
    record_of(b"caf\xe9", topic="t", partition=0, offset=1, stats=stats)
    assert stats == {"empty": 2, "invalid_utf8": 1}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(value=st.none() | st.binary(max_size=300) | st.text(max_size=200).map(str.encode)
       | st.dictionaries(st.sampled_from(["@timestamp", "ts", "level", "message", "service.name", "kafka", "x"])
                         | st.text(max_size=8), _JSON, max_size=6).map(orjson.dumps),
       key=st.none() | st.binary(max_size=20), offset=st.integers(0, 2**62),
       ts=st.none() | st.integers(-(2**63), 2**63))
def test_fuzz_value_conversion(value: bytes | None, key: bytes | None, offset: int, ts: int | None) -> None:
    stats: dict[str, int] = {}
    try:
        rec = record_of(value, topic="fuzz", partition=3, offset=offset, key=key, timestamp_ms=ts, stats=stats)
    except Exception as exc:  # pragma: no cover - the failure is the point
        raise AssertionError(f"record_of raised {exc!r}") from exc
    if rec is None:
        assert not value or not value.decode("utf-8", "replace").strip()
        return
    assert isinstance(rec, LogRecord) and isinstance(rec.message, str) and rec.source == "kafka"
    assert in_range(rec.timestamp)
    assert rec.attributes["kafka.topic"] == "fuzz" and rec.attributes["kafka.partition"] == 3
    assert rec.attributes["kafka.offset"] == offset
    assert ("kafka.key" in rec.attributes) == (key is not None)
    assert isinstance(rec.level, Level)
