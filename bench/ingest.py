"""Ingest bench: generated logs through `loglens ingest` and the HTTP API, beside bare SQLite.

    .venv/bin/python bench/ingest.py                 # 1,000,000 events
    .venv/bin/python bench/ingest.py --lines 50000   # quick check

Generates N events (bench/gen_logs.py) as plain text and as NDJSON, then measures, each in a fresh
data directory:

* `loglens ingest logs.txt` and `loglens ingest logs.ndjson`, end to end (process start to exit);
* `loglens serve` + 2 client threads POSTing NDJSON batches (keep-alive, honouring 429/Retry-After),
  from the first request to the last answer;
* the peer: a child Python process that reads logs.txt, splits each line into
  (ts, level, service, host, message) and inserts it with sqlite3 `executemany` into a plain table,
  10k rows and one commit per batch (WAL, synchronous=NORMAL - the durability LogLens documents);
* the two halves of `loglens ingest` on their own (`stages`): a child process reads logs.txt as the
  CLI does and, batch by batch in one thread, parses and templates it (the worker process's share,
  without the pipe to it) then writes it to the store (the writer thread's share), timing each.
  `loglens ingest` runs them on one core each, overlapped, so the slower stage bounds it, and their
  sum over two cores is the most it could reach if the work were shared perfectly.

Peak RSS is that of the measured process (kernel high-water mark, plus its children); disk is the
size of the data directory after the process ended, compared with the size of the text file.
"""

from __future__ import annotations

import argparse
import queue
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BenchError,
    Child,
    dir_size,
    find_loglens,
    fmt_int,
    fmt_num,
    machine_note,
    markdown_table,
    run_child,
    serve,
    stats_records,
    store_stats,
    tail,
    verdict,
)
from gen_logs import write_logs

TARGET_CLI = 50_000
TARGET_HTTP = 30_000
TARGET_DISK_RATIO = 1.5
TARGET_RSS_MB = 500


@dataclass
class Row:
    path: str
    lines: int
    stored: int | None
    seconds: float
    disk: int
    peak_mb: float
    kind: str  # cli | http | peer | stage
    note: str = ""

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else float("nan")


# --------------------------------------------------------------------------------------------------
# Peer: bare sqlite3 (runs in a child process: `ingest.py --sqlite-peer TEXT DB`)


