"""What the API and the CLI call: query strings and time parameters in, store results out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loglens.model import Level, LogRecord
from loglens.query.planning import Plan, plan_query, resolve_field_name
from loglens.query.timerange import now_ns, parse_duration, parse_time
from loglens.store.base import Bucket, SearchPage, Store, TimeRange, TopValue

MS = 1_000_000
_AUTO_STEPS_MS: Sequence[int] = (
    1_000, 5_000, 10_000, 30_000, 60_000, 300_000, 600_000, 1_800_000, 3_600_000, 10_800_000,
    21_600_000, 43_200_000, 86_400_000, 604_800_000,
)
#: Target number of histogram buckets for ``interval=auto``.
AUTO_BUCKETS = 60
TOP_FIELDS_HINT = ("service", "host", "level", "source", "template", "message", "trace_id")


class ParameterError(ValueError):
    """A request parameter other than the query is invalid."""


def format_ts(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 1_000_000_000:09d}Z"


def record_dict(rec: LogRecord) -> dict[str, Any]:
    """A record as the API shows it. Ids are strings: they exceed JavaScript's exact integers."""
    return {
        "id": str(rec.id),
        "timestamp": format_ts(rec.timestamp),
        "level": rec.level.name if rec.level is not Level.UNKNOWN else None,
        "service": rec.service,
        "host": rec.host,
        "message": rec.message,
        "line": rec.line,
        "attributes": rec.attributes,
        "trace_id": rec.trace_id or None,
        "template_id": rec.template_id,
        "source": rec.source,
        "observed_at": format_ts(rec.observed_at) if rec.observed_at else None,
    }


@dataclass(slots=True)
class Histogram:
    interval_ns: int
    buckets: list[Bucket]


def parse_record_id(value: str | int) -> int:
    try:
        ident = int(value)
    except (TypeError, ValueError):
        raise ParameterError(f"record ids are integers, got {value!r}") from None
    if ident <= 0:
        raise ParameterError(f"record ids are positive, got {value!r}")
    return ident


