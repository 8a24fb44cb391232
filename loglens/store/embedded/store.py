"""The embedded store: one SQLite file per UTC day of record time, plus a catalogue.

Why this shape (see docs/storage.md and the bake-off in the design notes):

* A record's id is ``(timestamp_ms << 20) | sequence``. Ids therefore sort by time, so "newest
  first" is a descending walk of the primary key or of the full-text posting lists, and a time
  range is an id range that both indexes answer directly. Ids are unique across shards.
* Day shards make retention an ``unlink`` and keep each B-tree small.
* The full-text index is contentless with ``detail=none`` (posting lists of ids only), with hidden
  tokens for level/service/host/source/template so that field filters are index intersections.
* Per-minute counts by (service, level) and per-hour counts by template are kept at write time,
  so histograms, counts and top-N over those fields never touch the rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import os
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from loglens.model import Level, LogRecord, RecordBatch, Template
from loglens.query.planning import Plan, plan_query
from loglens.store.base import (
    Bucket,
    SearchPage,
    Store,
    StoreLockedError,
    StoreStats,
    TimeRange,
    TopValue,
)
from loglens.store.embedded.checkpoint import WAL_LIMIT_BYTES, Checkpointer
from loglens.store.embedded.codec import ShardReaderCodec, ShardWriterCodec
from loglens.store.embedded.fts import FtsQuery, compile_fts, compile_rollup
from loglens.store.embedded.meta import Catalog

#: 1,024 ids per millisecond; more records in one millisecond borrow the next one. Fewer bits
#: make the id gaps in the posting lists (varints) smaller: about a third of the index size.
SEQ_BITS = 10
SEQ_MASK = (1 << SEQ_BITS) - 1
MS = 1_000_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
DAY_NS = DAY_MS * MS
MAX_ID = (1 << 63) - 1
_LEVELS = tuple(Level)
#: Bytes per full-text index leaf (SQLite's default is 1000): fewer, fuller leaves are smaller.
FTS_PAGE_SIZE = 4000
FTS_AUTOMERGE = 16
_SHARD_NAME = re.compile(r"^(\d{8})\.db$")

_SHARD_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    ts_delta INTEGER NOT NULL,      -- timestamp minus the id's millisecond, in ns
    observed_delta INTEGER NOT NULL,  -- observed_at minus timestamp, in ns
    level INTEGER NOT NULL,
    service INTEGER NOT NULL,
    host INTEGER NOT NULL,
    source INTEGER NOT NULL,
    template INTEGER NOT NULL,
    trace_id TEXT,
    body BLOB NOT NULL              -- codec byte + [header, message, attributes] as JSON
);
CREATE TABLE IF NOT EXISTS codecs (id INTEGER PRIMARY KEY, dictionary BLOB NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    body, content='', detail=none, columnsize=0, tokenize="unicode61 remove_diacritics 0 tokenchars '_'"
);
CREATE TABLE IF NOT EXISTS rollup_minute (
    minute INTEGER NOT NULL, service INTEGER NOT NULL, level INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (minute, service, level)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_template (
    hour INTEGER NOT NULL, template INTEGER NOT NULL, service INTEGER NOT NULL,
    level INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (hour, template, service, level)
) WITHOUT ROWID;
"""
_RECORD_COLUMNS = "id, ts_delta, observed_delta, level, service, host, source, template, trace_id, body"
_ROLLUP_MINUTE_UPSERT = (
    "INSERT INTO rollup_minute (minute, service, level, n) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (minute, service, level) DO UPDATE SET n = n + excluded.n"
)
_ROLLUP_TEMPLATE_UPSERT = (
    "INSERT INTO rollup_template (hour, template, service, level, n) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (hour, template, service, level) DO UPDATE SET n = n + excluded.n"
)
#: Rows fetched per step when candidates must be verified one by one.
_CHUNK = 512