def sqlite_peer(text_path: str, db_path: str, batch: int = 10_000) -> int:
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE logs (ts INTEGER NOT NULL, level TEXT, service TEXT, host TEXT, "
               "message TEXT)")
    sec_cache: dict[str, int] = {}
    rows: list[list[object]] = []
    total = 0

    def flush() -> None:
        db.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?)", rows)
        db.commit()

    with open(text_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line[:1] in (" ", "\t") or line.startswith("Caused by:"):
                if rows:  # continuation of a stack trace: part of the record before it
                    rows[-1][4] = f"{rows[-1][4]}\n{line.rstrip()}"
                continue
            parts = line.rstrip("\n").split(None, 4)
            if len(parts) < 5:
                continue
            stamp = parts[0]
            sec = sec_cache.get(stamp[:19])
            if sec is None:
                sec = int(datetime.fromisoformat(stamp[:19]).replace(tzinfo=UTC).timestamp())
                sec_cache[stamp[:19]] = sec
            ms = int(stamp[20:23]) if len(stamp) >= 23 else 0
            if len(rows) >= batch:
                flush()
                total += len(rows)
                rows = []
            rows.append([(sec * 1000 + ms) * 1_000_000, parts[1], parts[2], parts[3], parts[4]])
    if rows:
        flush()
        total += len(rows)
    db.close()
    print(total)
    return 0


def run_peer(text: Path, work: Path, lines: int) -> Row:
    db = work / "peer-sqlite" / "logs.db"
    db.parent.mkdir()
    c = run_child([sys.executable, __file__, "--sqlite-peer", str(text), str(db)])
    if c.returncode != 0:
        raise BenchError(f"sqlite peer failed ({c.returncode}):\n{tail(c.err)}")
    stored = int(c.out.strip() or 0)
    return Row("sqlite3 executemany (peer)", lines, stored, c.seconds, dir_size(db.parent),
               c.peak_rss_mb, "peer")


# --------------------------------------------------------------------------------------------------
# The stages of `loglens ingest` (runs in a child process: `ingest.py --stages TEXT DATA`)


def stage_times(text_path: str, data_dir: str, batch: int = 10_000) -> int:
    """Print records, then seconds spent parsing + templating and seconds spent writing."""
    from loglens.gc_tuning import tune_gc
    from loglens.parse import MultilineJoiner
    from loglens.store.embedded.store import EmbeddedStore
    from loglens.worker import Worker

    tune_gc()
    worker = Worker()
    worker.load([])
    store = EmbeddedStore(data_dir, writable=True)
    joiner = MultilineJoiner()
    parse_s = write_s = 0.0
    total = 0

    def run(texts: list[str]) -> None:
        nonlocal parse_s, write_s, total
        t0 = time.perf_counter()
        worker.send([(texts, "", "", "file", time.time_ns(), False)])
        records, changes, merges, _ = worker.receive()
        t1 = time.perf_counter()
        store.write(records, changes, merges)
        t2 = time.perf_counter()
        parse_s += t1 - t0
        write_s += t2 - t1
        total += len(records)

    pending: list[str] = []
    with open(text_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            pending.extend(joiner.feed(line))
            if len(pending) >= batch:
                run(pending[:batch])
                del pending[:batch]
    pending.extend(joiner.flush())
    if pending:
        run(pending)
    store.close()
    print(total, parse_s, write_s)
    return 0


def run_stages(text: Path, data: Path, lines: int) -> list[Row]:
    c = run_child([sys.executable, __file__, "--stages", str(text), str(data)])
    if c.returncode != 0:
        raise BenchError(f"stages failed ({c.returncode}):\n{tail(c.err)}")
    stored, parse_s, write_s = c.out.split()
    print(f"  stages: parse + templates {float(parse_s):.1f}s, store write {float(write_s):.1f}s", flush=True)
    return [Row("stage: parse + templates (1 thread)", lines, None, float(parse_s), 0, c.peak_rss_mb, "stage"),
            Row("stage: store write (1 thread)", lines, int(stored), float(write_s), dir_size(data),
                c.peak_rss_mb, "stage")]


# --------------------------------------------------------------------------------------------------
# LogLens CLI


def run_cli(loglens: str, src: Path, data: Path, lines: int, label: str) -> Row:
    c = run_child([loglens, "ingest", str(src), "--data", str(data)])
    if c.returncode != 0:
        raise BenchError(f"`loglens ingest {src.name}` exited with {c.returncode}:\n"
                         f"{tail(c.err or c.out)}")
    summary = tail(c.out + "\n" + c.err, 4)
    print(f"  {label}: {c.seconds:.1f}s; loglens said:\n{summary}", flush=True)
    stored = stats_records(store_stats(loglens, str(data)))
    return Row(label, lines, stored, c.seconds, dir_size(data), c.peak_rss_mb, "cli")


# --------------------------------------------------------------------------------------------------
# LogLens HTTP


def _batches(ndjson: Path, size: int) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    buf: list[bytes] = []
    with open(ndjson, "rb") as f:
        for line in f:
            buf.append(line)
            if len(buf) >= size:
                out.append((len(buf), b"".join(buf)))
                buf = []
    if buf:
        out.append((len(buf), b"".join(buf)))
    return out


@dataclass
class PostStats:
    requests: int = 0
    throttled: int = 0
    failed: int = 0
    rejected: int = 0
    first_error: str = ""


def _post_worker(base: str, work: queue.Queue[tuple[int, bytes]], stats: PostStats,
                 lock: threading.Lock, gzip_body: bool) -> None:
    import httpx

    headers = {"Content-Type": "application/x-ndjson"}
    if gzip_body:
        headers["Content-Encoding"] = "gzip"
    with httpx.Client(base_url=base, timeout=600, headers=headers) as client:
        while True:
            try:
                _n, body = work.get_nowait()
            except queue.Empty:
                return
            payload = body
            attempts = 0
            while True:
                attempts += 1
                try:
                    r = client.post("/api/v1/logs", content=payload)
                except httpx.HTTPError as e:
                    with lock:
                        stats.failed += 1
                        stats.first_error = stats.first_error or f"{type(e).__name__}: {e}"
                    break
                with lock:
                    stats.requests += 1
                if r.status_code == 429 and attempts < 1000:
                    with lock:
                        stats.throttled += 1
                    try:
                        delay = float(r.headers.get("Retry-After", "0.2"))
                    except ValueError:
                        delay = 0.2
                    time.sleep(min(max(delay, 0.01), 10))
                    continue
                if r.is_success:
                    rejected = 0
                    try:
                        j = r.json()
                        rej = j.get("rejected") if isinstance(j, dict) else None
                        rejected = len(rej) if isinstance(rej, list) else int(rej or 0)
                    except (ValueError, TypeError):
                        pass
                    if rejected:
                        with lock:
                            stats.rejected += rejected
                else:
                    with lock:
                        stats.failed += 1
                        stats.first_error = stats.first_error or f"HTTP {r.status_code}: {r.text[:300]}"
                break


def run_http(loglens: str, ndjson: Path, data: Path, work: Path, lines: int, clients: int,
             batch: int, gzip_body: bool) -> Row:
    batches = _batches(ndjson, batch)
    if gzip_body:  # compressed before the clock starts: the bench measures the server
        import gzip

        batches = [(n, gzip.compress(body, 1)) for n, body in batches]
    log = work / "serve.log"
    stats = PostStats()
    with serve(loglens, str(data), str(log)) as (child, base):
        q: queue.Queue[tuple[int, bytes]] = queue.Queue()
        for b in batches:
            q.put(b)
        lock = threading.Lock()
        threads = [threading.Thread(target=_post_worker, args=(base, q, stats, lock, gzip_body))
                   for _ in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
        child.stop()
    srv: Child = child
    note = (f"{len(batches)} batches of {batch}, {clients} clients, {stats.requests} requests, "
            f"{stats.throttled} answered 429, {stats.failed} failed, {stats.rejected} lines rejected")
    print(f"  HTTP: {seconds:.1f}s; {note}", flush=True)
    if stats.first_error:
        print(f"  HTTP first error: {stats.first_error}", flush=True)
    if srv.returncode not in (0, -15, None):
        print(f"  note: loglens serve exited with {srv.returncode}; log tail:\n"
              f"{tail(log.read_text(errors='replace'))}")
    stored = stats_records(store_stats(loglens, str(data)))
    label = f"HTTP POST ndjson{' gzip' if gzip_body else ''} ({clients} clients)"
    return Row(label, lines, stored, seconds, dir_size(data), srv.peak_rss_mb, "http", note)


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="LogLens ingest bench (CLI, HTTP, bare sqlite3 peer).")
    ap.add_argument("--lines", type=int, default=1_000_000, help="log events to generate (default 1M)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--keep", action="store_true", help="keep the generated files and data dirs")
    ap.add_argument("--workdir", help="where to put the temporary directory (default: system tmp)")
    ap.add_argument("--clients", type=int, default=2, help="HTTP client threads (default 2)")
    ap.add_argument("--batch", type=int, default=5000, help="NDJSON lines per POST (default 5000)")
    ap.add_argument("--gzip", action="store_true", help="send the HTTP batches gzip-encoded")
    ap.add_argument("--only", default="peer,stages,cli-text,cli-ndjson,http",
                    help="comma-separated subset of: peer, stages, cli-text, cli-ndjson, http")
    ap.add_argument("--sqlite-peer", nargs=2, metavar=("TEXT", "DB"), help=argparse.SUPPRESS)
    ap.add_argument("--stages", nargs=2, metavar=("TEXT", "DATA"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.sqlite_peer:
        return sqlite_peer(*a.sqlite_peer)
    if a.stages:
        return stage_times(*a.stages)
    if a.lines <= 0:
        ap.error("--lines must be positive")
    only = {s.strip() for s in a.only.split(",") if s.strip()}
    unknown = only - {"peer", "stages", "cli-text", "cli-ndjson", "http"}
    if unknown:
        ap.error(f"unknown --only parts: {', '.join(sorted(unknown))}")

    try:
        loglens = find_loglens() if only - {"peer", "stages"} else ""
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="loglens-bench-ingest-", dir=a.workdir))
    rows: list[Row] = []
    raw = 0
    try:
        text, ndjson = work / "logs.txt", work / "logs.ndjson"
        t0 = time.perf_counter()
        raw = write_logs(str(text), a.lines, a.seed, "text", jobs=2)
        nd_size = write_logs(str(ndjson), a.lines, a.seed, "ndjson", jobs=2) if only & {"cli-ndjson",
                                                                                       "http"} else 0
        print(f"generated {a.lines:,} events in {time.perf_counter() - t0:.1f}s: text {raw / 1e6:,.1f} MB "
              f"({raw / a.lines:.0f} B/event), ndjson {nd_size / 1e6:,.1f} MB; in {work}", flush=True)
        print(f"machine: {machine_note()}", flush=True)
        if "peer" in only:
            rows.append(run_peer(text, work, a.lines))
            print(f"  peer: {rows[-1].seconds:.1f}s", flush=True)
        if "stages" in only:
            rows.extend(run_stages(text, work / "stages", a.lines))
        if "cli-text" in only:
            rows.append(run_cli(loglens, text, work / "cli-text", a.lines, "loglens ingest (text)"))
        if "cli-ndjson" in only:
            rows.append(run_cli(loglens, ndjson, work / "cli-ndjson", a.lines, "loglens ingest (ndjson)"))
        if "http" in only:
            rows.append(run_http(loglens, ndjson, work / "http", work, a.lines, a.clients, a.batch,
                                 a.gzip))
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        if rows:
            _report(rows, raw)
        return 1
    finally:
        if a.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    _report(rows, raw)
    return 0


def _report(rows: list[Row], raw: int) -> None:
    if not rows or raw <= 0:
        return
    print()
    print(f"raw text: {raw:,} bytes ({raw / rows[0].lines:.1f} B/line)")
    print(markdown_table(
        ["path", "lines", "stored", "seconds", "lines/s", "bytes/line on disk", "disk/raw ratio",
         "peak RSS MB"],
        [[r.path, fmt_int(r.lines), fmt_int(r.stored), fmt_num(r.seconds, 2), fmt_int(r.rate),
          fmt_num(r.disk / r.lines if r.disk else None), fmt_num(r.disk / raw if r.disk else None, 2),
          fmt_num(r.peak_mb, 0)] for r in rows],
    ))
    stages = [r for r in rows if r.kind == "stage"]
    if len(stages) == 2:
        one_core = max(r.seconds for r in stages)
        two_cores = sum(r.seconds for r in stages) / 2
        lines = stages[0].lines
        print(f"\nstages: `loglens ingest` (text) can reach at most {lines / one_core:,.0f} lines/s with one "
              f"core per stage, {lines / two_cores:,.0f} lines/s if two cores shared the work perfectly")
    print()
    checks: list[list[str]] = []
    for r in rows:
        if r.kind in ("peer", "stage"):
            continue
        target = TARGET_CLI if r.kind == "cli" else TARGET_HTTP
        checks.append([r.path, f"lines/s >= {target:,}", fmt_int(r.rate), verdict(r.rate >= target)])
        checks.append([r.path, f"disk <= {TARGET_DISK_RATIO}x raw", f"{r.disk / raw:.2f}x",
                       verdict(r.disk / raw <= TARGET_DISK_RATIO)])
        checks.append([r.path, f"peak RSS <= {TARGET_RSS_MB} MB", f"{r.peak_mb:.0f} MB",
                       verdict(r.peak_mb <= TARGET_RSS_MB)])
        if r.stored is not None:
            checks.append([r.path, "all lines stored", f"{r.stored:,} of {r.lines:,}",
                           verdict(r.stored == r.lines)])
    if checks:
        print(markdown_table(["path", "target", "measured", "result"], checks))
    for r in rows:
        if r.note:
            print(f"note ({r.path}): {r.note}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