class QueryEngine:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.patterns: Any = None  # analysis.semantic.PatternIndex, built on first similar:"..."

    def pattern_index(self) -> Any:
        if self.patterns is None:
            from loglens.analysis.semantic import PatternIndex

            self.patterns = PatternIndex(self.store)
        return self.patterns

    def resolve_similar(self, text: str) -> list[int]:
        """Template ids meaning the same as ``text`` (the ``similar:"..."`` query field)."""
        return list(self.pattern_index().resolve(text))

    def plan(self, q: str | None) -> Plan:
        return plan_query(q or "", self.store.known_attributes(), similar=self.resolve_similar)

    @staticmethod
    def time_range(start: str | None, end: str | None, *, now: int | None = None) -> TimeRange:
        now = now if now is not None else now_ns()
        try:
            lo = parse_time(start, now_ns=now) if start not in (None, "") else None
        except ValueError as exc:
            raise ParameterError(f"from: {exc}") from None
        try:
            hi = parse_time(end, now_ns=now) if end not in (None, "") else None
        except ValueError as exc:
            raise ParameterError(f"to: {exc}") from None
        if lo is not None and hi is not None and lo > hi:
            raise ParameterError("from is after to")
        return TimeRange(lo, hi)

    def search(self, q: str | None, start: str | None = None, end: str | None = None, limit: int = 100,
               cursor: str | None = None) -> SearchPage:
        if not 1 <= limit <= 10_000:
            raise ParameterError("limit must be between 1 and 10000")
        plan = self.plan(q)
        return self.store.search(plan, self.time_range(start, end), limit,
                                 parse_record_id(cursor) if cursor else None)

    def count(self, q: str | None, start: str | None = None, end: str | None = None) -> int:
        return self.store.count(self.plan(q), self.time_range(start, end))

    def histogram(self, q: str | None, start: str | None = None, end: str | None = None,
                  interval: str | None = "auto") -> Histogram:
        plan = self.plan(q)
        time = self.time_range(start, end)
        if interval in (None, "", "auto"):
            lo = time.start
            hi = time.end if time.end is not None else now_ns()
            if lo is None:
                stats = self.store.stats()
                lo = stats.first_timestamp if stats.first_timestamp is not None else hi - 3_600 * 10**9
                if time.end is None and stats.last_timestamp is not None:
                    hi = max(lo, stats.last_timestamp)
            span_ms = max(1, (hi - lo) // MS)
            step = next((s for s in _AUTO_STEPS_MS if span_ms / s <= AUTO_BUCKETS), _AUTO_STEPS_MS[-1])
            interval_ns = step * MS
        else:
            try:
                interval_ns = parse_duration(interval)
            except ValueError as exc:
                raise ParameterError(f"interval: {exc}") from None
            if interval_ns < MS:
                raise ParameterError("interval must be at least 1ms")
        return Histogram(interval_ns, self.store.histogram(plan, time, interval_ns))

    def top(self, field_name: str, q: str | None, start: str | None = None, end: str | None = None,
            limit: int = 10) -> list[TopValue]:
        if not 1 <= limit <= 1_000:
            raise ParameterError("limit must be between 1 and 1000")
        try:
            canonical = resolve_field_name(field_name, self.store.known_attributes())
        except KeyError as exc:
            raise ParameterError(exc.args[0]) from None
        return self.store.top(self.plan(q), self.time_range(start, end), canonical, limit)

    def context(self, record_id: str | int, before: int = 20, after: int = 20) -> dict[str, Any]:
        ident = parse_record_id(record_id)
        if not (0 <= before <= 1000 and 0 <= after <= 1000):
            raise ParameterError("before and after must be between 0 and 1000")
        record = self.store.get(ident)
        if record is None:
            raise KeyError(ident)
        older, newer = self.store.context(ident, before, after)
        return {
            "record": record_dict(record),
            "before": [record_dict(r) for r in older],
            "after": [record_dict(r) for r in newer],
        }


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


#: Points in a pattern's trend line.
TREND_POINTS = 24


class PatternQueries:
    """Patterns (templates) ranked by how often they occur in a window, with trend and an example."""

    def __init__(self, engine: QueryEngine) -> None:
        self.engine = engine
        self.store = engine.store

    def list(self, q: str | None, start: str | None = None, end: str | None = None, limit: int = 50,
             service: str | None = None, new_only: bool = False) -> dict[str, Any]:
        if not 1 <= limit <= 1000:
            raise ParameterError("limit must be between 1 and 1000")
        query = q or ""
        if service:
            query = f"({query}) service:{_quote(service)}" if query.strip() else f"service:{_quote(service)}"
        plan = self.engine.plan(query)
        time = self.engine.time_range(start, end)
        lo, hi = time.start, time.end
        if lo is None or hi is None:  # an open end: the data's own span, so the trend has no empty tail
            stats = self.store.stats()
            now = now_ns()
            if hi is None:
                hi = max(stats.last_timestamp or now, lo or 0) if lo is None else now
            if lo is None:
                lo = min(stats.first_timestamp or hi, hi)
        counts = self.store.template_counts(plan, time)
        templates = {t.id: t for t in self.store.templates()}
        rows = []
        for tid, levels in counts.items():
            template = templates.get(tid)
            total = sum(levels.values())
            first_seen = template.first_seen if template else 0
            # "new" needs a window start to be new against
            is_new = template is not None and time.start is not None and first_seen >= time.start
            if new_only and not is_new:
                continue
            rows.append((total, tid, levels, template, is_new))
        rows.sort(key=lambda r: (-r[0], r[1]))
        rows = rows[:limit]
        interval_ns = max(MS, -(-(hi - lo) // TREND_POINTS))
        base = lo // interval_ns * interval_ns
        trends = self.store.template_trends([r[1] for r in rows], time, interval_ns)
        patterns = []
        for total, tid, levels, template, is_new in rows:
            trend = [0] * TREND_POINTS
            for start_ns, n in trends.get(tid, {}).items():
                index = (start_ns - base) // interval_ns
                if 0 <= index < TREND_POINTS:
                    trend[index] += n
            example = self.store.search(self.engine.plan(f"({query}) template:{tid}" if query.strip()
                                                         else f"template:{tid}"), time, 1).records
            patterns.append({
                "id": tid,
                "template": template.text if template else None,
                "count": total,
                "levels": dict(sorted(levels.items())),
                "first_seen": format_ts(template.first_seen) if template and template.first_seen else None,
                "last_seen": format_ts(template.last_seen) if template and template.last_seen else None,
                "new": is_new,
                "trend": trend,
                "example": record_dict(example[0]) if example else None,
            })
        return {"from": format_ts(lo), "to": format_ts(hi), "trend_interval_ms": interval_ns // MS,
                "patterns": patterns}

    def get(self, template_id: int, start: str | None = None, end: str | None = None,
            interval: str | None = "auto") -> dict[str, Any]:
        templates = {t.id: t for t in self.store.templates()}
        template = templates.get(template_id)
        if template is None:
            raise KeyError(template_id)
        hist = self.engine.histogram(f"template:{template_id}", start, end, interval)
        return {
            "id": template.id, "template": template.text, "aliases": template.aliases,
            "count": template.count,
            "first_seen": format_ts(template.first_seen) if template.first_seen else None,
            "last_seen": format_ts(template.last_seen) if template.last_seen else None,
            "interval_ms": hist.interval_ns // MS,
            "buckets": [{"start": format_ts(b.start), "total": b.total, "counts": b.counts} for b in hist.buckets],
        }
