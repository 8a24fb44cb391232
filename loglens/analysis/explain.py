"""Explain an error: the facts around one record (or a query's records), computed from the store.

What it is (its pattern, first seen, how often, its trend), what changed around it (patterns,
services, hosts and attribute values over-represented in the window against the baseline just
before, ranked, in the manner of a log rate analysis), the same trace's other records, the most
similar patterns and when they occurred (semantic search), and sample lines with ids.

With an LLM client the facts are narrated: a short summary, a likely cause and next steps that
cite record and pattern ids. The narration is cached per pattern and window, so the same error in
the same window is never paid for twice. Without an LLM everything else is returned as is.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, OrderedDict
from typing import Any

import orjson

from loglens.model import LogRecord
from loglens.query.engine import QueryEngine, format_ts, record_dict
from loglens.query.planning import Plan
from loglens.store.base import TimeRange

MINUTE = 60 * 10**9
#: Around one record: this much before it (and a third of it after) is "the window".
WINDOW_NS = 15 * MINUTE
#: The baseline is the stretch just before the window, this many times as long.
BASELINE_FACTOR = 4
#: Records read per side to compare hosts and attribute values (newest first).
SAMPLE = 2000
TREND_POINTS = 24
#: Attribute values longer than this, or ids that are unique per record, say nothing about a change.
MAX_VALUE_LEN = 80
SKIP_ATTRIBUTES = frozenset({"trace_id", "span_id", "request_id", "id", "timestamp", "@timestamp", "time"})
SYSTEM_PROMPT = (
    "You are LogLens, a log analysis assistant. You are given facts computed from the logs about one "
    "error: its pattern, what changed around it, related records. Answer in at most 120 words with three "
    "short sections: Summary, Likely cause, Next steps. Cite record ids as [record:ID] and pattern ids as "
    "[pattern:ID], only ids present in the facts. Do not invent numbers; say so when the facts are not enough."
)


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _over_represented(window: Counter[str], baseline: Counter[str], w_len: float, b_len: float,
                      min_count: int = 3, limit: int = 10) -> list[dict[str, Any]]:
    """Values whose rate in the window exceeds the baseline's, by a Poisson z-score, best first."""
    ratio = w_len / b_len if b_len else 0.0
    rows: list[dict[str, Any]] = []
    for value, n in window.items():
        if n < min_count:
            continue
        before = baseline.get(value, 0)
        expected = before * ratio
        score = (n - expected) / math.sqrt(expected + 1.0)
        if score <= 2.0 or n <= expected * 1.5:
            continue
        rows.append({"value": value, "window": n, "baseline": before, "expected": round(expected, 2),
                     "score": round(score, 2)})
    rows.sort(key=lambda r: (-float(r["score"]), str(r["value"])))
    return rows[:limit]