def id_range(time: TimeRange) -> tuple[int, int]:
    lo = 0 if time.start is None else max(0, time.start // MS) << SEQ_BITS
    hi = MAX_ID if time.end is None else ((max(0, time.end) // MS) << SEQ_BITS) | SEQ_MASK
    return lo, hi


_SCALARS = (int, float, bool)


def _searchable_attribute_text(attributes: dict[str, Any]) -> str:
    # One comprehension for every record: trying a plain join first and catching the TypeError
    # that numbers raise costs more than it saves.
    return " ".join([v if type(v) is str else str(v) if type(v) in _SCALARS else _value_text(v)
                     for v in attributes.values()])


def _value_text(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is list:
        return " ".join(map(str, value))
    return str(value)


#: Dictionary ids of (service, host, source) and their full-text tokens.
_Keywords = tuple[int, int, int, str]


class _Conn(sqlite3.Connection):
    """A shard connection that carries its body codec."""

    reader_codec: ShardReaderCodec
    writer_codec: ShardWriterCodec


class _Shard:
    """One day's file. ``lo``/``hi`` bound the ids it can hold."""

    def __init__(self, day: int, path: Path) -> None:
        self.day = day
        self.path = path
        self.lo = (day * DAY_MS) << SEQ_BITS
        self.hi = (((day + 1) * DAY_MS) << SEQ_BITS) - 1

    def overlaps(self, lo: int, hi: int) -> bool:
        return self.lo <= hi and lo <= self.hi


class EmbeddedStore(Store):
    def __init__(self, data_dir: str | os.PathLike[str], *, writable: bool = False,
                 durability: str = "normal") -> None:
        self.dir = Path(data_dir)
        self.writable = writable
        self._synchronous = "FULL" if durability == "full" else "NORMAL"
        self._lock_file: Any = None
        if writable:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "shards").mkdir(exist_ok=True)
            self._lock_file = open(self.dir / "LOCK", "a+")  # noqa: SIM115 - held for the store's life
            try:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                self._lock_file.close()
                raise StoreLockedError(
                    f"{self.dir} is in use by another LogLens process (a running `loglens serve`?); "
                    "stop it or send the data to it with --url"
                ) from exc
        elif not (self.dir / "meta.db").exists():
            raise FileNotFoundError(f"no LogLens data in {self.dir} (nothing ingested yet?)")
        self.catalog = Catalog(self.dir / "meta.db", writable=writable, synchronous=self._synchronous)
        self._writers: dict[int, _Conn] = {}
        self._shard_max: dict[int, int] = {}
        self._next_seq: dict[int, int] = {}
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._checkpointer = Checkpointer()

    # ------------------------------------------------------------------ connections and shards
    def _shards(self) -> list[_Shard]:
        try:
            names = os.listdir(self.dir / "shards")
        except FileNotFoundError:
            return []
        shards = []
        for name in names:
            m = _SHARD_NAME.match(name)
            if m:
                shards.append(_Shard(int(m.group(1)), self.dir / "shards" / name))
        shards.sort(key=lambda s: s.day)
        return shards

    def _shard_path(self, day: int) -> Path:
        return self.dir / "shards" / f"{day:08d}.db"

    def _reader(self, shard: _Shard) -> _Conn:
        conns: dict[int, _Conn] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(shard.day)
        if conn is None:
            if len(conns) >= 32:  # bound open files and page caches per thread
                _, old = conns.popitem()
                old.close()
            conn = sqlite3.connect(shard.path, isolation_level=None, check_same_thread=False, timeout=30,
                                   factory=_Conn)
            conn.reader_codec = ShardReaderCodec(conn)
            conn.execute("PRAGMA query_only=1")
            conn.execute("PRAGMA cache_size=-8192")
            conns[shard.day] = conn
        return conn

    def _writer(self, day: int) -> _Conn:
        conn = self._writers.get(day)
        if conn is None:
            path = self._shard_path(day)
            if not path.exists():
                self._create_shard(path)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30,
                                   factory=_Conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # see checkpoint.py
            self._shard_max[day] = conn.execute("SELECT coalesce(max(id), -1) FROM records").fetchone()[0]
            conn.writer_codec = ShardWriterCodec(conn)
            if len(self._writers) >= 8:
                oldest = min(self._writers)
                self._writers.pop(oldest).close()
            self._writers[day] = conn
        return conn

    @staticmethod
    def _create_shard(path: Path) -> None:
        """Build the empty schema under a temporary name, then rename: readers listing the
        directory never open a shard without its tables."""
        tmp = path.with_suffix(".db.tmp")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.executescript(_SHARD_SCHEMA)
            conn.execute(f"INSERT INTO fts (fts, rank) VALUES ('pgsz', {FTS_PAGE_SIZE})")
            # Larger in-memory term buffer per transaction: fewer, larger segments to merge.
            conn.execute(f"INSERT INTO fts (fts, rank) VALUES ('hashsize', {8 << 20})")
            # Merge segments 16 at a time instead of 4: a third less index work per record at 1M
            # rows, for queries that stay well under a millisecond slower.
            conn.execute(f"INSERT INTO fts (fts, rank) VALUES ('automerge', {FTS_AUTOMERGE})")
        finally:
            conn.close()
        os.replace(tmp, path)

    # ------------------------------------------------------------------ writing
    def _allocate_id(self, conn: _Conn, day: int, ms: int) -> int:
        seq = self._next_seq.get(ms)
        if seq is None:
            base = ms << SEQ_BITS
            if base > self._shard_max[day]:
                seq = 0
            else:
                top = conn.execute(
                    "SELECT max(id) FROM records WHERE id BETWEEN ? AND ?", (base, base | SEQ_MASK)
                ).fetchone()[0]
                seq = 0 if top is None else (top & SEQ_MASK) + 1
        if seq > SEQ_MASK:  # more records in one millisecond than ids: borrow the next one
            return self._allocate_id(conn, day, ms + 1)
        self._next_seq[ms] = seq + 1
        return (ms << SEQ_BITS) | seq

    def write(self, records: Sequence[LogRecord], templates: Iterable[Template] = (),
              merges: Iterable[tuple[int, int]] = ()) -> None:
        if not self.writable:
            raise PermissionError("store opened read-only")
        with self._write_lock:
            self._write(RecordBatch.of(records), list(templates), list(merges))

    def _write(self, batch: RecordBatch, templates: list[Template], merges: list[tuple[int, int]]) -> None:
        if not batch and not templates and not merges:
            return
        catalog = self.catalog
        # Per-record work is done column by column in comprehensions (C loops), not in one
        # Python loop that builds each row: this is the hottest Python code of ingest.
        keys = list(zip(batch.services, batch.hosts, batch.sources, strict=True))
        keywords: dict[tuple[str, str, str], _Keywords] = {}
        catalog.begin()
        try:
            for key in set(keys):
                sid, hid, rid = (catalog.intern("service", key[0]), catalog.intern("host", key[1]),
                                 catalog.intern("source", key[2]))
                keywords[key] = (sid, hid, rid, f" {key[0]} {key[1]} __s{sid} __h{hid} __r{rid}")
            attribute_names: set[str] = set()
            for attrs in [a for a in batch.attributes if a]:
                attribute_names.update(attrs)
            catalog.learn_attributes(attribute_names)
            catalog.save_templates(templates)
            catalog.save_merges(merges)
            catalog.commit()
        except BaseException:
            catalog.rollback()
            raise
        if len(self._next_seq) > 100_000:  # bounded; the database answers for older milliseconds
            self._next_seq.clear()
        record_keywords = [keywords[k] for k in keys]
        days = [ts // DAY_NS for ts in batch.timestamps]
        if not days:
            return
        if days.count(days[0]) == len(days):  # the usual case: the batch is within one day
            batch.set_ids(self._write_shard(days[0], batch, record_keywords))
            return
        by_day: dict[int, list[int]] = {}
        for index, day in enumerate(days):
            by_day.setdefault(day, []).append(index)
        ids = [0] * len(days)
        for day, indices in sorted(by_day.items()):
            day_ids = self._write_shard(day, batch.take(indices), [record_keywords[i] for i in indices])
            for index, rid in zip(indices, day_ids, strict=True):
                ids[index] = rid
        batch.set_ids(ids)

    def _allocate_ids(self, conn: _Conn, day: int, milliseconds: list[int]) -> list[int]:
        """Ids for records of these milliseconds (see :data:`SEQ_BITS`), in order."""
        next_seq = self._next_seq
        get = next_seq.get
        shard_max = self._shard_max[day]
        ids: list[int] = []
        append = ids.append
        for ms in milliseconds:
            seq = get(ms)
            if seq is None and (ms << SEQ_BITS) > shard_max:
                seq = 0  # a millisecond this shard has no record of yet
            elif seq is None or seq > SEQ_MASK:
                append(self._allocate_id(conn, day, ms))
                continue
            next_seq[ms] = seq + 1
            append((ms << SEQ_BITS) | seq)
        return ids

    def _write_shard(self, day: int, batch: RecordBatch, keywords: list[_Keywords]) -> list[int]:
        """Write a batch of one day's records in one transaction; returns their ids."""
        conn = self._writer(day)
        codec = conn.writer_codec
        dumps = orjson.dumps
        payloads = [dumps([h, m, a or None]) for h, m, a in zip(batch.headers, batch.messages, batch.attributes,
                                                                 strict=True)]
        timestamps = batch.timestamps
        levels = batch.levels
        template_ids = batch.template_ids
        service_ids = [k[0] for k in keywords]
        conn.execute("BEGIN IMMEDIATE")
        try:
            codec.prepare(conn, payloads)
            ids = self._allocate_ids(conn, day, [ts // MS for ts in timestamps])
            rows = zip(
                ids,
                [ts - (rid >> SEQ_BITS) * MS for ts, rid in zip(timestamps, ids, strict=True)],
                [seen - ts for seen, ts in zip(batch.observed_ats, timestamps, strict=True)],
                levels, service_ids, [k[1] for k in keywords], [k[2] for k in keywords], template_ids,
                batch.trace_ids,  # never None: binding None costs an adapter lookup
                codec.encode_many(payloads),
                strict=True,
            )
            conn.executemany(f"INSERT INTO records ({_RECORD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            texts = [
                f"{header}{message} {_searchable_attribute_text(attributes) if attributes else ''}"
                f"{k[3]} {trace_id} __l{level} __t{template}"
                for header, message, attributes, k, trace_id, level, template in zip(
                    batch.headers, batch.messages, batch.attributes, keywords, batch.trace_ids, levels,
                    template_ids, strict=True)
            ]
            conn.executemany("INSERT INTO fts (rowid, body) VALUES (?, ?)", zip(ids, texts, strict=True))
            self._update_rollups(conn, ids, template_ids, service_ids, levels)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._next_seq.clear()
            self._writers.pop(day, None)  # reload the codec and id bounds from disk
            conn.close()
            raise
        self._shard_max[day] = max(self._shard_max[day], max(ids))
        self._checkpoint(conn, day)
        return ids

    def _checkpoint(self, conn: _Conn, day: int) -> None:
        path = self._shard_path(day)
        try:
            wal_bytes = os.path.getsize(f"{path}-wal")
        except OSError:
            return
        if wal_bytes > WAL_LIMIT_BYTES:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        else:
            self._checkpointer.request(path)

    @staticmethod
    def _update_rollups(conn: _Conn, ids: list[int], template_ids: list[int], service_ids: list[int],
                        levels: list[int]) -> None:
        """Add the batch to the per-minute and per-hour counts."""
        # Counter over a zip counts in C; the per-hour counts are sums of the per-minute ones.
        fine = Counter(zip([(rid >> SEQ_BITS) // MINUTE_MS for rid in ids], template_ids, service_ids, levels,
                           strict=True))
        minutes: Counter[tuple[int, int, int]] = Counter()
        hours: Counter[tuple[int, int, int, int]] = Counter()
        per_hour = HOUR_MS // MINUTE_MS
        for (minute, template, service, level), n in fine.items():
            minutes[(minute, service, level)] += n
            hours[(minute // per_hour, template, service, level)] += n
        conn.executemany(_ROLLUP_MINUTE_UPSERT, [(*k, n) for k, n in minutes.items()])
        conn.executemany(_ROLLUP_TEMPLATE_UPSERT, [(*k, n) for k, n in hours.items()])

    # ------------------------------------------------------------------ reading helpers
    def _row_to_record(self, conn: _Conn, row: tuple[Any, ...]) -> LogRecord:
        name = self.catalog.name
        header, message, attrs = orjson.loads(conn.reader_codec.decode(row[9]))
        ts = (row[0] >> SEQ_BITS) * MS + row[1]
        return LogRecord(
            id=row[0], timestamp=ts, observed_at=ts + row[2], level=_LEVELS[row[3]],
            service=name("service", row[4]), host=name("host", row[5]), source=name("source", row[6]),
            template_id=self.catalog.resolve(row[7]), trace_id=row[8] or "", header=header, message=message,
            attributes=attrs or {},
        )

    def _fetch(self, conn: _Conn, ids: list[int]) -> list[LogRecord]:
        """Records for ``ids``, in the order given."""
        if not ids:
            return []
        rows = conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE id IN ({','.join('?' * len(ids))})", ids
        ).fetchall()
        by_id = {r[0]: r for r in rows}
        return [self._row_to_record(conn, by_id[i]) for i in ids if i in by_id]

    def _lookup(self, field_name: str, value: str, kind: str) -> list[int]:
        if field_name == "template":
            return self.catalog.aliases_of(int(value))
        return self.catalog.lookup(field_name, value, kind)

    def _fts(self, plan: Plan) -> FtsQuery:
        return compile_fts(plan.node, self._lookup)

    def _candidate_ids(self, conn: _Conn, fts: FtsQuery, lo: int, hi: int,
                       descending: bool = True, first_chunk: int = _CHUNK) -> Iterator[list[int]]:
        """Chunks of ids that may match, newest first (or oldest first); the first holds
        ``first_chunk`` ids, each next one twice as many, up to :data:`_CHUNK`."""
        order = "DESC" if descending else "ASC"
        if fts.expr is None:
            cur = conn.execute(f"SELECT id FROM records WHERE id BETWEEN ? AND ? ORDER BY id {order}", (lo, hi))
        else:
            cur = conn.execute(
                f"SELECT rowid FROM fts WHERE fts MATCH ? AND rowid BETWEEN ? AND ? ORDER BY rowid {order}",
                (fts.expr, lo, hi),
            )
        size = first_chunk
        while True:
            chunk = cur.fetchmany(size)
            if not chunk:
                return
            yield [r[0] for r in chunk]
            size = min(_CHUNK, size * 2)

    def _matching(self, conn: _Conn, plan: Plan, fts: FtsQuery, lo: int, hi: int,
                  limit: int | None, descending: bool = True) -> Iterator[LogRecord]:
        """Matching records of one shard in id order, verified where the index is not exact."""
        exact = _index_decides(plan, fts)
        if exact and fts.expr is None:  # match-all: read rows straight off the primary key
            order = "DESC" if descending else "ASC"
            sql = f"SELECT {_RECORD_COLUMNS} FROM records WHERE id BETWEEN ? AND ? ORDER BY id {order}"
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            cur = conn.execute(sql, (lo, hi))
            while rows := cur.fetchmany(_CHUNK):
                yield from (self._row_to_record(conn, r) for r in rows)
            return
        if exact and limit is not None:
            assert fts.expr is not None
            order = "DESC" if descending else "ASC"
            ids = [r[0] for r in conn.execute(
                f"SELECT rowid FROM fts WHERE fts MATCH ? AND rowid BETWEEN ? AND ? ORDER BY rowid {order}"
                f" LIMIT {int(limit)}", (fts.expr, lo, hi))]
            yield from self._fetch(conn, ids)
            return
        predicate = plan.predicate
        # A page of results verified one by one: most candidates of a phrase or a field value
        # match, so the first chunk need not be much larger than the page.
        first = _CHUNK if limit is None else min(_CHUNK, max(32, 2 * limit))
        for ids in self._candidate_ids(conn, fts, lo, hi, descending, first):
            for rec in self._fetch(conn, ids):
                if exact or predicate(rec):
                    yield rec

    # ------------------------------------------------------------------ queries
    def _spans(self, lo: int, hi: int, *, newest_first: bool = False) -> Iterator[tuple[_Conn, int, int]]:
        """(connection, first id, last id) of each shard holding part of ``lo..hi``."""
        shards = self._shards()
        for shard in reversed(shards) if newest_first else shards:
            if shard.overlaps(lo, hi):
                yield self._reader(shard), max(lo, shard.lo), min(hi, shard.hi)

    def search(self, plan: Plan, time: TimeRange, limit: int, cursor: int | None = None) -> SearchPage:
        lo, hi = id_range(time)
        if cursor is not None:
            hi = min(hi, cursor - 1)
        fts = self._fts(plan)
        found: list[LogRecord] = []
        for conn, s_lo, s_hi in self._spans(lo, hi, newest_first=True):
            if len(found) >= limit:
                break
            for rec in self._matching(conn, plan, fts, s_lo, s_hi, limit - len(found)):
                found.append(rec)
                if len(found) >= limit:
                    break
        next_cursor = found[-1].id if len(found) >= limit and found else None
        return SearchPage(records=found, next_cursor=next_cursor)

    def _rollup_where(self, plan: Plan) -> tuple[str, list[int]] | None:
        return compile_rollup(plan.node, self._lookup)

    def count(self, plan: Plan, time: TimeRange) -> int:
        return sum(b.total for b in self._aggregate(plan, time, None))

    def histogram(self, plan: Plan, time: TimeRange, interval_ns: int) -> list[Bucket]:
        interval_ms = max(1, interval_ns // MS)
        return self._aggregate(plan, time, interval_ms)

    def _aggregate(self, plan: Plan, time: TimeRange, interval_ms: int | None) -> list[Bucket]:
        """Counts by (bucket, level); one bucket at 0 when ``interval_ms`` is None."""
        lo, hi = id_range(time)
        counts: Counter[tuple[int, int]] = Counter()
        rollup = self._rollup_where(plan)
        fts = self._fts(plan)
        for conn, s_lo, s_hi in self._spans(lo, hi):
            if rollup is not None and (interval_ms is None or interval_ms % MINUTE_MS == 0):
                bucket_sql = "0" if interval_ms is None else f"{{t}} / {interval_ms} * {interval_ms}"
                for key, level, n in self._rolled_up(conn, "rollup_minute", [bucket_sql, "level"], rollup, s_lo,
                                                     s_hi):
                    counts[(key, level)] += n
            elif fts.exact and fts.expr is not None:
                self._aggregate_fts(conn, fts.expr, s_lo, s_hi, interval_ms, counts)
            else:
                for rec in self._matching(conn, plan, fts, s_lo, s_hi, None):
                    key = 0 if interval_ms is None else (rec.id >> SEQ_BITS) // interval_ms * interval_ms
                    counts[(key, int(rec.level))] += 1
        buckets: dict[int, Bucket] = {}
        for (start_ms, level), n in sorted(counts.items()):
            bucket = buckets.setdefault(start_ms, Bucket(start=start_ms * MS))
            name = _LEVELS[level].name
            bucket.counts[name] = bucket.counts.get(name, 0) + n
        return list(buckets.values())

    def _rolled_up(self, conn: _Conn, table: str, columns: list[str], rollup: tuple[str, list[int]],
                   lo: int, hi: int) -> Iterator[tuple[Any, ...]]:
        """Rows of ``columns`` + count over ids ``lo..hi``: whole minutes (or hours) from a rollup table,
        the partial ones at the edges counted from ``records``.

        ``{t}`` in a column stands for the time in ms; rollup tables and ``records`` share the column
        names ``level``, ``service`` and ``template``, so one WHERE clause serves both.
        """
        where, params = rollup
        unit, key = (MINUTE_MS, "minute") if table == "rollup_minute" else (HOUR_MS, "hour")
        group = ", ".join(str(i + 1) for i in range(len(columns)))
        first_full = -(-(lo >> SEQ_BITS) // unit)  # first unit that starts inside the range
        end_full = ((hi >> SEQ_BITS) + 1) // unit  # units before this one end inside the range
        edges = [(lo, hi)]
        if first_full < end_full:
            select = ", ".join(c.format(t=f"({key} * {unit})") for c in columns)
            yield from conn.execute(
                f"SELECT {select}, sum(n) FROM {table} WHERE {key} >= ? AND {key} < ? AND {where} GROUP BY {group}",
                [first_full, end_full, *params])
            edges = [(lo, ((first_full * unit) << SEQ_BITS) - 1), ((end_full * unit) << SEQ_BITS, hi)]
        select = ", ".join(c.format(t=f"(id >> {SEQ_BITS})") for c in columns)
        for e_lo, e_hi in edges:
            if e_lo <= e_hi:
                yield from conn.execute(
                    f"SELECT {select}, count(*) FROM records WHERE id BETWEEN ? AND ? AND {where} GROUP BY {group}",
                    [e_lo, e_hi, *params])

    def _aggregate_fts(self, conn: _Conn, expr: str, lo: int, hi: int,
                       interval_ms: int | None, counts: Counter[tuple[int, int]]) -> None:
        bucket_sql = "0" if interval_ms is None else f"((rowid >> {SEQ_BITS}) / {interval_ms}) * {interval_ms}"
        for level in Level:
            for key, n in conn.execute(
                f"SELECT {bucket_sql}, count(*) FROM fts WHERE fts MATCH ? AND rowid BETWEEN ? AND ?"
                " GROUP BY 1", (f"({expr}) AND \"__l{int(level)}\"", lo, hi)
            ):
                counts[(key, int(level))] += n

    def top(self, plan: Plan, time: TimeRange, field_name: str, limit: int) -> list[TopValue]:
        lo, hi = id_range(time)
        rollup = self._rollup_where(plan)
        counter: Counter[str] = Counter()
        if rollup is not None and field_name in ("service", "level"):
            # Pre-aggregated minutes, exact rows at the edges: the same path as histograms.
            for conn, s_lo, s_hi in self._spans(lo, hi):
                for key, n in self._rolled_up(conn, "rollup_minute", [field_name], rollup, s_lo, s_hi):
                    value = self._column_value(field_name, key)
                    if value:  # records without a service have no value to count
                        counter[value] += n
        else:
            fts = self._fts(plan)
            exact = _index_decides(plan, fts)
            for conn, s_lo, s_hi in self._spans(lo, hi):
                if exact:  # no record needs checking: count columns, or bodies, without records
                    self._count_values(conn, fts.expr, s_lo, s_hi, field_name, counter)
                    continue
                for rec in self._matching(conn, plan, fts, s_lo, s_hi, None):
                    value = _field_value(rec, field_name)
                    if value is not None:
                        counter[value] += 1
        # Only values counted at least as often as the limit-th most frequent can rank: sorting all of
        # them (every distinct message) would cost more than counting them.
        floor = min(heapq.nlargest(limit, counter.values()), default=0)
        ranked = sorted([kv for kv in counter.items() if kv[1] >= floor], key=lambda kv: (-kv[1], kv[0]))
        return [TopValue(value=v, count=n) for v, n in ranked[:limit]]  # ties by value: stable answers

    def _count_values(self, conn: _Conn, expr: str | None, lo: int, hi: int, field_name: str,
                      counter: Counter[str]) -> None:
        """Add the values of ``field_name`` of the records with ids ``lo..hi`` that the index
        expression ``expr`` (None: all) matches exactly, as :func:`_field_value` gives them.

        Key columns are counted by SQLite; the message and attributes are read from the bodies
        alone. Building a record for each match is most of the cost of a top-N over many rows."""
        where, params = _ids_matching(expr, lo, hi)
        if field_name in _KEY_COLUMNS:
            for key, n in conn.execute(f"SELECT {field_name}, count(*) FROM records WHERE {where} GROUP BY 1",
                                       params):
                value = self._column_value(field_name, key)
                if value:
                    counter[value] += n
            return
        decode = conn.reader_codec.decode
        loads = orjson.loads
        cur = conn.execute(f"SELECT body FROM records WHERE {where}", params)
        while rows := cur.fetchmany(_CHUNK):
            bodies = [loads(decode(row[0])) for row in rows]
            if field_name == "message":
                counter.update([b[1] for b in bodies if b[1]])
                continue
            for _header, _message, attributes in bodies:
                raw = attributes.get(field_name) if attributes else None
                if raw is not None:
                    counter[_attribute_text(raw)] += 1

    def _column_value(self, field_name: str, key: Any) -> str | None:
        if field_name == "level":
            return _LEVELS[key].name
        if field_name == "template":
            return str(self.catalog.resolve(key))
        if field_name == "trace_id":
            return str(key) if key else None
        return self.catalog.name(field_name, key) or None

    def template_counts(self, plan: Plan, time: TimeRange) -> dict[int, dict[str, int]]:
        lo, hi = id_range(time)
        rollup = self._rollup_where(plan)
        counts: dict[int, dict[str, int]] = {}
        resolve = self.catalog.resolve

        def add(template: int, level: int, n: int) -> None:
            levels = counts.setdefault(resolve(template), {})
            name = _LEVELS[level].name
            levels[name] = levels.get(name, 0) + n

        fts = self._fts(plan)
        exact = _index_decides(plan, fts)
        for conn, s_lo, s_hi in self._spans(lo, hi):
            if rollup is None and exact:  # counted by SQLite, no record built
                where, params = _ids_matching(fts.expr, s_lo, s_hi)
                for template, level, n in conn.execute(
                        f"SELECT template, level, count(*) FROM records WHERE {where} GROUP BY 1, 2", params):
                    add(template, level, n)
            elif rollup is None:
                for rec in self._matching(conn, plan, fts, s_lo, s_hi, None):
                    add(rec.template_id, int(rec.level), 1)
            else:
                for template, level, n in self._rolled_up(conn, "rollup_template", ["template", "level"], rollup,
                                                          s_lo, s_hi):
                    add(template, level, n)
        return counts

    def template_trends(self, template_ids: list[int], time: TimeRange,
                        interval_ns: int) -> dict[int, dict[int, int]]:
        lo, hi = id_range(time)
        interval_ms = max(1, interval_ns // MS)
        trends: dict[int, dict[int, int]] = {t: {} for t in template_ids}
        for conn, s_lo, s_hi in self._spans(lo, hi):
            for template in template_ids:
                trend = trends[template]
                for start, n in conn.execute(
                    f"SELECT ((rowid >> {SEQ_BITS}) / {interval_ms}) * {interval_ms}, count(*) FROM fts"
                    " WHERE fts MATCH ? AND rowid BETWEEN ? AND ? GROUP BY 1",
                        (_template_tokens(self.catalog.aliases_of(template)), s_lo, s_hi)):
                    trend[start * MS] = trend.get(start * MS, 0) + n
        return trends

    def get(self, record_id: int) -> LogRecord | None:
        day = (record_id >> SEQ_BITS) // DAY_MS
        path = self._shard_path(day)
        if not path.exists():
            return None
        records = self._fetch(self._reader(_Shard(day, path)), [record_id])
        return records[0] if records else None

    def context(self, record_id: int, before: int, after: int) -> tuple[list[LogRecord], list[LogRecord]]:
        rec = self.get(record_id)
        if rec is None:
            raise KeyError(record_id)
        service = self.catalog.ids["service"].get(rec.service, 0)
        host = self.catalog.ids["host"].get(rec.host, 0)
        fts = FtsQuery(f'"__s{service}" AND "__h{host}"', True)
        plan = plan_query("")
        older: list[LogRecord] = []
        newer: list[LogRecord] = []
        for conn, s_lo, s_hi in self._spans(0, record_id - 1, newest_first=True):
            if len(older) >= before:
                break
            older.extend(self._matching(conn, plan, fts, s_lo, s_hi, before - len(older)))
        for conn, s_lo, s_hi in self._spans(record_id + 1, MAX_ID):
            if len(newer) >= after:
                break
            newer.extend(self._matching(conn, plan, fts, s_lo, s_hi, after - len(newer), descending=False))
        older.reverse()
        return older, newer

    # ------------------------------------------------------------------ catalogue and upkeep
    def load_templates(self) -> list[Template]:
        return self.catalog.load_templates()

    def templates(self) -> list[Template]:
        merged = self.catalog.merges
        return [t for t in self.catalog.load_templates() if t.id not in merged]

    def known_attributes(self) -> set[str]:
        return set(self.catalog.attribute_names)

    def values(self, field_name: str) -> list[str]:
        self.catalog.refresh()
        return [v for v in self.catalog.ids[field_name] if v]

    def stats(self) -> StoreStats:
        records = 0
        services: Counter[str] = Counter()
        first: int | None = None
        last: int | None = None
        size = 0
        shards = self._shards()
        for shard in shards:
            conn = self._reader(shard)
            for service, n in conn.execute("SELECT service, sum(n) FROM rollup_minute GROUP BY 1"):
                services[self.catalog.name("service", service)] += n
                records += n
            lo, hi = conn.execute("SELECT min(id), max(id) FROM records").fetchone()
            if lo is not None:
                lo_ts = self._fetch(conn, [lo])[0].timestamp
                hi_ts = self._fetch(conn, [hi])[0].timestamp
                first = lo_ts if first is None else min(first, lo_ts)
                last = hi_ts if last is None else max(last, hi_ts)
        for root, _dirs, files in os.walk(self.dir):
            for f in files:
                with contextlib.suppress(OSError):  # a WAL file checkpointed away meanwhile
                    size += os.path.getsize(os.path.join(root, f))
        return StoreStats(
            records=records, bytes_on_disk=size, first_timestamp=first, last_timestamp=last,
            services=dict(services.most_common()), templates=len(self.catalog.load_templates()),
            shards=len(shards),
        )

    def apply_retention(self, cutoff_ns: int) -> int:
        """Unlink every day shard that ends before ``cutoff_ns``: whole files, so it is instant."""
        removed = 0
        cutoff_day = cutoff_ns // MS // DAY_MS
        with self._write_lock:
            for shard in self._shards():
                if shard.day >= cutoff_day:
                    continue
                conn = self._reader(shard)
                removed += conn.execute("SELECT coalesce(sum(n), 0) FROM rollup_minute").fetchone()[0]
                self._forget(shard.day)
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(str(shard.path) + suffix)
        return removed

    def _forget(self, day: int) -> None:
        self._checkpointer.forget(self._shard_path(day))
        conn = self._writers.pop(day, None)
        if conn is not None:
            conn.close()
        self._shard_max.pop(day, None)
        conns: dict[int, _Conn] | None = getattr(self._local, "conns", None)
        if conns and day in conns:
            conns.pop(day).close()

    def refresh(self) -> None:
        self.catalog.refresh()

    def close(self) -> None:
        self._checkpointer.close()
        for conn in self._writers.values():
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
        self._writers.clear()
        conns: dict[int, _Conn] | None = getattr(self._local, "conns", None)
        if conns:
            for conn in conns.values():
                conn.close()
            conns.clear()
        self.catalog.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def _template_tokens(template_ids: list[int]) -> str:
    return " OR ".join(f'"__t{t}"' for t in template_ids)


def _index_decides(plan: Plan, fts: FtsQuery) -> bool:
    """Does the index alone give exactly the matching records (no record needs checking)?"""
    return fts.exact and (fts.expr is not None or plan.matches_all)


def _ids_matching(expr: str | None, lo: int, hi: int) -> tuple[str, list[Any]]:
    """A WHERE clause on ``records`` for the ids ``lo..hi`` that the index expression ``expr``
    matches (all of them when it is None), and its parameters."""
    if expr is None:
        return "id BETWEEN ? AND ?", [lo, hi]
    return "id IN (SELECT rowid FROM fts WHERE fts MATCH ? AND rowid BETWEEN ? AND ?)", [expr, lo, hi]


#: Fields kept in a column of ``records`` of the same name.
_KEY_COLUMNS = frozenset(("level", "service", "host", "source", "template", "trace_id"))


def _field_value(rec: LogRecord, field_name: str) -> str | None:
    if field_name == "level":
        return rec.level.name
    if field_name == "template":
        return str(rec.template_id)
    if field_name in ("service", "host", "source", "message", "trace_id"):
        value = getattr(rec, field_name)
        return value if value else None
    raw = rec.attributes.get(field_name)
    return None if raw is None else _attribute_text(raw)


def _attribute_text(raw: Any) -> str:
    """An attribute value as a top-N counts it: strings as they are, other values as JSON."""
    return raw if isinstance(raw, str) else orjson.dumps(raw).decode()
