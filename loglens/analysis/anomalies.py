"""Anomalies computed on demand from the store's rollups: what changed in a window, per service.

The window ``[from, to]`` is cut into buckets of one interval. Every bucket is compared with the
``baseline`` buckets just before it (a sliding window) using robust statistics: the median and
the median absolute deviation (MAD), so one earlier burst does not hide the next one. A bucket is
anomalous when its robust z-score passes ``threshold`` *and* the change is large in absolute
terms (a minimum volume, at least twice or at most half the baseline), so quiet patterns do not
flap. Consecutive anomalous buckets of the same series are reported as one anomaly.

Kinds:

``new_pattern``
    a template a service has not logged in the lookback before (scored by its level and count);
``pattern_spike`` / ``pattern_drop``
    a template's rate in one service jumps or falls against its own recent baseline (a spike's
    score is weighted by the template's level: ERROR x1, FATAL x1.33, WARN x0.67, INFO x0.33);
``service_spike`` / ``service_drop``
    the same for everything a service logs;
``error_share``
    the share of ERROR and FATAL records of a service rises;
``host_silent``
    a host that logged steadily logs nothing.

Only the store interface is used (``histogram`` over rollups, ``template_counts`` per bucket,
``count``/``search`` for evidence), so any backend serves it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loglens.model import LogRecord
from loglens.query.engine import format_ts
from loglens.query.planning import Plan, plan_query
from loglens.query.timerange import now_ns
from loglens.store.base import Store, TimeRange

MINUTE = 60 * 10**9
HOUR = 60 * MINUTE
#: Interval candidates for ``interval=auto``: the smallest giving at most ``MAX_BUCKETS`` buckets.
AUTO_STEPS: Sequence[int] = (
    MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR,
    6 * HOUR, 12 * HOUR, 24 * HOUR, 7 * 24 * HOUR,
)
MAX_BUCKETS = 30
#: A new pattern's weight by the highest level it was logged at.
LEVEL_WEIGHT: dict[str, float] = {
    "FATAL": 4.0, "ERROR": 3.0, "WARN": 2.0, "INFO": 1.0, "UNKNOWN": 1.0, "DEBUG": 0.5, "TRACE": 0.5,
}
ERROR_LEVELS = ("ERROR", "FATAL")
KINDS = ("new_pattern", "pattern_spike", "pattern_drop", "service_spike", "service_drop", "error_share",
         "host_silent")
#: Scores are capped so one huge burst does not dwarf everything else in a ranking.
MAX_SCORE = 100.0
MAD_SCALE = 1.4826  # MAD * this estimates the standard deviation of normal data


@dataclass(slots=True)
class AnomalyConfig:
    baseline: int = 12  # buckets before each bucket it is compared with
    min_baseline: int = 4  # buckets with data a series needs before it is judged
    threshold: float = 4.0  # robust z-score
    min_volume: int = 10  # records per bucket: a spike needs this many, a drop needs a baseline this high
    ratio: float = 2.0  # a spike is at least ratio x the baseline, a drop at most 1/ratio of it
    min_share_delta: float = 0.1  # error share must rise by at least this (0.1 = 10 points)
    lookback_ns: int = 7 * 24 * HOUR  # a pattern is new for a service if unseen this long
    max_hosts: int = 200
    examples: int = 3


@dataclass(slots=True)
class Anomaly:
    kind: str
    score: float
    start: int  # ns, the first anomalous bucket's start
    end: int  # ns, the last anomalous bucket's end (inclusive)
    service: str
    pattern_id: int | None = None
    pattern: str | None = None
    host: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    example_ids: list[int] = field(default_factory=list)

    def key(self) -> tuple[str, str, int | None, str | None]:
        return (self.kind, self.service, self.pattern_id, self.host)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "score": round(self.score, 2),
            "window": {"from": format_ts(self.start), "to": format_ts(self.end)},
            "service": self.service,
            "pattern_id": self.pattern_id,
            "pattern": self.pattern,
            "host": self.host,
            "evidence": {**self.evidence, "example_ids": [str(i) for i in self.example_ids]},
        }


@dataclass(slots=True)
class AnomalyReport:
    start: int
    end: int
    interval_ns: int
    anomalies: list[Anomaly]

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": format_ts(self.start), "to": format_ts(self.end), "interval_ms": self.interval_ns // 10**6,
            "anomalies": [a.to_dict() for a in self.anomalies],
        }


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def robust_baseline(values: Sequence[float]) -> tuple[float, float]:
    """Median and MAD of ``values``."""
    med = statistics.median(values)
    mad = statistics.median([abs(v - med) for v in values])
    return med, mad


def rate_z(x: float, baseline: Sequence[float]) -> tuple[float, float]:
    """Robust z-score of a count against baseline counts, and the baseline median.

    The spread is at least the Poisson noise of the median (``sqrt(median)``, and 1), so a series
    that was perfectly flat does not turn every small wobble into a huge score.
    """
    med, mad = robust_baseline(baseline)
    spread = max(MAD_SCALE * mad, math.sqrt(max(med, 1.0)))
    return (x - med) / spread, med


def auto_interval(span_ns: int) -> int:
    return next((s for s in AUTO_STEPS if span_ns / s <= MAX_BUCKETS), AUTO_STEPS[-1])


def level_weight(levels: dict[str, int]) -> float:
    return max((LEVEL_WEIGHT.get(name, 1.0) for name, n in levels.items() if n), default=1.0)


class _Series:
    """Counts per bucket for one thing (a service, a pattern in a service, a host)."""

    __slots__ = ("counts",)

    def __init__(self, n: int) -> None:
        self.counts = [0.0] * n


class AnomalyDetector:
    def __init__(self, store: Store, config: AnomalyConfig | None = None) -> None:
        self.store = store
        self.config = config or AnomalyConfig()

    def _plan(self, query: str) -> Plan:
        return plan_query(query, ())

    # ------------------------------------------------------------------ the window
    def detect(self, start: int | None = None, end: int | None = None, service: str | None = None,
               interval_ns: int | None = None, kinds: Iterable[str] | None = None,
               min_score: float = 0.0) -> AnomalyReport:
        """Anomalies in ``[start, end]`` (ns; ``end`` defaults to the newest record, ``start`` to six
        hours before it), optionally of one service, scoring at least ``min_score``, ranked by score."""
        cfg = self.config
        if end is None:  # open end: now, or the newest record when no start is given either
            last = self.store.stats().last_timestamp if start is None else None
            end = last if last is not None else now_ns()
        if start is None:
            start = end - 6 * HOUR
        if start > end:
            raise ValueError("from is after to")
        interval = interval_ns or auto_interval(end - start + 1)
        first = start // interval * interval
        n_window = (end - first) // interval + 1
        if n_window > 1 and (end - (first + (n_window - 1) * interval) + 1) * 2 < interval:
            n_window -= 1  # a last bucket less than half covered is too little to judge: left out
        hist_lo = first - cfg.baseline * interval
        n = cfg.baseline + n_window
        starts = [hist_lo + i * interval for i in range(n)]
        # the last bucket may be cut by ``end``: expectations are scaled by how much of it is covered
        coverage = [1.0] * n
        coverage[-1] = max(1e-9, min(1.0, (end - starts[-1] + 1) / interval))
        wanted = set(kinds) if kinds else set(KINDS)
        history = TimeRange(hist_lo, end)

        services = [service] if service else [
            v.value for v in self.store.top(self._plan(""), history, "service", 10_000)]
        templates = {t.id: t for t in self.store.templates()}
        found: list[Anomaly] = []
        for svc in services:
            svc_plan = self._plan(f"service:{quote(svc)}")
            totals = _Series(n)
            errors = _Series(n)
            for bucket in self.store.histogram(svc_plan, history, interval):
                i = (bucket.start - hist_lo) // interval
                if 0 <= i < n:
                    totals.counts[i] += bucket.total
                    errors.counts[i] += sum(bucket.counts.get(name, 0) for name in ERROR_LEVELS)
            if not any(totals.counts):
                continue
            if wanted & {"service_spike", "service_drop"}:
                found += self._rates(totals.counts, coverage, cfg.baseline, starts, interval, "service", svc,
                                     None, None, wanted)
            if "error_share" in wanted:
                found += self._error_share(totals.counts, errors.counts, starts, interval, svc, cfg.baseline)
            if wanted & {"new_pattern", "pattern_spike", "pattern_drop"}:
                found += self._patterns(svc, svc_plan, totals.counts, starts, interval, end, coverage, templates,
                                        wanted)
        if "host_silent" in wanted:
            found += self._hosts(service, history, starts, interval, coverage, cfg.baseline)
        found = [a for a in found if a.score >= min_score]
        for anomaly in found:
            anomaly.example_ids = self._examples(anomaly)
        found.sort(key=lambda a: (-a.score, a.start, a.kind, a.service, a.pattern_id or 0, a.host or ""))
        return AnomalyReport(start, end, interval, found)

    # ------------------------------------------------------------------ rates
    def _rates(self, counts: list[float], coverage: list[float], first: int, starts: list[int], interval: int,
               what: str, svc: str, pattern_id: int | None, pattern: str | None,
               wanted: set[str]) -> list[Anomaly]:
        """Spikes and drops of one series over the buckets from index ``first`` on."""
        cfg = self.config
        flagged: list[tuple[int, str, float, float]] = []  # bucket, kind, score, baseline median
        active = [i for i, c in enumerate(counts) if c]
        if not active:
            return []
        born = active[0]  # a series is judged only once it has a history
        clean = list(range(born, min(first, len(counts))))  # buckets a baseline may use
        for i in range(max(first, born), len(counts)):
            base = [counts[j] for j in clean[-cfg.baseline:]]
            if len(base) < cfg.min_baseline:
                clean.append(i)
                continue
            x = counts[i] / coverage[i]
            z, med = rate_z(x, base)
            if x >= cfg.min_volume and x >= cfg.ratio * med + 1 and z >= cfg.threshold:
                flagged.append((i, f"{what}_spike", z, med))
            elif med >= cfg.min_volume and x <= med / cfg.ratio and z <= -cfg.threshold:
                flagged.append((i, f"{what}_drop", -z, med))
            else:
                clean.append(i)  # an anomalous bucket does not become the norm while it lasts
        out = []
        for kind, run in _runs(flagged):
            if kind not in wanted:
                continue
            idx = [r[0] for r in run]
            out.append(Anomaly(
                kind=kind, score=min(MAX_SCORE, max(r[2] for r in run)), start=starts[idx[0]],
                end=starts[idx[-1]] + interval - 1, service=svc, pattern_id=pattern_id, pattern=pattern,
                evidence={
                    "before": {"per_bucket_median": run[0][3], "buckets": len(counts[:idx[0]][-cfg.baseline:]),
                               "count": int(sum(counts[max(0, idx[0] - cfg.baseline):idx[0]]))},
                    "after": {"count": int(sum(counts[i] for i in idx)), "per_bucket": [int(counts[i]) for i in idx]},
                }))
        return out

    def _error_share(self, totals: list[float], errors: list[float], starts: list[int], interval: int,
                     svc: str, first: int) -> list[Anomaly]:
        cfg = self.config
        shares = [e / t if t else None for e, t in zip(errors, totals, strict=True)]
        flagged: list[tuple[int, str, float, float]] = []
        clean = [i for i in range(min(first, len(totals))) if shares[i] is not None]
        for i in range(first, len(totals)):
            if totals[i] < cfg.min_volume:
                continue
            base = [shares[j] or 0.0 for j in clean[-cfg.baseline:]]
            if len(base) < cfg.min_baseline:
                clean.append(i)
                continue
            share = shares[i]
            assert share is not None
            med, mad = robust_baseline(base)
            spread = max(MAD_SCALE * mad, math.sqrt(max(med * (1 - med), 0.0) / totals[i]), 0.01)
            z = (share - med) / spread
            if share - med >= cfg.min_share_delta and z >= cfg.threshold:
                flagged.append((i, "error_share", z, med))
            else:
                clean.append(i)
        out = []
        for _, run in _runs(flagged):
            idx = [r[0] for r in run]
            before_lo = max(0, idx[0] - cfg.baseline)
            out.append(Anomaly(
                kind="error_share", score=min(MAX_SCORE, max(r[2] for r in run)), start=starts[idx[0]],
                end=starts[idx[-1]] + interval - 1, service=svc,
                evidence={
                    "before": {"error_share_median": round(run[0][3], 4),
                               "errors": int(sum(errors[before_lo:idx[0]])),
                               "count": int(sum(totals[before_lo:idx[0]]))},
                    "after": {"error_share": round(sum(errors[i] for i in idx) / sum(totals[i] for i in idx), 4),
                              "errors": int(sum(errors[i] for i in idx)), "count": int(sum(totals[i] for i in idx))},
                }))
        return out

    # ------------------------------------------------------------------ patterns
    def _patterns(self, svc: str, svc_plan: Plan, totals: list[float], starts: list[int], interval: int,
                  end: int, coverage: list[float], templates: dict[int, Any], wanted: set[str]) -> list[Anomaly]:
        cfg = self.config
        n = len(starts)
        series: dict[int, list[float]] = {}
        levels: dict[int, dict[str, int]] = {}
        for i, lo in enumerate(starts):
            if not totals[i]:
                continue
            hi = min(end, lo + interval - 1)
            for tid, by_level in self.store.template_counts(svc_plan, TimeRange(lo, hi)).items():
                series.setdefault(tid, [0.0] * n)[i] += sum(by_level.values())
                if i >= cfg.baseline:
                    agg = levels.setdefault(tid, {})
                    for name, c in by_level.items():
                        agg[name] = agg.get(name, 0) + c
        active = [i for i, t in enumerate(totals) if t]
        svc_born = active[0] if active else n
        out: list[Anomaly] = []
        for tid, counts in series.items():
            template = templates.get(tid)
            text = template.text if template else None
            seen = [i for i, c in enumerate(counts) if c]
            first_i = seen[0]
            if "new_pattern" in wanted and first_i >= cfg.baseline:
                # new for this service: its history must be long enough to say so, and the pattern
                # absent from the whole lookback, not only from the baseline buckets
                history_buckets = sum(1 for i in active if i < first_i)
                if history_buckets >= cfg.min_baseline and not self._seen_before(svc, tid, starts[first_i]):
                    total = int(sum(counts[first_i:]))
                    lv = levels.get(tid, {})
                    score = level_weight(lv) * (1.0 + math.log2(1 + total))
                    out.append(Anomaly(
                        kind="new_pattern", score=min(MAX_SCORE, score), start=starts[first_i],
                        end=min(end, starts[seen[-1]] + interval - 1), service=svc, pattern_id=tid, pattern=text,
                        evidence={"before": {"count": 0, "lookback_ms": cfg.lookback_ns // 10**6},
                                  "after": {"count": total, "levels": dict(sorted(lv.items()))},
                                  "first_seen": format_ts(template.first_seen) if template and template.first_seen
                                  else None}))
                    continue
            if wanted & {"pattern_spike", "pattern_drop"}:
                counts_from = [c if i >= svc_born else 0.0 for i, c in enumerate(counts)]
                factor = level_weight(levels.get(tid, {})) / LEVEL_WEIGHT["ERROR"]
                for anomaly in self._rates(counts_from, coverage, cfg.baseline, starts, interval, "pattern", svc, tid,
                                           text, wanted):
                    if anomaly.kind == "pattern_spike":  # a burst of errors matters more than one of INFO lines
                        anomaly.score = min(MAX_SCORE, anomaly.score * factor)
                        anomaly.evidence["level_factor"] = round(factor, 2)
                    out.append(anomaly)
        return out

    def _seen_before(self, svc: str, template_id: int, before: int) -> bool:
        plan = self._plan(f"service:{quote(svc)} template:{template_id}")
        lo = before - self.config.lookback_ns
        return self.store.count(plan, TimeRange(lo, before - 1)) > 0

    # ------------------------------------------------------------------ hosts
    def _hosts(self, service: str | None, history: TimeRange, starts: list[int], interval: int,
               coverage: list[float], first: int) -> list[Anomaly]:
        cfg = self.config
        n = len(starts)
        hist_lo = starts[0]
        out: list[Anomaly] = []
        hosts = [h for h in self.store.values("host") if h][: cfg.max_hosts]
        for host in hosts:
            query = f"host:{quote(host)}" + (f" service:{quote(service)}" if service else "")
            counts = [0.0] * n
            for bucket in self.store.histogram(self._plan(query), history, interval):
                i = (bucket.start - hist_lo) // interval
                if 0 <= i < n:
                    counts[i] += bucket.total
            if not any(counts):
                continue
            flagged: list[tuple[int, str, float, float]] = []
            clean = list(range(min(first, n)))
            for i in range(first, n):
                base = [counts[j] for j in clean[-cfg.baseline:]]
                if len(base) < cfg.min_baseline:
                    clean.append(i)
                    continue
                med, _ = robust_baseline(base)
                expected = med * coverage[i]
                if counts[i] == 0 and expected >= cfg.min_volume:
                    flagged.append((i, "host_silent", math.sqrt(expected), med))
                else:
                    clean.append(i)
            for _, run in _runs(flagged):
                idx = [r[0] for r in run]
                svc = service or self._host_service(host, starts[idx[0]])
                out.append(Anomaly(
                    kind="host_silent", score=min(MAX_SCORE, max(r[2] for r in run)), start=starts[idx[0]],
                    end=starts[idx[-1]] + interval - 1, service=svc, host=host,
                    evidence={"before": {"per_bucket_median": run[0][3],
                                         "count": int(sum(counts[max(0, idx[0] - cfg.baseline):idx[0]]))},
                              "after": {"count": 0, "buckets": len(idx)}}))
        return out

    def _host_service(self, host: str, before: int) -> str:
        page = self.store.search(self._plan(f"host:{quote(host)}"), TimeRange(None, before - 1), 1)
        return page.records[0].service if page.records else ""

    # ------------------------------------------------------------------ evidence
    def _examples(self, anomaly: Anomaly) -> list[int]:
        limit = self.config.examples
        parts = [f"service:{quote(anomaly.service)}"] if anomaly.service else []
        window = TimeRange(anomaly.start, anomaly.end)
        if anomaly.kind == "host_silent" and anomaly.host:
            # the host's last lines before it went quiet
            window = TimeRange(None, anomaly.start - 1)
            parts = [f"host:{quote(anomaly.host)}"]
        elif anomaly.pattern_id is not None:
            parts.append(f"template:{anomaly.pattern_id}")
        elif anomaly.kind == "error_share":
            parts.append("level>=ERROR")
        records: list[LogRecord] = self.store.search(self._plan(" ".join(parts)), window, limit).records
        return [r.id for r in records]


def _runs(flagged: list[tuple[int, str, float, float]]) -> list[tuple[str, list[tuple[int, str, float, float]]]]:
    """Consecutive flagged buckets of one kind, as runs."""
    runs: list[tuple[str, list[tuple[int, str, float, float]]]] = []
    for item in flagged:
        if runs and runs[-1][0] == item[1] and runs[-1][1][-1][0] == item[0] - 1:
            runs[-1][1].append(item)
        else:
            runs.append((item[1], [item]))
    return runs



class NewPatternWatcher:
    """A streaming hook: ``pipeline.subscribe(NewPatternWatcher(store, callback))`` reports a
    ``new_pattern`` anomaly the moment a service logs a template it has not logged in the lookback.

    Each (service, template) pair is looked up in the store once, then remembered (up to
    ``max_pairs``; the oldest are forgotten first), so steady traffic costs a set lookup per record.
    """

    def __init__(self, store: Store, on_anomaly: Callable[[Anomaly], None],
                 config: AnomalyConfig | None = None, max_pairs: int = 100_000) -> None:
        self.store = store
        self.on_anomaly = on_anomaly
        self.config = config or AnomalyConfig()
        self.max_pairs = max_pairs
        self._known: dict[tuple[str, int], None] = {}

    def __call__(self, records: Sequence[LogRecord]) -> None:
        fresh: dict[tuple[str, int], list[LogRecord]] = {}
        for rec in records:
            key = (rec.service, rec.template_id)
            if key not in self._known:
                fresh.setdefault(key, []).append(rec)
        for (svc, tid), recs in fresh.items():
            self._known[(svc, tid)] = None
            if len(self._known) > self.max_pairs:
                del self._known[next(iter(self._known))]
            first = min(recs, key=lambda r: (r.timestamp, r.id))
            plan = plan_query(f"service:{quote(svc)} template:{tid}", ())
            lo = first.timestamp - self.config.lookback_ns
            if self.store.count(plan, TimeRange(lo, first.timestamp - 1)) > 0:
                continue
            levels: dict[str, int] = {}
            for r in recs:
                levels[r.level.name] = levels.get(r.level.name, 0) + 1
            template = next((t for t in self.store.templates() if t.id == tid), None)
            self.on_anomaly(Anomaly(
                kind="new_pattern", score=min(MAX_SCORE, level_weight(levels) * (1.0 + math.log2(1 + len(recs)))),
                start=first.timestamp, end=max(r.timestamp for r in recs), service=svc, pattern_id=tid,
                pattern=template.text if template else None,
                evidence={"before": {"count": 0, "lookback_ms": self.config.lookback_ns // 10**6},
                          "after": {"count": len(recs), "levels": dict(sorted(levels.items()))}},
                example_ids=[r.id for r in recs[: self.config.examples]]))
