"""The alert evaluator: on its own thread, every rule's condition is checked each ``every``; a change
of state (ok → firing, firing → resolved) is recorded in the history and notified to the rule's
targets, once; while firing, the notification is repeated only after the rule's ``repeat``.
"""

from __future__ import annotations

import fnmatch
import logging
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from loglens.alerts.notifiers import Dispatcher, Notification
from loglens.alerts.rules import Rule, RuleError, load_config_rules, parse_rule
from loglens.alerts.state import AlertDB, RuleState, Silence
from loglens.query.engine import QueryEngine, format_ts
from loglens.query.timerange import now_ns as wall_clock_ns
from loglens.store.base import TimeRange

if TYPE_CHECKING:
    from loglens.config import Settings
    from loglens.server.metrics import Metrics

log = logging.getLogger("loglens.alerts")

MS = 1_000_000
#: Longest sleep of the evaluator thread between looks at which rules are due.
MAX_TICK_S = 1.0
ANOMALY_UNAVAILABLE = ("anomaly score conditions need the anomaly detection of issue 5, which is not "
                       "available yet: this rule is kept but never fires")
#: Rule fields a silence matcher may name (shell-style globs).
MATCHER_FIELDS = ("id", "name", "severity", "query", "source")


class RuleConflict(ValueError):
    """The rule cannot be added or removed as asked (same name as another, defined in the config file)."""


@dataclass(slots=True)
class Measure:
    firing: bool
    value: float | None
    summary: str
    window: TimeRange
    details: dict[str, Any] = field(default_factory=dict)
    new_ids: list[int] = field(default_factory=list)


