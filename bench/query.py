"""Query bench: the storage bake-off queries through the LogLens HTTP API, beside `rg -c`.

    .venv/bin/python bench/query.py                              # 10,000,000 events
    .venv/bin/python bench/query.py --lines 200000               # quick check
    .venv/bin/python bench/query.py --data /tmp/qb --reuse       # build once, rerun the queries

Builds a store of N generated events with `loglens ingest` (or reuses it with --reuse), starts
`loglens serve` and runs each query 7 times over HTTP (keep-alive; the time is request to full
response), printing the median and the first run. Beside each, ripgrep over the raw text of the
same events, median of 3 runs, in the same run; and the counts of both, to check they agree.

The store is loaded from the NDJSON rendering of the events by default, so service, host and level
are fields whatever the text parser makes of the header; `--format text` loads the text file
instead. rg always searches the text file: both renderings hold the same events (same seed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    RG_MISSING,
    BenchError,
    dir_size,
    find_loglens,
    find_rg,
    fmt_int,
    fmt_num,
    machine_note,
    markdown_table,
    median,
    run_child,
    serve,
    tail,
    verdict,
)
from gen_logs import RARE_TERM, write_logs

START = "2026-11-20T00:00:00Z"
HOURS = 24


@dataclass
class Query:
    name: str
    path: str
    params: dict[str, Any]
    target_ms: float | None
    rg_args: list[str] | None  # pattern arguments for `rg -c ... FILE`
    count_params: dict[str, Any] | None = None  # /api/v1/count with these gives the comparable count
    note: str = ""
    rg_check: list[str] | None = None  # rg pattern for the count check only (not timed, not a peer)
    times_ms: list[float] = field(default_factory=list)
    rows: int | None = None
    error: str = ""
    count: int | None = None
    rg_ms: list[float] = field(default_factory=list)
    rg_count: int | None = None


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def build_queries() -> list[Query]:
    t0 = datetime.fromisoformat(START.replace("Z", "+00:00")).astimezone(UTC)
    t_end = t0 + timedelta(hours=HOURS) - timedelta(milliseconds=1)  # bounds are inclusive
    h0 = t0 + timedelta(hours=12)
    h1 = h0 + timedelta(hours=1) - timedelta(milliseconds=1)
    span = {"from": _iso(t0), "to": _iso(t_end)}
    hour = {"from": _iso(h0), "to": _iso(h1)}
    hour_prefix = h0.strftime("%Y-%m-%dT%H:")
    q2 = "timeout AND level:ERROR AND service:api-gateway"
    q8 = "service:billing AND (level:WARN OR level:ERROR)"
    return [
        Query("Q1 term `timeout` newest 100", "/api/v1/search", {"q": "timeout", **span, "limit": 100},
              20, ["-i", "-w", "timeout"], {"q": "timeout", **span}),
        Query(f"Q2 `{q2}` 1h newest 100", "/api/v1/search", {"q": q2, **hour, "limit": 100}, 50,
              ["-i", f"^{hour_prefix}\\S* +ERROR +api-gateway .*\\btimeout\\b"], {"q": q2, **hour}),
        Query('Q3 phrase `"connection refused"` newest 100', "/api/v1/search",
              {"q": '"connection refused"', **span, "limit": 100}, 20, ["-i", "-F", "connection refused"],
              {"q": '"connection refused"', **span}),
        Query("Q4 histogram 24h by level, 1m", "/api/v1/histogram", {"q": "", **span, "interval": "1m"},
              200, None, None, "rg n/a; count check: sum of buckets vs events (rg counts headers)"),
        Query("Q5 top 20 `message` of `level:ERROR`", "/api/v1/top",
              {"field": "message", "q": "level:ERROR", **span, "limit": 20}, None, None,
              {"q": "level:ERROR", **span}, "rg n/a; count check: ERROR events",
              rg_check=["^\\S+ +ERROR "]),
        Query(f"Q6 rare term `{RARE_TERM}` newest 100", "/api/v1/search",
              {"q": RARE_TERM, **span, "limit": 100}, 20, ["-i", "-w", RARE_TERM],
              {"q": RARE_TERM, **span}),
        Query(f"Q8 `{q8}` newest 100", "/api/v1/search", {"q": q8, **span, "limit": 100}, None,
              ["-i", "^\\S+ +(WARN|ERROR) +billing "], {"q": q8, **span}),
        Query("count `timeout`", "/api/v1/count", {"q": "timeout", **span}, None,
              ["-i", "-w", "timeout"]),
    ]


# --------------------------------------------------------------------------------------------------


def _rows_of(path: str, body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    if path.endswith("/search"):
        return len(body.get("records") or [])
    if path.endswith("/histogram"):
        return len(body.get("buckets") or [])
    if path.endswith("/top"):
        return len(body.get("values") or [])
    if path.endswith("/count"):
        c = body.get("count")
        return c if isinstance(c, int) else None
    return None


def run_queries(base: str, queries: list[Query], repeat: int) -> None:
    import httpx

    with httpx.Client(base_url=base, timeout=600) as client:
        client.get("/readyz")  # open the keep-alive connection
        for q in queries:
            attempt = 0
            while attempt < repeat:
                t = time.perf_counter()
                r = client.get(q.path, params=q.params)
                body = r.content
                elapsed_ms = (time.perf_counter() - t) * 1000
                if r.status_code != 200:
                    if attempt == 0 and q.path.endswith("/top") and q.params.get("field") == "message":
                        # the API does not take field=message: fall back to the template
                        q.note = (f"field=message rejected (HTTP {r.status_code}: {r.text[:120]}); "
                                  "used field=template")
                        q.params["field"] = "template"
                        q.name = q.name.replace("`message`", "`template`")
                        continue
                    q.error = f"HTTP {r.status_code}: {r.text[:200]}"
                    break
                q.times_ms.append(elapsed_ms)
                if attempt == 0:
                    parsed = json.loads(body)
                    q.rows = _rows_of(q.path, parsed)
                    if q.path.endswith("/count"):
                        q.count = q.rows
                    elif q.path.endswith("/histogram") and isinstance(parsed, dict):
                        q.count = sum(int(b.get("total", 0)) for b in parsed.get("buckets") or [])
                attempt += 1
            if q.count_params is not None and not q.error:
                r = client.get("/api/v1/count", params=q.count_params)
                if r.status_code == 200:
                    q.count = r.json().get("count")
                else:
                    q.note = (q.note + "; " if q.note else "") + f"count failed: HTTP {r.status_code}"
            print(f"  {q.name}: median {median(q.times_ms):,.1f} ms" + (f"  [{q.error}]" if q.error else ""),
                  flush=True)


def run_rg(rg: str, text: Path, queries: list[Query], repeat: int) -> None:
    for q in queries:
        if q.rg_check is not None:
            q.rg_count = rg_count(rg, text, q.rg_check)
        if q.rg_args is None:
            continue
        for _ in range(repeat):
            t = time.perf_counter()
            res = subprocess.run([rg, "-c", *q.rg_args, str(text)], capture_output=True, text=True)
            q.rg_ms.append((time.perf_counter() - t) * 1000)
            if res.returncode not in (0, 1):
                raise BenchError(f"rg failed: {res.stderr.strip()}")
            q.rg_count = int(res.stdout.strip() or 0)


def rg_count(rg: str, text: Path, args: list[str]) -> int:
    res = subprocess.run([rg, "-c", *args, str(text)], capture_output=True, text=True)
    if res.returncode not in (0, 1):
        raise BenchError(f"rg failed: {res.stderr.strip()}")
    return int(res.stdout.strip() or 0)


def rg_event_count(rg: str, text: Path) -> int:
    return rg_count(rg, text, [r"^\d{4}-\d\d-\d\dT"])


# --------------------------------------------------------------------------------------------------


def prepare(loglens: str, work: Path, lines: int, seed: int, fmt: str, reuse: bool) -> tuple[Path, Path]:
    text = work / f"logs-{lines}-s{seed}.txt"
    ndjson = work / f"logs-{lines}-s{seed}.ndjson"
    store = work / f"store-{lines}-s{seed}-{fmt}"
    marker = store.parent / (store.name + ".complete")
    if reuse and marker.exists() and text.exists():
        print(f"reusing {store} and {text}", flush=True)
        return text, store
    if store.exists():
        if not reuse and any(store.iterdir()):
            raise BenchError(f"{store} exists; pass --reuse to use it, or remove it")
        shutil.rmtree(store)
    t0 = time.perf_counter()
    if not text.exists() or not reuse:
        write_logs(str(text), lines, seed, "text", HOURS, START, jobs=2)
    src = text
    if fmt == "ndjson":
        if not ndjson.exists() or not reuse:
            write_logs(str(ndjson), lines, seed, "ndjson", HOURS, START, jobs=2)
        src = ndjson
    print(f"generated {lines:,} events in {time.perf_counter() - t0:.1f}s "
          f"(text {text.stat().st_size / 1e6:,.0f} MB)", flush=True)
    c = run_child([loglens, "ingest", str(src), "--data", str(store)])
    if c.returncode != 0:
        raise BenchError(f"`loglens ingest` exited with {c.returncode}:\n{tail(c.err or c.out)}")
    size = dir_size(store)
    print(f"ingested {src.name} in {c.seconds:.1f}s ({lines / c.seconds:,.0f} lines/s, peak RSS "
          f"{c.peak_rss_mb:.0f} MB, {size / 1e6:,.0f} MB on disk = {size / text.stat().st_size:.2f}x "
          f"the text); loglens said:\n{tail(c.out + chr(10) + c.err, 3)}", flush=True)
    marker.write_text(json.dumps({"lines": lines, "seed": seed, "format": fmt}))
    return text, store


def report(queries: list[Query], rg_ok: bool, events: int | None, rg_events: int | None) -> None:
    rows = []
    for q in queries:
        med = median(q.times_ms) if q.times_ms and not q.error else None
        if q.target_ms is None:
            target, ok = "-", None
        else:
            target, ok = f"<= {q.target_ms:.0f} ms", (med is not None and med <= q.target_ms)
        rows.append([
            q.name,
            "ERROR" if q.error else fmt_num(med),
            fmt_num(q.times_ms[0]) if q.times_ms else "n/a",
            "n/a" if q.rows is None else f"{q.rows:,}",
            fmt_num(median(q.rg_ms)) if q.rg_ms else "n/a",
            target,
            verdict(ok) if q.target_ms is not None else "-",
        ])
    print()
    print(markdown_table(["query", "LogLens median ms", "first ms", "rows returned", "rg ms", "target",
                          "result"], rows))
    print()
    checks = []
    for q in queries:
        if q.name.startswith("Q4"):
            ours, theirs = q.count, rg_events
        else:
            ours, theirs = q.count, q.rg_count
        if ours is None and theirs is None:
            continue
        agree = None if ours is None or theirs is None else ours == theirs
        checks.append([q.name, fmt_int(ours), fmt_int(theirs), verdict(agree)])
    if checks:
        print(markdown_table(["count check", "LogLens count", "rg -c", "agree"], checks))
    if events is not None:
        print(f"events generated: {events:,}")
    for q in queries:
        if q.rows == 0 and not q.error:
            print(f"warning ({q.name}): 0 rows, so its time is that of an empty result (with --format "
                  "text, service/host are fields only if the text parser extracts them)")
        if q.error:
            print(f"error ({q.name}): {q.error}")
        if q.note:
            print(f"note ({q.name}): {q.note}")
    if not rg_ok:
        print(f"note: {RG_MISSING}")
    print("rg: `rg -c` over the raw text (page-cached), single file; -i -w for terms, -F for the phrase, "
          "a regex on the header for Q2/Q8.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="LogLens query bench (bake-off queries vs rg -c).")
    ap.add_argument("--lines", type=int, default=10_000_000, help="events in the store (default 10M)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--data", help="work directory holding the raw text and the store (kept)")
    ap.add_argument("--reuse", action="store_true", help="reuse the store in --data if it is complete")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    ap.add_argument("--format", choices=("ndjson", "text"), default="ndjson",
                    help="rendering loaded into the store (default ndjson; rg always uses text)")
    ap.add_argument("--repeat", type=int, default=7, help="runs per query (default 7)")
    ap.add_argument("--rg-repeat", type=int, default=3, help="runs per rg command (default 3)")
    a = ap.parse_args(argv)
    if a.lines <= 0:
        ap.error("--lines must be positive")
    if a.reuse and not a.data:
        ap.error("--reuse needs --data DIR")
    try:
        loglens = find_loglens()
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rg = find_rg()
    if rg is None:
        print(f"warning: {RG_MISSING}", file=sys.stderr)
    if a.data:
        work = Path(a.data).resolve()
        work.mkdir(parents=True, exist_ok=True)
        cleanup = False
    else:
        work = Path(tempfile.mkdtemp(prefix="loglens-bench-query-"))
        cleanup = not a.keep
    queries = build_queries()
    try:
        text, store = prepare(loglens, work, a.lines, a.seed, a.format, a.reuse)
        print(f"machine: {machine_note()}", flush=True)
        with serve(loglens, str(store), str(work / "serve.log")) as (_child, base):
            run_queries(base, queries, a.repeat)
        rg_events = None
        if rg:
            run_rg(rg, text, queries, a.rg_repeat)
            rg_events = rg_event_count(rg, text)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if cleanup:
            shutil.rmtree(work, ignore_errors=True)
        elif not a.data:
            print(f"kept: {work}")
    report(queries, rg is not None, a.lines, rg_events)
    return 0


if __name__ == "__main__":
    sys.exit(main())
