"""Kafka receiver: a consumer-group member that stores what it consumes before committing offsets.

``loglens serve --kafka-brokers HOST:9092 --kafka-topic app-logs --kafka-group loglens`` runs one
confluent-kafka ``Consumer`` (group ``--kafka-group``, subscribed to the comma-separated topics of
``--kafka-topic``; a name starting with ``^`` is a regex) on a thread owned by
:class:`KafkaReceiver`. Extra librdkafka properties (TLS, SASL...) come from the environment
variable ``LOGLENS_KAFKA_OPTIONS``: ``key=value`` pairs separated by ``;`` or newlines.

Values become records the way lines sent to ``/api/v1/logs`` do (:func:`loglens.parse.parse_line`):
a JSON object (Spring Boot's logstash-logback-encoder or ECS JSON) is mapped by field names, any
other value is a text line (UTF-8, invalid bytes replaced) with its header parsed; a multi-line
value (a stack trace) stays one record. Each record gets the attributes ``kafka.topic``,
``kafka.partition``, ``kafka.offset`` and, when the message has one, ``kafka.key``; they override
same-named fields of the value. ``source`` is ``kafka``. A value without a timestamp of its own
gets the Kafka message timestamp (the time it was produced), not the time it was consumed, so a
backlog keeps its times. Empty values and tombstones are skipped and counted.

Delivery: **at least once, deduplicated by topic/partition/offset.** Auto-commit is off. Batches of
consumed messages are submitted to the pipeline (several in flight); when a batch's future resolves
(its records are committed in the store) the offsets after it are committed to Kafka, synchronously.
A crash between the two leaves stored records whose offsets Kafka will deliver again. To store them
once only, the receiver keeps a small journal next to the store (``kafka-offsets.jsonl`` in the
data directory): before a batch is submitted it appends, per partition, the range of offsets the
batch holds, and after the Kafka commit it appends the committed offset. On (re)assignment of a
partition, the ranges not covered by the committed offset are the only offsets that may be stored
already; the receiver asks the store which of them are (a full-text lookup of those offsets, checked
exactly against the ``kafka.*`` attributes of the records found) and skips those messages when they
come again. After a clean stop there is nothing to look up. The store stays the truth: a range in
the journal whose batch never reached the store is simply found absent. When Kafka's committed offset
is not where consumption resumes (the topic was recreated, or the offsets expired and
``auto.offset.reset`` moved the position), nothing is skipped. A partition without a committed
offset (first start of the group) is checked from its first consumed offset, so a crash before the
first commit does not duplicate either. The journal is written before each batch is submitted
(``fsync``-ed with ``--durability full``) and compacted as commits advance.

Backpressure: when the write queue is full (or Kafka refuses a commit) the assigned partitions are
paused, the consumer keeps polling (to stay in the group) without fetching, and resumes when there
is room: memory stays bounded and nothing spins. With ``MAX_IN_FLIGHT`` batches waiting for the
store, it waits for the oldest (pausing too if that lasts more than ``MAX_WAIT_SECONDS``). On a rebalance
the in-flight batches are finished and their offsets committed before the partitions are given up.
If the store fails a batch, the consumer is closed and opened again after a pause, which resumes
from the committed offsets (the deduplication covers what was stored after the failure).

Counters in ``stats`` (read by ``/metrics``): ``received``, ``bytes`` (of the values), ``stored``,
``duplicates``, ``empty``, ``invalid_utf8``, ``malformed`` (values that broke the parser and are
stored whole as text), ``consumer_errors``, ``commits``, ``commit_errors``, ``store_errors``,
``pauses``, ``rebalances``.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from loglens.ingest._net import guard_timestamps, in_range
from loglens.model import Level, LogRecord
from loglens.parse import parse_text, record_from_json
from loglens.pipeline import QueueFullError
from loglens.store.base import TimeRange

if TYPE_CHECKING:
    from loglens.config import Settings
    from loglens.pipeline import Pipeline
    from loglens.store.base import Store

log = logging.getLogger(__name__)

SOURCE = "kafka"
INSTALL_HINT = "pip install 'loglens[kafka]'"
#: Messages per ``consume`` call and per pipeline submission.
BATCH = 2000
#: Submitted batches whose offsets are not committed yet; more pauses consumption.
MAX_IN_FLIGHT = 8
#: Offsets looked up in the store per query when checking what is stored already.
LOOKUP_CHUNK = 256
#: The journal is rewritten with only its live ranges once this many bytes were appended.
JOURNAL_COMPACT_BYTES = 1 << 20
JOURNAL_NAME = "kafka-offsets.jsonl"
#: How long one poll waits for messages.
POLL_SECONDS = 0.5
#: How long a paused consumer waits between two tries.
RETRY_SECONDS = 0.05
#: Longest time without a poll while batches are in flight (polls serve rebalances).
MAX_WAIT_SECONDS = 2.0
#: Pause before the consumer is opened again after the store failed a batch.
RESTART_SECONDS = 2.0
#: Attributes that identify a Kafka record.
TOPIC, PARTITION, OFFSET, KEY = "kafka.topic", "kafka.partition", "kafka.offset", "kafka.key"

_TP = tuple[str, int]


class KafkaUnavailableError(RuntimeError):
    """Kafka ingest is enabled but confluent-kafka is not installed."""


def _require_client() -> Any:
    try:
        import confluent_kafka
    except ImportError as exc:
        raise KafkaUnavailableError(
            f"Kafka ingest (--kafka-brokers / LOGLENS_KAFKA_BROKERS) needs the confluent-kafka package: "
            f"{INSTALL_HINT}") from exc
    return confluent_kafka


# ---------------------------------------------------------------------------------------- values
def _json_object(text: str) -> dict[str, Any] | None:
    """The value as a JSON object when it is one (the same test as ``parse_line``)."""
    stripped = text.strip()
    if stripped[:1] != "{" or stripped[-1:] != "}":
        return None
    try:
        obj = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None
    return obj if type(obj) is dict else None


def record_of(value: bytes | None, *, topic: str, partition: int, offset: int, key: bytes | None = None,
              timestamp_ms: int | None = None, received_ns: int | None = None,
              stats: dict[str, int] | None = None) -> LogRecord | None:
    """One Kafka message value as a record, or None for an empty value or a tombstone. Never
    raises on odd input; counts what was odd in ``stats``."""
    counts = stats if stats is not None else {}
    now = received_ns or time.time_ns()
    if timestamp_ms is not None and timestamp_ms > 0 and in_range(timestamp_ms * 1_000_000):
        now = timestamp_ms * 1_000_000
    if not value:
        counts["empty"] = counts.get("empty", 0) + 1
        return None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        counts["invalid_utf8"] = counts.get("invalid_utf8", 0) + 1
        text = value.decode("utf-8", errors="replace")
    text = text.rstrip("\r\n")
    if not text.strip():
        counts["empty"] = counts.get("empty", 0) + 1
        return None
    try:
        obj = _json_object(text)
        if obj is not None:
            guard_timestamps(obj)
            rec = record_from_json(obj, received_ns=now, source=SOURCE)
        else:
            rec = parse_text(text, received_ns=now, source=SOURCE)
    except Exception:  # a parser bug must not drop the message: keep it whole
        counts["malformed"] = counts.get("malformed", 0) + 1
        rec = LogRecord(now, text, Level.UNKNOWN, observed_at=now, source=SOURCE)
    if not in_range(rec.timestamp):  # a header dated 9999 or 1900: the store cannot take it
        rec.attributes.setdefault("timestamp_original", str(rec.timestamp))
        rec.timestamp = now
    attrs = rec.attributes
    attrs[TOPIC] = topic
    attrs[PARTITION] = partition
    attrs[OFFSET] = offset
    if key is not None:
        attrs[KEY] = key.decode("utf-8", errors="replace")
    elif KEY in attrs:
        del attrs[KEY]
    return rec


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def stored_among(store: Store, topic: str, partition: int, offsets: list[int]) -> set[int]:
    """Which of ``offsets`` of ``topic``/``partition`` are stored already. The offsets' words narrow
    the search through the full-text index; the records found are checked exactly."""
    from loglens.query.engine import QueryEngine

    if not offsets or not {TOPIC, PARTITION, OFFSET} <= store.known_attributes():
        return set()  # no Kafka record was ever stored
    engine = QueryEngine(store)
    wanted = set(offsets)
    found: set[int] = set()
    ordered = sorted(wanted)
    for i in range(0, len(ordered), LOOKUP_CHUNK):
        chunk = ordered[i:i + LOOKUP_CHUNK]
        q = (f"source:{SOURCE} {TOPIC}:{_quote(topic)} {PARTITION}:{partition} ("
             + " OR ".join(f"{OFFSET}:{o}" for o in chunk) + ")")
        plan = engine.plan(q)
        cursor: int | None = None
        while True:
            page = store.search(plan, TimeRange(None, None), 10_000, cursor)
            for rec in page.records:
                attrs = rec.attributes
                off = attrs.get(OFFSET)
                if (type(off) is int and off in wanted and attrs.get(TOPIC) == topic
                        and attrs.get(PARTITION) == partition):
                    found.add(off)
            cursor = page.next_cursor
            if cursor is None or not page.records:
                break
    return found


class OffsetJournal:
    """Offset ranges submitted to the store whose Kafka commit is not known to have happened: the
    only offsets that can be redelivered after being stored. One JSON object per line: an intent
    ``{"t": topic, "p": partition, "lo": first, "hi": last}`` appended before a batch is submitted,
    a commit ``{"t": topic, "p": partition, "c": next offset}`` after the offsets are committed."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.ranges: dict[_TP, list[tuple[int, int]]] = {}
        self._appended = 0
        try:
            with open(self.path, "rb") as f:
                for line in f:
                    self._replay(line)
        except FileNotFoundError:
            pass
        self._compact()

    def _replay(self, line: bytes) -> None:
        try:
            entry = orjson.loads(line)
            tp = (str(entry["t"]), int(entry["p"]))
            if "c" in entry:
                self._drop_below(tp, int(entry["c"]))
            else:
                self.ranges.setdefault(tp, []).append((int(entry["lo"]), int(entry["hi"])))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            pass  # a line torn by a crash: what it said is looked up in the store anyway

    def _drop_below(self, tp: _TP, committed: int) -> None:
        kept = [r for r in self.ranges.get(tp, ()) if r[1] >= committed]
        if kept:
            self.ranges[tp] = kept
        else:
            self.ranges.pop(tp, None)

    def _append(self, entries: list[dict[str, Any]], *, sync: bool) -> None:
        data = b"".join(orjson.dumps(e) + b"\n" for e in entries)
        with open(self.path, "ab") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        self._appended += len(data)

    def intend(self, spans: dict[_TP, tuple[int, int]]) -> None:
        """Before a batch is submitted: these offsets may be stored from now on."""
        for tp, span in spans.items():
            self.ranges.setdefault(tp, []).append(span)
        self._append([{"t": t, "p": p, "lo": lo, "hi": hi} for (t, p), (lo, hi) in spans.items()],
                     sync=self.fsync)

    def committed(self, offsets: dict[_TP, int]) -> None:
        """After a Kafka commit: offsets below these are settled."""
        for tp, off in offsets.items():
            self._drop_below(tp, off)
        self._append([{"t": t, "p": p, "c": o} for (t, p), o in offsets.items()], sync=False)
        if self._appended > JOURNAL_COMPACT_BYTES:
            self._compact()

    def candidates(self, tp: _TP, start: int) -> list[int]:
        """Offsets from ``start`` on that may be stored already."""
        out: set[int] = set()
        for lo, hi in self.ranges.get(tp, ()):
            if hi >= start:
                out.update(range(max(lo, start), hi + 1))
        return sorted(out)

    def _compact(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            for (t, p), spans in self.ranges.items():
                for lo, hi in spans:
                    f.write(orjson.dumps({"t": t, "p": p, "lo": lo, "hi": hi}) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._appended = 0


def consumer_options(settings: Settings) -> dict[str, Any]:
    """librdkafka configuration of the receiver's consumer."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_brokers,
        "group.id": settings.kafka_group,
        "client.id": "loglens",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # a log platform should not skip what was produced before its first start
        "auto.offset.reset": "earliest",
        # bound what is prefetched per partition (memory) while keeping fetches large
        "queued.max.messages.kbytes": 16384,
    }
    for part in os.environ.get("LOGLENS_KAFKA_OPTIONS", "").replace("\n", ";").split(";"):
        if part.strip():
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"LOGLENS_KAFKA_OPTIONS: expected key=value, got {part.strip()!r}")
            conf[name.strip()] = value.strip()
    return conf


def topics_of(value: str) -> list[str]:
    topics = [t.strip() for t in value.split(",") if t.strip()]
    if not topics:
        raise ValueError("no Kafka topic given (--kafka-topic)")
    return topics


# ---------------------------------------------------------------------------------------- consumer
@dataclass(slots=True)
class _Batch:
    records: list[LogRecord] = field(default_factory=list)
    #: Next offset to commit per partition once the records are stored.
    offsets: dict[_TP, int] = field(default_factory=dict)
    #: First and last offset per partition of the records (written to the journal before submitting).
    spans: dict[_TP, tuple[int, int]] = field(default_factory=dict)
    journaled: bool = False
    future: Future[int] | None = None


@dataclass(slots=True)
class _Partition:
    checked: bool = False
    #: Stored offsets still to be skipped when they come again.
    skip: set[int] = field(default_factory=set)
    skip_max: int = -1


class KafkaReceiver:
    def __init__(self, pipeline: Pipeline, conf: dict[str, Any], topics: list[str], journal: OffsetJournal) -> None:
        self._ck = _require_client()
        self.pipeline = pipeline
        self.journal = journal
        self.conf = dict(conf)
        self.conf.setdefault("logger", logging.getLogger("loglens.ingest.kafka.librdkafka"))
        self.topics = topics
        self.stats: dict[str, int] = dict.fromkeys((
            "received", "bytes", "stored", "duplicates", "empty", "invalid_utf8", "malformed", "consumer_errors",
            "commits", "commit_errors", "store_errors", "pauses", "rebalances"), 0)
        self._stop = threading.Event()
        self._consumer: Any = None
        self._parts: dict[_TP, _Partition] = {}
        self._pending = _Batch()
        self._inflight: collections.deque[_Batch] = collections.deque()
        self._to_commit: dict[_TP, int] = {}
        self._commit_retry_at = 0.0
        self._broken: set[_TP] = set()  # partitions with a batch the store failed
        self._paused = False
        self._reassigned = False
        self._last_error: dict[str, float] = {}
        self._polled = time.monotonic()
        self._open()  # configuration errors are raised here, in the caller's thread
        self._thread = threading.Thread(target=self._run, name="loglens-kafka", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ lifecycle
    def _open(self) -> None:
        self._consumer = self._ck.Consumer(self.conf)
        self._parts.clear()
        self._paused = False
        self._reassigned = False
        self._consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_lost)

    def close(self, timeout: float = 60) -> None:
        """Stop consuming, store and commit what is in flight, leave the group."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("kafka: the consumer did not stop within %.0f s", timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception:
                    log.exception("kafka: consumer loop failed; restarting the consumer")
                    self._restart()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        try:
            if not self._broken:
                self._submit(block=True)
            self._reap(wait=True)
            self._commit()
        except Exception:
            log.exception("kafka: finishing the in-flight batches failed")
        try:
            self._consumer.close()  # leaves the group (on_revoke finds nothing left to do)
        except Exception:
            log.exception("kafka: closing the consumer failed")

    def _restart(self) -> None:
        """After a store failure: close the consumer and open it again, which resumes at the
        committed offsets (what was stored after them is skipped by the deduplication)."""
        self._pending = _Batch()
        try:
            self._reap(wait=True)
            self._commit()
        except Exception:
            log.exception("kafka: finishing the in-flight batches failed")
        self._to_commit.clear()
        try:
            self._consumer.close()
        except Exception:
            log.exception("kafka: closing the consumer failed")
        self._broken.clear()
        self._stop.wait(RESTART_SECONDS)
        if not self._stop.is_set():
            self._open()

    # ------------------------------------------------------------------ the loop
    def _step(self) -> None:
        self._reap(wait=False)
        if self._to_commit and time.monotonic() >= self._commit_retry_at:
            self._commit()
        if self._broken:
            self._restart()
            return
        throttled = bool(self._pending.records or self._pending.offsets or self._to_commit)
        full = len(self._inflight) >= MAX_IN_FLIGHT
        if full and not throttled and time.monotonic() - self._polled < MAX_WAIT_SECONDS:
            self._wait_oldest()  # enough is in flight: let the store catch up (what is fetched waits)
            return
        if throttled or full:
            # backpressure (the write queue is full), Kafka refusing commits or a slow store: pause
            # the partitions and keep polling, which serves rebalances and the group membership
            # without fetching
            self._set_paused(True)
            if self._inflight:
                self._wait_oldest()
            messages = self._consumer.consume(num_messages=BATCH, timeout=0 if self._inflight else RETRY_SECONDS)
        else:
            self._set_paused(False)
            messages = self._consumer.consume(num_messages=BATCH, timeout=POLL_SECONDS)
        self._polled = time.monotonic()
        if messages:
            self._add(messages)
        if self._pending.records or self._pending.offsets:
            self._submit(block=False)

    def _wait_oldest(self) -> None:
        oldest = self._inflight[0].future
        if oldest is not None:
            wait_futures([oldest], timeout=RETRY_SECONDS)

    def _set_paused(self, paused: bool) -> None:
        """Pause or resume the whole assignment (again after a rebalance changed it)."""
        if paused == self._paused and not self._reassigned:
            return
        parts = self._consumer.assignment()
        if parts:
            if paused:
                self._consumer.pause(parts)
            else:
                self._consumer.resume(parts)
        if paused and not self._paused:
            self.stats["pauses"] += 1
        self._paused = paused
        self._reassigned = False

    def _add(self, messages: list[Any]) -> None:
        ck = self._ck
        self._check_partitions(messages)
        batch = self._pending
        stats = self.stats
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() != ck.KafkaError._PARTITION_EOF:
                    stats["consumer_errors"] += 1
                    self._warn_once(str(err))
                continue
            stats["received"] += 1
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            tp = (topic, partition)
            batch.offsets[tp] = offset + 1
            part = self._parts.get(tp)
            if part is not None and part.skip:
                if offset in part.skip:
                    part.skip.discard(offset)
                    stats["duplicates"] += 1
                    continue
                if offset > part.skip_max:
                    part.skip.clear()
            value = m.value()
            if value:
                stats["bytes"] += len(value)
            ts_type, ts_ms = m.timestamp()
            rec = record_of(value, topic=topic, partition=partition, offset=offset, key=m.key(),
                            timestamp_ms=ts_ms if ts_type != ck.TIMESTAMP_NOT_AVAILABLE else None, stats=stats)
            if rec is not None:
                batch.records.append(rec)
                span = batch.spans.get(tp)
                batch.spans[tp] = (offset, offset) if span is None else (span[0], offset)

    def _warn_once(self, message: str) -> None:
        """Log a consumer error, the same one at most once a minute (a missing topic repeats)."""
        now = time.monotonic()
        if now - self._last_error.get(message, -3600.0) >= 60:
            if len(self._last_error) > 256:
                self._last_error.clear()
            self._last_error[message] = now
            log.warning("kafka: %s", message)

    def _check_partitions(self, messages: list[Any]) -> None:
        """Deduplication: on the first messages of a newly assigned partition, find which of the
        offsets about to come again are stored already (the journal says which ones may be)."""
        first: dict[_TP, int] = {}
        for m in messages:
            if m.error() is None:
                tp = (m.topic(), m.partition())
                part = self._parts.get(tp)
                if (part is None or not part.checked) and tp not in first:
                    first[tp] = m.offset()
        if not first:
            return
        committed: dict[_TP, int] = {}
        try:
            for tp in self._consumer.committed([self._ck.TopicPartition(t, p) for t, p in first], timeout=30):
                if tp.error is None:
                    committed[(tp.topic, tp.partition)] = tp.offset
        except self._ck.KafkaException as exc:
            log.warning("kafka: could not read the committed offsets (%s); checking from the first offsets", exc)
        for tp, start in first.items():
            part = self._parts.setdefault(tp, _Partition())
            part.checked = True
            at = committed.get(tp, -1)
            if at >= 0 and at != start:
                log.info("kafka: %s[%d] resumes at offset %d, not at its committed %d: no deduplication",
                         tp[0], tp[1], start, at)
                continue
            try:
                part.skip = stored_among(self.pipeline.store, tp[0], tp[1], self.journal.candidates(tp, start))
            except Exception:  # the lookup must not stop the consumption: at least once still holds
                log.exception("kafka: looking up %s[%d] in the store failed; nothing is skipped", tp[0], tp[1])
                part.skip = set()
            part.skip_max = max(part.skip, default=-1)
            if part.skip:
                log.warning("kafka: %s[%d]: %d records from offset %d are stored already (an unclean stop): skipped",
                         tp[0], tp[1], len(part.skip), start)

    def _submit(self, *, block: bool) -> None:
        batch = self._pending
        if not batch.records and not batch.offsets:
            return
        if batch.records:
            if not batch.journaled:
                self.journal.intend(batch.spans)
                batch.journaled = True
            try:
                batch.future = self.pipeline.submit(batch.records, source=SOURCE, block=block)
            except QueueFullError:
                return  # stays pending; the loop pauses the partitions and tries again
        else:  # only duplicates or empty values: nothing to store, the offsets still move on
            batch.future = Future()
            batch.future.set_result(0)
        self._inflight.append(batch)
        self._pending = _Batch()

    def _reap(self, *, wait: bool) -> None:
        """Collect the stored batches, in order, and commit the offsets after them."""
        done = False
        while self._inflight:
            batch = self._inflight[0]
            fut = batch.future
            assert fut is not None
            if not wait and not fut.done():
                break
            self._inflight.popleft()
            exc = fut.exception()
            if exc is not None:
                self.stats["store_errors"] += 1
                log.error("kafka: storing %d records failed (%s); they will be consumed again",
                          len(batch.records), exc)
                self._broken.update(batch.offsets)
                continue
            self.stats["stored"] += len(batch.records)
            for tp, off in batch.offsets.items():
                if tp not in self._broken:  # never commit past a batch that was not stored
                    self._to_commit[tp] = off
            done = True
        if done:
            self._commit()

    def _commit(self) -> None:
        if not self._to_commit:
            return
        ck = self._ck
        offsets = [ck.TopicPartition(t, p, o) for (t, p), o in self._to_commit.items()]
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except ck.KafkaException as exc:
            self._commit_failed(str(exc))
            return
        failed = [tp for tp in result or () if tp.error is not None]
        if failed:
            self._commit_failed(", ".join(f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in failed))
            keep = {(tp.topic, tp.partition) for tp in failed}
            self._to_commit = {tp: o for tp, o in self._to_commit.items() if tp in keep}
            return
        self.stats["commits"] += 1
        self.journal.committed(self._to_commit)
        self._to_commit.clear()

    def _commit_failed(self, reason: str) -> None:
        self.stats["commit_errors"] += 1
        self._commit_retry_at = time.monotonic() + 1.0
        log.warning("kafka: committing offsets failed (%s); will retry", reason)

    # ------------------------------------------------------------------ rebalances
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.stats["rebalances"] += 1
        self._reassigned = True
        for tp in partitions:
            self._parts[(tp.topic, tp.partition)] = _Partition()
        log.info("kafka: assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing")

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Finish the in-flight batches and commit their offsets before the partitions go."""
        self._finish(partitions, commit=True)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """The partitions are already someone else's: store what is in flight, commit nothing."""
        self._finish(partitions, commit=False)

    def _finish(self, partitions: list[Any], *, commit: bool) -> None:
        try:
            if not self._broken:
                self._submit(block=True)
            self._reap(wait=True)
            if commit:
                self._commit()
        except Exception:
            log.exception("kafka: finishing the in-flight batches on rebalance failed")
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for tp in gone:
            self._parts.pop(tp, None)
            self._to_commit.pop(tp, None)
        self._reassigned = True


def start(settings: Settings, pipeline: Pipeline) -> KafkaReceiver:
    _require_client()
    journal = OffsetJournal(Path(settings.data) / JOURNAL_NAME, fsync=settings.durability == "full")
    receiver = KafkaReceiver(pipeline, consumer_options(settings), topics_of(settings.kafka_topic), journal)
    log.info("kafka: consuming %s from %s as group %s", ", ".join(receiver.topics), settings.kafka_brokers,
             settings.kafka_group)
    return receiver