class AlertService:
    """Holds the rules (config file + API), evaluates them and sends notifications.

    ``evaluate(now_ns=...)`` evaluates every enabled rule at that time (tests drive it directly);
    ``start()`` runs a thread that evaluates each rule when its ``every`` has passed.
    """

    def __init__(self, engine: QueryEngine, data_dir: str | Path, *, config_path: str = "", ui_url: str = "",
                 dispatcher: Dispatcher | None = None, on_evaluated: Callable[[], None] | None = None,
                 clock: Callable[[], int] = wall_clock_ns) -> None:
        self.engine = engine
        self.db = AlertDB(Path(data_dir) / "alerts.db")
        self.ui_url = (ui_url or "http://127.0.0.1:8080").rstrip("/")
        self.dispatcher = dispatcher or Dispatcher()
        self.on_evaluated = on_evaluated
        self.clock = clock
        self._lock = threading.RLock()  # the rule lists
        self._eval_lock = threading.Lock()  # one evaluation at a time; the API does not wait for it
        self._config_rules = load_config_rules(config_path) if config_path else []
        self._api_rules: list[Rule] = []
        for rule_id, spec in self.db.rules():
            try:
                self._api_rules.append(parse_rule(spec, source="api", rule_id=rule_id))
            except RuleError as exc:  # a rule stored by an older version that no longer validates
                log.error("alerts: skipping stored rule %s: %s", rule_id, exc)
        self._states = self.db.states()
        self._next_due: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for rule in self.rules():
            if rule.condition.kind == "anomaly":
                log.warning("alerts: rule %r: %s", rule.name, ANOMALY_UNAVAILABLE)

    # ------------------------------------------------------------------ rules
    def rules(self) -> list[Rule]:
        with self._lock:
            return [*self._config_rules, *self._api_rules]

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules() if r.id == rule_id), None)

    def add_rule(self, spec: Any) -> Rule:
        rule = parse_rule(spec, source="api", rule_id=uuid.uuid4().hex[:12])
        with self._lock:
            if any(r.name == rule.name for r in self.rules()):
                raise RuleConflict(f"a rule named {rule.name!r} exists already")
            self.db.add_rule(rule.id, rule.spec)
            self._api_rules.append(rule)
        return rule

    def delete_rule(self, rule_id: str) -> bool:
        with self._lock:
            if any(r.id == rule_id for r in self._config_rules):
                raise RuleConflict(f"rule {rule_id} is defined in the configuration file: remove it there")
            before = len(self._api_rules)
            self._api_rules = [r for r in self._api_rules if r.id != rule_id]
            self._states.pop(rule_id, None)
            self._next_due.pop(rule_id, None)
            return self.db.delete_rule(rule_id) or len(self._api_rules) < before

    def status(self) -> list[dict[str, Any]]:
        now = self.clock()
        silences = self.db.silences(active_at=now)
        out = []
        for rule in self.rules():
            s = self._states.get(rule.id)
            item = rule.public()
            item.update({
                "state": s.state if s else "pending",
                "since": format_ts(s.since) if s and s.since else None,
                "last_evaluation": format_ts(s.last_eval) if s and s.last_eval else None,
                "value": s.last_value if s else None,
                "error": (s.last_error or None) if s else None,
                "silenced": _silenced(rule, silences),
            })
            out.append(item)
        return out

    # ------------------------------------------------------------------ silences
    def add_silence(self, rule: str, matcher: dict[str, str], until_ns: int, comment: str = "") -> Silence:
        if not rule and not matcher:
            raise ValueError("a silence names a rule (id or name) or a matcher")
        bad = sorted(set(matcher) - set(MATCHER_FIELDS))
        if bad:
            raise ValueError(f"matcher: unknown field {bad[0]!r} (known: {', '.join(MATCHER_FIELDS)})")
        if rule and not any(rule in (r.id, r.name) for r in self.rules()):
            raise ValueError(f"no rule {rule!r}")
        ident = self.db.add_silence(rule, matcher, until_ns, comment)
        return next(s for s in self.db.silences() if s.id == ident)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, now_ns: int | None = None, *, only_due: bool = False) -> list[Notification]:
        """Evaluate the rules (all of them, or those due when ``only_due``) at ``now_ns``; returns the
        notifications sent. Never raises for one rule's failure."""
        now = self.clock() if now_ns is None else now_ns
        sent: list[Notification] = []
        with self._eval_lock:
            silences = self.db.silences(active_at=now)
            for rule in self.rules():
                if not rule.enabled:
                    continue
                if only_due and self._next_due.get(rule.id, 0) > now:
                    continue
                self._next_due[rule.id] = now + rule.every_ns
                try:
                    n = self._evaluate_rule(rule, now, silences)
                except Exception:
                    log.exception("alerts: evaluating rule %r failed", rule.name)
                    continue
                if n is not None:
                    sent.append(n)
                if self.on_evaluated is not None:
                    try:
                        self.on_evaluated()
                    except Exception:
                        log.exception("alerts: evaluation metric failed")
        return sent

    def _evaluate_rule(self, rule: Rule, now: int, silences: list[Silence]) -> Notification | None:
        state = self._states.get(rule.id)
        if state is None:
            state = self._states[rule.id] = RuleState(rule.id, since=now)
        state.last_eval = now
        if rule.condition.kind == "anomaly":
            state.state, state.last_error, state.last_value = "unavailable", ANOMALY_UNAVAILABLE, None
            self.db.save_state(state)
            return None
        try:
            m = self._measure(rule, now)
        except Exception as exc:  # a query naming a field not seen yet, a store error...
            state.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("alerts: rule %r: %s", rule.name, state.last_error)
            self.db.save_state(state)
            return None
        state.last_error = ""
        state.last_value = m.value
        silenced = _silenced(rule, silences)
        change: str | None = None
        if m.firing:
            fresh = [t for t in m.new_ids if t not in state.seen]
            if state.state != "firing":
                state.state, state.since, state.notified, state.seen = "firing", now, False, []
                change = "firing"
            elif fresh:
                change = "firing"  # another new pattern while the rule fires already
            elif not state.notified and not silenced:
                change = "firing"  # fired under a silence that has ended since
            elif rule.repeat_ns and state.notified and now - state.last_notified >= rule.repeat_ns and not silenced:
                change = "repeat"
            state.seen = sorted(set(state.seen) | set(m.new_ids))
            if change and rule.condition.kind == "new_pattern" and state.notified and fresh:
                m.details["patterns"] = [p for p in m.details.get("patterns", []) if p["id"] in fresh]
        else:
            if state.state == "firing":
                change = "resolved"
            if state.state != "ok":
                state.state, state.since = "ok", now
        notification = None
        if change is not None:
            quiet = silenced or (change == "resolved" and not state.notified)
            notification = self._notify(rule, change, now, m, quiet, silenced)
            if change == "resolved":
                state.notified, state.seen = False, []
            elif not quiet:
                state.notified, state.last_notified = True, now
            if quiet:
                notification = None
        self.db.save_state(state)
        return notification

    def _notify(self, rule: Rule, change: str, now: int, m: Measure, quiet: bool, silenced: bool) -> Notification:
        lo, hi = m.window.start or 0, m.window.end or now
        n = Notification(rule, change, now, m.value, m.summary, self.link(rule.query, lo, hi), format_ts(lo),
                         format_ts(hi), m.details)
        targets = [] if quiet else [t.describe() for t in rule.targets]
        details = {**m.details, "summary": m.summary, "link": n.link}
        if quiet and not silenced:
            details["note"] = "no firing notification was sent for this episode (it fired under a silence)"
        hid = self.db.add_history(rule.id, rule.name, change, now, m.value, details, silenced, targets)
        log.info("alerts: rule %r %s: %s%s", rule.name, change, m.summary, " (silenced)" if silenced else "")
        if not quiet and rule.targets:
            self.dispatcher.dispatch(n, hid, self.db.update_delivery)
        return n

    def link(self, query: str, lo: int, hi: int) -> str:
        return f"{self.ui_url}/?" + urlencode({"q": query, "from": format_ts(lo), "to": format_ts(hi)})

    def _measure(self, rule: Rule, now: int) -> Measure:
        store = self.engine.store
        plan = self.engine.plan(rule.query)
        end_ms = now // MS
        w_ms = max(1, rule.window_ns // MS)
        window = TimeRange((end_ms - w_ms + 1) * MS, end_ms * MS)
        spec_window = rule.spec.get("window", "")
        c = rule.condition
        if c.kind == "count":
            count = store.count(plan, window)
            threshold = int(c.threshold)
            return Measure(c.holds(count), count,
                           f"{count} matching records in the last {spec_window} (condition: count {c.op} "
                           f"{threshold})", window, {"count": count})
        if c.kind == "rate":
            count = store.count(plan, window)
            previous = store.count(plan, TimeRange((end_ms - 2 * w_ms + 1) * MS, (end_ms - w_ms) * MS))
            if previous:
                increase: float | None = (count - previous) * 100.0 / previous
                firing = increase is not None and increase > c.threshold
                change = f"{increase:+.1f}%"
            else:  # from nothing to something is an unbounded increase
                increase = None if count else 0.0
                firing = count > 0
                change = "from none" if count else "none in either window"
            return Measure(firing, increase,
                           f"{count} matching records in the last {spec_window} against {previous} in the "
                           f"{spec_window} before ({change}; condition: {c.text})", window,
                           {"count": count, "previous_count": previous})
        # new pattern: templates of the matching records first seen inside the window
        counts = store.template_counts(plan, window)
        templates = {t.id: t for t in store.templates()}
        start = window.start or 0
        new = sorted((tid for tid in counts if tid in templates and templates[tid].first_seen >= start),
                     key=lambda tid: (-sum(counts[tid].values()), tid))
        patterns: list[dict[str, Any]] = [
            {"id": tid, "template": templates[tid].text, "count": sum(counts[tid].values()),
             "first_seen": format_ts(templates[tid].first_seen)} for tid in new[:50]]
        shown = "; ".join(str(p["template"])[:120] for p in patterns[:3])
        summary = f"{len(new)} new pattern(s) in the last {spec_window}: {shown}" if new else \
            f"no new pattern in the last {spec_window}"
        return Measure(bool(new), len(new), summary, window, {"patterns": patterns}, new)

    # ------------------------------------------------------------------ thread
    def start(self) -> AlertService:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="loglens-alerts", daemon=True)
            self._thread.start()
            log.info("alerts: evaluating %d rule(s)", len(self.rules()))
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.evaluate(only_due=True)
            except Exception:  # the evaluator outlives any failure
                log.exception("alerts: evaluation failed")
            now = self.clock()
            with self._lock:
                due = [self._next_due.get(r.id, 0) for r in self.rules() if r.enabled]
            wait = min([MAX_TICK_S, *((d - now) / 1e9 for d in due)])
            self._stop.wait(max(0.05, wait))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.dispatcher.close()
        self.db.close()


def _silenced(rule: Rule, silences: list[Silence]) -> bool:
    for s in silences:
        if s.rule and s.rule not in (rule.id, rule.name):
            continue
        values = {"id": rule.id, "name": rule.name, "severity": rule.severity, "query": rule.query,
                  "source": rule.source}
        if all(fnmatch.fnmatchcase(values.get(k, ""), str(v)) for k, v in s.matcher.items()):
            return True
    return False


def start_alerts(settings: Settings, engine: QueryEngine, metrics: Metrics | None = None) -> AlertService:
    """The server's alert service: rules from ``settings.config`` and ``<data>/alerts.db``, running."""
    ui_url = settings.ui_url
    if not ui_url:
        host = settings.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        ui_url = f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"
    dispatcher = Dispatcher(on_attempt=metrics.alert_delivered if metrics is not None else None)
    return AlertService(engine, settings.data, config_path=settings.config, ui_url=ui_url, dispatcher=dispatcher,
                        on_evaluated=metrics.alert_evaluated if metrics is not None else None).start()
