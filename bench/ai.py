"""AI analysis bench: anomalies on real labelled data, explain latency, pattern embedding throughput.

    .venv/bin/python bench/ai.py                         # everything (builds a 1M-event store)
    .venv/bin/python bench/ai.py --lines 200000          # quicker explain store
    .venv/bin/python bench/ai.py --data /tmp/aib --reuse # build the explain store once, rerun
    .venv/bin/python bench/ai.py --only anomalies,embed  # parts: anomalies, explain, embed, ask

* **anomalies**: BGL_2k from the shared Loghub sample is loaded (its label column removed first)
  and `AnomalyDetector` runs over its whole span; lines whose label is not ``-`` are real alerts.
  Reported: precision and recall of "this line belongs to a pattern flagged anomalous"
  (``new_pattern`` or ``pattern_spike``), for all flagged patterns and for those scoring at
  least each of ``--min-scores`` (the level weighting at work).
* **explain**: a store of N generated events (``bench/gen_logs.py``, NDJSON) and the time of
  ``Explainer.explain_record`` for ERROR records in it, without an LLM (target: 1 s at 1M lines),
  with the BM25 pattern index and, when installed, MiniLM (its one-time index build shown apart).
* **embed**: templates per second embedded by all-MiniLM-L6-v2 (the optional ``semantic`` extra)
  and by the BM25 fallback's indexing, over the templates of the explain store and Loghub.
* **ask**: `ask_accuracy` from `bench/ai_ask.py` when that file exists.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import BenchError, find_loglens

from loglens.analysis.anomalies import AnomalyConfig, AnomalyDetector
from loglens.analysis.explain import Explainer
from loglens.analysis.semantic import BM25, MiniLM, PatternIndex, minilm_available
from loglens.pipeline import Pipeline
from loglens.query.engine import QueryEngine
from loglens.store import open_store
from loglens.store.base import TimeRange

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "loghub-2k"
HOUR = 3600 * 10**9


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    print()


# ---------------------------------------------------------------------------------------- anomalies
def bench_anomalies(datasets: Path, interval_h: float, min_scores: list[float]) -> None:
    path = datasets / "BGL" / "BGL_2k.log"
    if not path.exists():
        print(f"anomalies: {path} not found, skipped\n")
        return
    labelled = []
    for raw in path.read_text(errors="replace").splitlines():
        label, _, line = raw.partition(" ")
        labelled.append((label, line))
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(tmp, writable=True)
        try:
            with Pipeline(store).start() as pipeline:
                pipeline.write([line for _, line in labelled], service="bgl")
            records = store.search(QueryEngine(store).plan(""), TimeRange(), 100_000).records
            by_line: dict[str, list[int]] = {}
            for rec in records:
                by_line.setdefault(rec.line, []).append(rec.template_id)
            stats = store.stats()
            assert stats.first_timestamp is not None and stats.last_timestamp is not None
            cfg = AnomalyConfig(lookback_ns=30 * 24 * HOUR)
            started = time.perf_counter()
            report = AnomalyDetector(store, cfg).detect(stats.first_timestamp, stats.last_timestamp,
                                                        interval_ns=int(interval_h * HOUR))
            took = time.perf_counter() - started
            resolve = {t.id: t.id for t in store.templates()}
            rows = []
            for floor in (0.0, *min_scores):
                flagged = {a.pattern_id for a in report.anomalies
                           if a.kind in ("new_pattern", "pattern_spike") and a.pattern_id is not None
                           and a.score >= floor}
                name = f"score >= {floor:g}" if floor else "all flagged patterns"
                tp = fp = fn = tn = 0
                for label, line in labelled:
                    tids = by_line.get(line)
                    if not tids:
                        continue
                    tid = resolve.get(tids[0], tids[0])
                    predicted = tid in flagged
                    actual = label != "-"
                    tp += predicted and actual
                    fp += predicted and not actual
                    fn += actual and not predicted
                    tn += not predicted and not actual
                precision = tp / (tp + fp) if tp + fp else 0.0
                recall = tp / (tp + fn) if tp + fn else 0.0
                rows.append((name, str(len(flagged)), f"{precision:.3f}", f"{recall:.3f}", str(tp), str(fp), str(fn)))
            kinds = Counter(a.kind for a in report.anomalies)
            print(f"anomalies on BGL_2k: {len(labelled)} lines, {sum(1 for lb, _ in labelled if lb != '-')} alert "
                  f"lines, {stats.templates} templates, buckets of {interval_h:g}h, detection {took:.2f}s; "
                  f"kinds: {dict(kinds)}")
            table(rows, ("patterns", "n", "precision", "recall", "TP", "FP", "FN"))
        finally:
            store.close()


# ------------------------------------------------------------------------------------------ explain
def build_store(data: Path, lines: int, reuse: bool) -> None:
    if reuse and data.exists():
        return
    from gen_logs import write_logs

    loglens = find_loglens()
    data.parent.mkdir(parents=True, exist_ok=True)
    src = data.parent / f"ai-bench-{lines}.ndjson"
    print(f"generating {lines:,} events ...", flush=True)
    write_logs(str(src), lines, fmt="ndjson")
    print("ingesting ...", flush=True)
    started = time.perf_counter()
    result = subprocess.run([loglens, "ingest", str(src), "--data", str(data)], capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"loglens ingest failed: {result.stderr[-2000:]}")
    print(f"ingested in {time.perf_counter() - started:.1f}s", flush=True)
    src.unlink()


def bench_explain(data: Path, lines: int, reuse: bool, runs: int) -> list[str]:
    build_store(data, lines, reuse)
    store = open_store(str(data))
    texts = [t.text for t in store.templates()]
    try:
        engine = QueryEngine(store)
        stats = store.stats()
        errors = engine.search("level:ERROR", limit=2000).records
        step = max(1, len(errors) // runs)
        sample = errors[::step][:runs]
        rows = []
        scorers: list[tuple[str, Any]] = [("bm25", BM25)]
        if minilm_available():
            scorers.append(("minilm", MiniLM))
        for name, factory in scorers:
            engine.patterns = PatternIndex(store, factory())
            started = time.perf_counter()
            engine.patterns.similar("warm up")  # the one-time index build (embeds every template)
            build = time.perf_counter() - started
            times = []
            for rec in sample:
                started = time.perf_counter()
                Explainer(engine).explain_record(rec.id)
                times.append(time.perf_counter() - started)
            rows.append((name, f"{stats.records:,}", str(len(texts)), f"{build:.2f}", str(len(times)),
                         f"{statistics.median(times):.3f}", f"{max(times):.3f}"))
        print(f"explain latency without an LLM (target <= 1 s), store {data}")
        table(rows, ("index", "records", "templates", "index build s", "runs", "median s", "max s"))
    finally:
        store.close()
    return texts


# -------------------------------------------------------------------------------------------- embed
def loghub_templates(datasets: Path) -> list[str]:
    out: list[str] = []
    for f in sorted(datasets.glob("*/*_templates.csv")):
        with f.open(newline="", errors="replace") as fh:
            out += [row["EventTemplate"] for row in csv.DictReader(fh) if row.get("EventTemplate")]
    return out


def bench_embed(texts: list[str]) -> None:
    rows = []
    if not texts:
        print("embed: no templates\n")
        return
    started = time.perf_counter()
    bm25 = BM25()
    bm25.fit(texts)
    fit = time.perf_counter() - started
    started = time.perf_counter()
    for q in ("disk is full", "connection timed out", "out of memory", "authentication failure"):
        bm25.scores(q)
    query = (time.perf_counter() - started) / 4
    rows.append(("bm25 (fallback)", str(len(texts)), f"{len(texts) / fit:,.0f}", f"{query * 1000:.2f}"))
    if minilm_available():
        started = time.perf_counter()
        model = MiniLM()
        load = time.perf_counter() - started
        model.encode(texts[:8])  # warm up
        started = time.perf_counter()
        model.fit(texts)
        took = time.perf_counter() - started
        started = time.perf_counter()
        for q in ("disk is full", "connection timed out", "out of memory", "authentication failure"):
            model.scores(q)
        query = (time.perf_counter() - started) / 4
        rows.append((f"all-MiniLM-L6-v2 (load {load:.1f}s)", str(len(set(texts))), f"{len(set(texts)) / took:,.0f}",
                     f"{query * 1000:.2f}"))
    else:
        rows.append(("all-MiniLM-L6-v2", "-", "not installed (pip install 'loglens[semantic]')", "-"))
    print(f"pattern indexing throughput (torch threads: {os.environ.get('OMP_NUM_THREADS', 'default')})")
    table(rows, ("scorer", "templates", "templates/s", "query ms"))


# ---------------------------------------------------------------------------------------------- ask
def bench_ask() -> None:
    if not (Path(__file__).resolve().parent / "ai_ask.py").exists():
        print("ask: bench/ai_ask.py not present, skipped\n")
        return
    from ai_ask import ask_accuracy  # type: ignore[import-not-found]

    result = ask_accuracy()
    print(f"ask accuracy: {result}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--lines", type=int, default=1_000_000, help="events in the explain store")
    ap.add_argument("--data", type=Path, default=None, help="explain store directory (default: a temp dir)")
    ap.add_argument("--reuse", action="store_true", help="reuse --data if it exists")
    ap.add_argument("--runs", type=int, default=10, help="records explained")
    ap.add_argument("--datasets", type=Path, default=DATASETS)
    ap.add_argument("--interval-hours", type=float, default=1.0, help="anomaly buckets on BGL")
    ap.add_argument("--min-scores", default="8,12,16", help="score floors to report precision/recall at")
    ap.add_argument("--only", default="anomalies,explain,embed,ask")
    args = ap.parse_args(argv)
    parts = set(args.only.split(","))
    try:
        if "anomalies" in parts:
            bench_anomalies(args.datasets, args.interval_hours, [float(x) for x in args.min_scores.split(",") if x])
        texts: list[str] = []
        if "explain" in parts:
            if args.data is None:
                with tempfile.TemporaryDirectory() as tmp:
                    texts = bench_explain(Path(tmp) / "data", args.lines, False, args.runs)
            else:
                texts = bench_explain(args.data, args.lines, args.reuse, args.runs)
        if "embed" in parts:
            bench_embed(texts + loghub_templates(args.datasets))
        if "ask" in parts:
            bench_ask()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