class NarrationCache:
    """LLM narrations per (pattern, window), least recently used evicted."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._items: OrderedDict[tuple[int, int, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int, int]) -> str | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[int, int, int], value: str) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class Explainer:
    def __init__(self, engine: QueryEngine, llm: Any = None, cache: NarrationCache | None = None) -> None:
        self.engine = engine
        self.store = engine.store
        self.llm = llm  # loglens.llm.LLMClient or None
        self.cache = cache or NarrationCache()

    def _plan(self, q: str) -> Plan:
        return self.engine.plan(q)

    # ------------------------------------------------------------------ entry points
    def explain_record(self, record_id: int, window_ns: int = WINDOW_NS, narrate: bool = True) -> dict[str, Any]:
        record = self.store.get(record_id)
        if record is None:
            raise KeyError(record_id)
        lo = record.timestamp - window_ns
        hi = record.timestamp + window_ns // 3
        return self._explain(record, None, TimeRange(lo, hi), narrate)

    def explain_query(self, q: str, start: str | None, end: str | None, narrate: bool = True) -> dict[str, Any]:
        """The most frequent pattern among the records ``q`` matches in the window, explained."""
        time = self.engine.time_range(start, end)
        plan = self._plan(q)
        counts = self.store.template_counts(plan, time)
        if not counts:
            raise LookupError("no records match the query in that window")
        tid = max(counts, key=lambda t: (sum(counts[t].values()), -t))
        newest = self.store.search(self._plan(f"({q}) template:{tid}" if q.strip() else f"template:{tid}"),
                                   time, 1).records
        record = newest[0]
        lo = time.start if time.start is not None else record.timestamp - WINDOW_NS
        hi = time.end if time.end is not None else record.timestamp + WINDOW_NS // 3
        return self._explain(record, q, TimeRange(lo, hi), narrate)

    # ------------------------------------------------------------------ the facts
    def _explain(self, record: LogRecord, q: str | None, window: TimeRange, narrate: bool) -> dict[str, Any]:
        assert window.start is not None and window.end is not None
        length = window.end - window.start + 1
        baseline = TimeRange(window.start - BASELINE_FACTOR * length, window.start - 1)
        tid = record.template_id
        templates = {t.id: t for t in self.store.templates()}
        template = templates.get(tid)
        facts: dict[str, Any] = {
            "record": record_dict(record),
            "query": q,
            "window": {"from": format_ts(window.start), "to": format_ts(window.end)},
            "baseline": {"from": format_ts(baseline.start or 0), "to": format_ts(baseline.end or 0)},
            "pattern": self._pattern(tid, template, window, baseline),
            "changes": self._changes(window, baseline, templates, float(length), float(BASELINE_FACTOR * length)),
            "trace": self._trace(record),
            "similar_patterns": self._similar(tid, template.text if template else record.message),
            "samples": [record_dict(r) for r in self.store.search(self._plan(f"template:{tid}"), window, 5).records],
        }
        facts["llm"] = self._narrate(facts, tid, window) if narrate else None
        return facts

    def _pattern(self, tid: int, template: Any, window: TimeRange, baseline: TimeRange) -> dict[str, Any]:
        plan = self._plan(f"template:{tid}")
        in_window = self.store.count(plan, window)
        in_baseline = self.store.count(plan, baseline)
        assert window.start is not None and window.end is not None
        # the trend: the last day up to the window's end, in whole buckets ending with the window's
        interval = 24 * 60 * MINUTE // TREND_POINTS
        base = (window.end // interval - (TREND_POINTS - 1)) * interval
        trend = [0] * TREND_POINTS
        for start, n in self.store.template_trends([tid], TimeRange(base, window.end), interval).get(tid, {}).items():
            i = (start - base) // interval
            if 0 <= i < TREND_POINTS:
                trend[i] += n
        return {
            "id": tid,
            "template": template.text if template else None,
            "first_seen": format_ts(template.first_seen) if template and template.first_seen else None,
            "last_seen": format_ts(template.last_seen) if template and template.last_seen else None,
            "count_total": template.count if template else None,
            "count_window": in_window,
            "count_baseline": in_baseline,
            "new_in_window": bool(template and template.first_seen >= window.start),
            "trend": trend,
            "trend_from": format_ts(base),
            "trend_interval_ms": interval // 10**6,
        }

    def _changes(self, window: TimeRange, baseline: TimeRange, templates: dict[int, Any], w_len: float,
                 b_len: float) -> dict[str, Any]:
        everything = self._plan("")
        w_patterns = self.store.template_counts(everything, window)
        b_patterns = self.store.template_counts(everything, baseline)
        patterns = _over_represented(Counter({str(t): sum(v.values()) for t, v in w_patterns.items()}),
                                     Counter({str(t): sum(v.values()) for t, v in b_patterns.items()}), w_len, b_len)
        for row in patterns:
            t = templates.get(int(row["value"]))
            row["id"] = int(row.pop("value"))
            row["template"] = t.text if t else None
        services = _over_represented(
            Counter({v.value: v.count for v in self.store.top(everything, window, "service", 1000)}),
            Counter({v.value: v.count for v in self.store.top(everything, baseline, "service", 1000)}), w_len, b_len)
        # hosts and attribute values: from a sample of each side (proportions, not rates)
        w_sample = self.store.search(everything, window, SAMPLE).records
        b_sample = self.store.search(everything, baseline, SAMPLE).records
        w_fields, b_fields = _field_values(w_sample), _field_values(b_sample)
        hosts = _over_represented(w_fields.pop("host", Counter()), b_fields.pop("host", Counter()),
                                  float(len(w_sample) or 1), float(len(b_sample) or 1))
        attributes = []
        for name, counter in w_fields.items():
            for row in _over_represented(counter, b_fields.get(name, Counter()), float(len(w_sample) or 1),
                                         float(len(b_sample) or 1), limit=3):
                attributes.append({"field": name, **row})
        attributes.sort(key=lambda r: (-r["score"], r["field"], r["value"]))
        return {"patterns": patterns, "services": services, "hosts": hosts, "attributes": attributes[:10],
                "sampled": {"window": len(w_sample), "baseline": len(b_sample)}}

    def _trace(self, record: LogRecord) -> list[dict[str, Any]]:
        if not record.trace_id:
            return []
        found = self.store.search(self._plan(f"trace_id:{_q(record.trace_id)}"), TimeRange(), 50).records
        return [record_dict(r) for r in sorted(found, key=lambda r: (r.timestamp, r.id)) if r.id != record.id]

    def _similar(self, tid: int, text: str) -> list[dict[str, Any]]:
        try:
            index = self.engine.pattern_index()
            # "most similar" even when nothing is as close as a similar:"..." query demands
            matches = index.similar(text, limit=6, threshold=index.threshold / 2)
        except Exception:  # the optional model failing must not take the facts down
            return []
        return [{"id": m.template_id, "template": m.template, "score": m.score, "count": m.count,
                 "first_seen": format_ts(m.first_seen) if m.first_seen else None,
                 "last_seen": format_ts(m.last_seen) if m.last_seen else None}
                for m in matches if m.template_id != tid][:5]

    # ------------------------------------------------------------------ the narration
    def _narrate(self, facts: dict[str, Any], tid: int, window: TimeRange) -> dict[str, Any] | None:
        if self.llm is None:
            return None
        assert window.start is not None and window.end is not None
        key = (tid, window.start // MINUTE, window.end // MINUTE)
        cached = self.cache.get(key)
        if cached is not None:
            return {"text": cached, "cached": True}
        from loglens.llm import LLMError, Message

        brief = {k: facts[k] for k in ("record", "window", "pattern", "changes", "similar_patterns")}
        brief["trace"] = facts["trace"][:10]
        brief["samples"] = [{"id": s["id"], "line": s["line"][:300]} for s in facts["samples"]]
        try:
            text = self.llm.complete([Message("user", "Explain this error from these facts:\n"
                                              + orjson.dumps(brief).decode())], system=SYSTEM_PROMPT)
        except LLMError as exc:
            return {"error": str(exc), "cached": False}
        self.cache.put(key, text)
        return {"text": text, "cached": False}


def _field_values(records: list[LogRecord]) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {"host": Counter()}
    for rec in records:
        if rec.host:
            out["host"][rec.host] += 1
        for name, value in rec.attributes.items():
            if name in SKIP_ATTRIBUTES or isinstance(value, dict | list):
                continue
            text = str(value)
            if len(text) > MAX_VALUE_LEN:
                continue
            out.setdefault(name, Counter())[text] += 1
    return out
