"""Ask: a question in plain English becomes a LogLens query and an operation, run against the store.

Without an LLM a slot-filling parser reads the common questions: counts ("how many errors from
nova-compute yesterday"), top-N ("which hosts logged the most failed password attempts"), when
("when did 'Connection refused' start"), what's new ("new errors in the last hour"), show-me ("show
timeouts in payment since 10:00"), trends ("errors per hour today") and anomalies. Words are matched
against the data: services, hosts and attribute names the store knows, level names and synonyms, and
content words that occur in the logs (plurals tolerated); a word found nowhere is reported, not
guessed at. With an LLM the model writes the query (JSON), which is parsed and validated like any
query and retried with the parser's error at most twice; the query is always shown, and the
numbers always come from the store, never from the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from loglens.query.engine import PatternQueries, QueryEngine, format_ts, record_dict
from loglens.query.errors import QueryError
from loglens.query.planning import BUILTIN_FIELDS, resolve_field_name
from loglens.query.timerange import now_ns, parse_time

OPERATIONS = ("count", "search", "top", "histogram", "patterns", "anomalies")
S = 1_000_000_000
MAX_LLM_RETRIES = 2

_STOP = frozenset([
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "from", "by", "with", "and", "or", "is", "are",
    "was", "were", "be", "been", "being", "do", "does", "did", "done", "have", "has", "had", "how", "many",
    "much", "what", "which", "who", "whom", "whose", "when", "where", "why", "there", "their", "them", "they",
    "it", "its", "this", "that", "these", "those", "show", "me", "list", "find", "search", "display", "give",
    "get", "tell", "see", "all", "any", "some", "please", "i", "we", "us", "our", "you", "your", "my", "can",
    "could", "would", "should", "will", "shall", "may", "might", "logged", "log", "logs", "line", "lines",
    "record", "records", "entry", "entries", "event", "events", "message", "messages", "occur", "occurred",
    "occurrences", "occurrence", "happen", "happened", "times", "time", "number", "count", "total", "most",
    "top", "appear", "appeared", "start", "started", "begin", "began", "first", "last", "new", "latest",
    "recent", "recently", "seen", "ever", "so", "far", "since", "between", "until", "till", "during", "over",
    "past", "previous", "per", "within", "about", "than", "more", "less", "just", "only", "also", "into", "got",
    "getting", "having", "not", "no", "yes", "there's", "what's", "whats", "whos", "let", "lets", "look",
    "looking", "happening", "second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week",
    "weeks", "anomaly", "anomalies", "unusual", "spike", "spikes", "outlier", "outliers", "weird", "each",
    "every", "trend", "trends", "histogram", "timeline", "hourly", "distinct", "different", "unique",
])
_NUM_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
              "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30}
_UNITS = {"second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600, "hr": 3600, "day": 86400,
          "week": 604800}
_LEVEL_WORDS: dict[str, str] = {
    "error": "level>=ERROR", "errors": "level>=ERROR", "err": "level>=ERROR",
    "fatal": "level:FATAL", "fatals": "level:FATAL", "critical": "level:FATAL", "crit": "level:FATAL",
    "panic": "level:FATAL", "panics": "level:FATAL",
    "warning": "level:WARN", "warnings": "level:WARN", "warn": "level:WARN", "warns": "level:WARN",
    "info": "level:INFO", "debug": "level:DEBUG", "trace": "level:TRACE",
    "problems": "level>=WARN", "issues": "level>=WARN",
}
_TOP_FIELDS: dict[str, str] = {
    "host": "host", "hosts": "host", "machine": "host", "machines": "host", "server": "host",
    "servers": "host", "node": "host", "nodes": "host", "hostname": "host", "hostnames": "host",
    "service": "service", "services": "service", "app": "service", "apps": "service",
    "application": "service", "applications": "service", "system": "service", "systems": "service",
    "level": "level", "levels": "level", "severity": "level", "severities": "level",
    "source": "source", "sources": "source", "file": "source", "files": "source",
    "pattern": "template", "patterns": "template", "template": "template", "templates": "template",
}
_CLOCK = r"(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*(am|pm)?"
_DATE = r"(\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:z|[+-]\d{2}:?\d{2})?)"
_WORD = re.compile(r"[A-Za-z0-9_@][\w.@/-]*(?:[:=<>!]+[\w.*@/\"-]+)?|\*")


@dataclass
class Interpretation:
    """What the parser made of a question (the slots) and what it did not understand."""

    operation: str | None = None
    when: str | None = None  # "first" or "last" for "when did ... start / last happen"
    atoms: list[str] = dc_field(default_factory=list)  # query parts, ANDed
    field: str | None = None  # for top
    service: str | None = None
    interval: str = "auto"  # for histogram
    distinct: bool = False  # "how many hosts": the number of distinct values
    limit: int = 10
    new_only: bool = False
    start: int | None = None
    end: int | None = None
    relative: bool = False  # the window moves with "now"
    understood: list[str] = dc_field(default_factory=list)
    not_understood: list[str] = dc_field(default_factory=list)
    notes: list[str] = dc_field(default_factory=list)

    @property
    def query(self) -> str:
        return " ".join(self.atoms)


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _term(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9_][\w.]*", text) and text.upper() not in ("AND", "OR", "NOT") \
        else quote(text)


def _ts(ns: int | None) -> str | None:
    return format_ts(ns) if ns is not None else None


def _human(ns: int | None) -> str:
    return "" if ns is None else datetime.fromtimestamp(ns / S, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ------------------------------------------------------------------------------ time phrases
def _day_start(now: int, days_back: int = 0) -> int:
    dt = datetime.fromtimestamp(now // S, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((dt - timedelta(days=days_back)).timestamp()) * S


def _clock(now: int, h: str, m: str | None, s: str | None, ampm: str | None) -> int | None:
    hour, minute, second = int(h), int(m or 0), int(s or 0)
    if ampm == "pm" and hour < 12:
        hour += 12
    if ampm == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59 or second > 59:
        return None
    return _day_start(now) + (hour * 3600 + minute * 60 + second) * S


def _point(text: str, now: int) -> int | None:
    """A time written in a question: an ISO date/time, or a clock time today."""
    text = text.strip()
    m = re.fullmatch(_DATE, text)
    if m:
        try:
            return parse_time(m.group(1).upper(), now_ns=now)
        except ValueError:
            return None
    m = re.fullmatch(_CLOCK, text)
    if m and (m.group(2) or m.group(4)):
        return _clock(now, m.group(1), m.group(2), m.group(3), m.group(4))
    if text in ("now", "today"):
        return now if text == "now" else _day_start(now)
    if text == "yesterday":
        return _day_start(now, 1)
    if text in ("noon", "midday"):
        return _day_start(now) + 12 * 3600 * S
    if text == "midnight":
        return _day_start(now)
    return None


def parse_time_phrase(text: str, now: int) -> tuple[str, int | None, int | None, bool, str] | None:
    """Find a time phrase in lowercased ``text``: (rest of text, start, end, relative, description)."""
    point = rf"(?:{_DATE}|{_CLOCK}|now|today|yesterday|noon|midday|midnight)"
    rules: list[tuple[str, Callable[[re.Match[str]], tuple[int | None, int | None, bool, str] | None]]] = []

    def last_n(m: re.Match[str]) -> tuple[int | None, int | None, bool, str] | None:
        raw = m.group(1)
        n = float(raw) if raw and raw[0].isdigit() else _NUM_WORDS.get(raw or "a", 1)
        unit = m.group(2)
        seconds = _UNITS[unit]
        label = f"the last {raw + ' ' if raw else ''}{unit}{'s' if n != 1 else ''}"
        return now - int(n * seconds * S), now, True, label

    def between(m: re.Match[str]) -> tuple[int | None, int | None, bool, str] | None:
        a, b = _point(m.group("a"), now), _point(m.group("b"), now)
        if a is None or b is None:
            return None
        if b < a and re.fullmatch(_CLOCK, m.group("b").strip()):
            b += 86400 * S
        absolute = bool(re.match(r"\d{4}-", m.group("a").strip()))
        return a, b, not absolute, f"between {_human(a)} and {_human(b)}"

    def since(m: re.Match[str]) -> tuple[int | None, int | None, bool, str] | None:
        a = _point(m.group("a"), now)
        if a is None:
            return None
        if a > now and re.fullmatch(_CLOCK, m.group("a").strip()):
            a -= 86400 * S
        absolute = bool(re.match(r"\d{4}-", m.group("a").strip()))
        return a, now, not absolute, f"since {_human(a)}"

    def before(m: re.Match[str]) -> tuple[int | None, int | None, bool, str] | None:
        b = _point(m.group("a"), now)
        return (None, b, not bool(re.match(r"\d{4}-", m.group("a").strip())), f"before {_human(b)}") \
            if b is not None else None

    def day(m: re.Match[str]) -> tuple[int | None, int | None, bool, str] | None:
        a = _point(m.group(1), now)
        if a is None:
            return None
        return a, a + 86400 * S, False, f"on {m.group(1)}"

    def part_of_day(lo_h: int, hi_h: int, back: int, label: str) -> Callable[[re.Match[str]], Any]:
        def make(_: re.Match[str]) -> tuple[int | None, int | None, bool, str]:
            lo = _day_start(now, back) + lo_h * 3600 * S
            hi = min(now, _day_start(now, back) + hi_h * 3600 * S)
            return lo, max(lo, hi), True, label
        return make

    rules = [
        (rf"\bbetween (?P<a>{point}) and (?P<b>{point})", between),
        (rf"\bfrom (?P<a>{point}) (?:to|until|till) (?P<b>{point})", between),
        (r"\b(?:in |during |over |for |within )?(?:the )?(?:last|past|previous) "
         r"(\d+(?:\.\d+)?|an?|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty)?"
         r"\s*(second|sec|minute|min|hour|hr|day|week)s?\b", last_n),
        (r"\b(\d+)\s*(second|sec|minute|min|hour|hr|day|week)s? ago\b",
         lambda m: (now - int(m.group(1)) * _UNITS[m.group(2)] * S, now, True,
                    f"the last {m.group(1)} {m.group(2)}s")),
        (rf"\b(?:since|after|from) (?P<a>{point})", since),
        (rf"\b(?:before|until|till) (?P<a>{point})", before),
        (r"\bthis morning\b", part_of_day(0, 12, 0, "this morning")),
        (r"\bthis afternoon\b", part_of_day(12, 18, 0, "this afternoon")),
        (r"\b(?:this evening|tonight)\b", part_of_day(18, 24, 0, "this evening")),
        (r"\blast night\b", lambda m: (_day_start(now, 1) + 18 * 3600 * S, min(now, _day_start(now) + 6 * 3600 * S),
                                       True, "last night")),
        (r"\byesterday\b", lambda m: (_day_start(now, 1), _day_start(now), True, "yesterday")),
        (r"\btoday\b", lambda m: (_day_start(now), now, True, "today")),
        (r"\bthis week\b", lambda m: (_day_start(now, datetime.fromtimestamp(now // S, UTC).weekday()), now, True,
                                      "this week")),
        (rf"\b(?:on|at|for|during) {_DATE}", day),
        (rf"(?<![\w-]){_DATE}(?![\w-])", day),
    ]
    for pattern, make in rules:
        m = re.search(pattern, text)
        if m is None:
            continue
        got = make(m)
        if got is None:
            continue
        lo, hi, relative, label = got
        rest = text[:m.start()] + " " + text[m.end():]
        return rest, lo, hi, relative, label
    return None


# ------------------------------------------------------------------------------ the parser
def _variants(word: str) -> list[str]:
    """The word, its singular forms, and a prefix of the stem (``timeouts`` → timeout, timeout*)."""
    out = [word]
    low = word.lower()
    if low.endswith("ies") and len(low) > 4:
        out.append(word[:-3] + "y")
    if low.endswith("es") and len(low) > 4:
        out.append(word[:-2])
    if low.endswith("s") and not low.endswith("ss") and len(low) > 3:
        out.append(word[:-1])
    if low.endswith("ed") and len(low) > 5:
        out.append(word[:-2])
    stem = out[-1]
    if len(stem) >= 4 and re.fullmatch(r"\w+", stem):
        out.append(stem + "*")
    seen: list[str] = []
    for v in out:
        if v not in seen:
            seen.append(v)
    return seen


class QuestionParser:
    """Slot filling against what the store knows."""

    def __init__(self, engine: QueryEngine) -> None:
        self.engine = engine
        self.store = engine.store
        self.services = {v.lower(): v for v in self.store.values("service")}
        self.hosts = {v.lower(): v for v in self.store.values("host")}
        self.attributes = {a.lower(): a for a in self.store.known_attributes()}
        self._exists: dict[str, bool] = {}

    def _lookup(self, word: str, table: dict[str, str]) -> str | None:
        low = word.lower().strip(".,;:!?")
        for v in (low, *[x for x in _variants(low) if not x.endswith("*")]):
            if v in table:
                return table[v]
        return None

    def _occurs(self, atom: str) -> bool:
        """Whether a query atom matches anything in the store (any time)."""
        if atom not in self._exists:
            try:
                self._exists[atom] = self.engine.count(atom) > 0
            except (QueryError, ValueError):
                self._exists[atom] = False
        return self._exists[atom]

    def _resolve_run(self, words: list[str], scope: str = "") -> tuple[list[str], list[str]]:
        """Atoms for a run of adjacent content words: the longest sub-phrase that occurs in the logs,
        then the words left and right of it the same way; words found nowhere are returned apart."""
        if not words:
            return [], []
        n = len(words)
        for size in range(n, 0, -1):
            for i in range(0, n - size + 1):
                part = words[i:i + size]
                candidates = [quote(" ".join(part))] if size > 1 else [_term(v) for v in _variants(part[0])]
                if size > 1 and part[-1].lower().endswith("s"):
                    candidates.append(quote(" ".join([*part[:-1], _variants(part[-1])[-1].rstrip("*")])))
                for atom in candidates:
                    if self._occurs(f"{scope} {atom}".strip()):
                        left, lmiss = self._resolve_run(words[:i], scope)
                        right, rmiss = self._resolve_run(words[i + size:], scope)
                        # words beside the phrase count only when they occur together with it
                        # ("failed password attempts": "attempt" occurs, but never with the phrase)
                        kept, missing = [atom], lmiss + rmiss
                        for side, group in ((left, words[:i]), (right, words[i + size:])):
                            if side and self._occurs(" ".join([scope, *kept, *side]).strip()):
                                kept = [*side, *kept] if group is words[:i] else [*kept, *side]
                            elif side:
                                missing += [w for w in group if w not in missing]
                        return kept, missing
        return [], list(words)

    def parse(self, question: str, now: int) -> Interpretation:
        it = Interpretation()
        text = question.strip()
        phrases: list[str] = []

        def keep_phrase(m: re.Match[str]) -> str:
            phrases.append(m.group(1) or m.group(2))
            return f" __phrase{len(phrases) - 1}__ "

        text = re.sub(r"\"([^\"]+)\"|(?<!\w)'([^']+)'(?!\w)", keep_phrase, text)
        low = text.lower().replace("\u2019", "'")
        low = re.sub(r"[?!]+", " ", low)
        low = re.sub(r"\bwhat's\b", "what is", low)

        found = parse_time_phrase(low, now)
        if found is not None:
            low, it.start, it.end, it.relative, label = found
            it.understood.append(f"time: {label}")
        else:
            it.end = now

        # the operation
        if re.search(r"\banomal\w*|\bunusual\b|\boutliers?\b|\bspikes?\b|\bweird\b", low):
            it.operation = "anomalies"
        elif re.match(r"\s*when\b", low) or re.search(r"\bfirst (?:time|seen|occurrence)\b", low):
            it.operation = "histogram"
            it.when = "last" if re.search(r"\b(?:last|latest|most recent|stop|stopped|end|ended)\b", low) else "first"
        elif re.search(r"\bnew\b", low) or re.search(r"\bwhat is new\b|\bnever seen\b", low):
            it.operation, it.new_only = "patterns", True
        elif re.search(r"\b(?:per|by|each|every) (?:second|minute|hour|day)\b|\bover time\b|\btrend|\bhistogram\b"
                       r"|\btimeline\b|\bhourly\b", low):
            it.operation = "histogram"
            if per := re.search(r"\b(?:per|by|each|every) (second|minute|hour|day)\b|\b(hourly)\b", low):
                it.interval = {"second": "1s", "minute": "1m", "hour": "1h", "day": "1d", "hourly": "1h"}[
                    per.group(1) or per.group(2)]
        elif (m := re.search(r"\bhow many (?:distinct |different |unique )?(\w+)", low)) and m.group(1) in _TOP_FIELDS:
            it.operation, it.field, it.limit, it.distinct = "top", _TOP_FIELDS[m.group(1)], 1000, True
            low = low[:m.start(1)] + " " + low[m.end(1):]
        elif (m := re.search(r"\b(?:which|what|top\s*(\d+)?)\s+(?:\d+\s+)?(\w+)", low)) and \
                (m.group(2) in _TOP_FIELDS or m.group(2) in self.attributes or
                 m.group(2).rstrip("s") in self.attributes) and \
                (re.search(r"\b(?:most|top|busiest|noisiest|frequent|often|biggest|highest)\b", low) or
                 m.group(0).startswith("top") or m.group(2) in _TOP_FIELDS):
            word = m.group(2)
            it.field = _TOP_FIELDS.get(word) or self.attributes.get(word) or self.attributes[word.rstrip("s")]
            it.operation = "top"
            if (n := re.search(r"\btop\s*(\d+)\b", low)) or (n := re.search(r"\b(\d+)\s+" + word, low)):
                it.limit = max(1, min(100, int(n.group(1))))
            low = low[:m.start(2)] + " " + low[m.end(2):]
        elif re.search(r"\bhow (?:many|often)\b|\bcount\b|\bnumber of\b|\btotal\b", low):
            it.operation = "count"
        elif re.search(r"\b(?:patterns?|templates?|kinds? of|types? of)\b", low):
            it.operation = "patterns"
        elif re.search(r"\b(?:show|list|find|search|display|give|get|grep|fetch|examples?|samples?)\b", low):
            it.operation = "search"
        low = re.sub(r"\btop\s*\d+\b", " ", low)

        # slots, word by word, keeping runs of content words together
        runs: list[list[str]] = [[]]
        level_atom: str | None = None
        for raw in _WORD.findall(low):
            word = raw.strip(".,;")
            if not word:
                continue
            m = re.fullmatch(r"__phrase(\d+)__", word)
            if m:
                phrase = phrases[int(m.group(1))]
                it.atoms.append(_term(phrase) if " " not in phrase else quote(phrase))
                it.understood.append(f"text: {quote(phrase)}")
                runs.append([])
                continue
            if re.fullmatch(r"[a-z_@][\w.@-]*(?::|[<>]=?|!?=)\S+", word) and not word.startswith(("http", "//")):
                original = re.search(re.escape(word), question, re.IGNORECASE)
                atom = original.group(0) if original else word
                try:
                    self.engine.plan(atom)
                except (QueryError, ValueError):
                    pass
                else:
                    it.atoms.append(atom)
                    it.understood.append(f"filter: {atom}")
                    runs.append([])
                    continue
            if word in _LEVEL_WORDS and level_atom is None:
                level_atom = _LEVEL_WORDS[word]
                it.understood.append(f"level: {level_atom.removeprefix('level')}")
                runs.append([])
                continue
            if (svc := self._lookup(word, self.services)) is not None:
                it.atoms.append(f"service:{quote(svc)}")
                it.service = it.service or svc
                it.understood.append(f"service: {svc}")
                runs.append([])
                continue
            if (host := self._lookup(word, self.hosts)) is not None:
                it.atoms.append(f"host:{quote(host)}")
                it.understood.append(f"host: {host}")
                runs.append([])
                continue
            if word in _STOP or word in _NUM_WORDS or word in _TOP_FIELDS or re.fullmatch(r"\d{1,2}", word):
                runs.append([])
                continue
            # keep the question's own spelling for the content word
            original = re.search(r"(?<![\w])" + re.escape(word) + r"(?![\w])", question, re.IGNORECASE)
            runs[-1].append(original.group(0) if original else word)
        if level_atom:
            it.atoms.insert(0, level_atom)
        # content words are looked up among the records of the services/hosts/levels asked about first
        scope = " ".join(it.atoms)
        for run in runs:
            atoms, missing = self._resolve_run(run, scope)
            if not atoms and scope:
                atoms, missing = self._resolve_run(run)
            it.atoms.extend(atoms)
            it.understood.extend(f"text: {a}" for a in atoms)
            it.not_understood.extend(missing)
        if it.operation == "patterns" and it.new_only and it.start is None:
            it.start, it.end, it.relative = now - 3600 * S, now, True
            it.notes.append("no time was given: 'new' means first seen in the last hour")
        if it.operation is None and it.atoms:
            it.operation = "search"
        return it


# ------------------------------------------------------------------------------ running it
def _describe(it: Interpretation, time_label: str) -> str:
    what = f"`{it.query}`" if it.query else "all records"
    return f"{what} {time_label}".strip()


def _time_label(start: int | None, end: int | None) -> str:
    if start is None and end is None:
        return "over all time"
    if start is None:
        return f"up to {_human(end)}"
    return f"from {_human(start)} to {_human(end) if end is not None else 'now'}"


def _call_anomalies(engine: QueryEngine, service: str | None, start: int | None, end: int | None) -> Any:
    """The anomaly report, when the detector is installed (loglens.analysis.anomalies); else None."""
    try:
        from loglens.analysis.anomalies import AnomalyDetector
    except ImportError:
        return None
    return AnomalyDetector(engine.store).detect(start, end, service=service).to_dict()


def execute(engine: QueryEngine, it: Interpretation) -> tuple[Any, str]:
    """Run an interpretation: (result, answer)."""
    q = it.query
    f = str(it.start) if it.start is not None else None
    t = str(it.end) if it.end is not None else None
    label = _time_label(it.start, it.end)
    desc = _describe(it, label)
    if it.operation == "count":
        n = engine.count(q, f, t)
        return {"count": n}, f"{n:,} records match {desc}."
    if it.operation == "search":
        page = engine.search(q, f, t, limit=min(100, max(it.limit, 20)))
        total = engine.count(q, f, t)
        records = [record_dict(r) for r in page.records]
        if not records:
            return {"count": 0, "records": []}, f"No records match {desc}."
        latest = records[0]
        return {"count": total, "records": records}, (
            f"{total:,} records match {desc}; the most recent, at {latest['timestamp']}, is "
            f"[record:{latest['id']}] {latest['message'][:200]!r}.")
    if it.operation == "top":
        field_name = it.field or "service"
        values = engine.top(field_name, q, f, t, it.limit)
        rows = [{"value": v.value, "count": v.count} for v in values]
        if not rows:
            return {"field": field_name, "values": []}, f"No records match {desc}, so no {field_name} stands out."
        lead = ", ".join(f"{r['value']} ({r['count']:,})" for r in rows[:5])
        if it.distinct:
            more = "" if len(rows) < it.limit else " (at least)"
            return {"field": field_name, "values": rows, "distinct": len(rows)}, (
                f"{len(rows):,}{more} distinct {field_name} values for {desc}: {lead}"
                f"{', ...' if len(rows) > 5 else ''}.")
        return {"field": field_name, "values": rows}, f"Top {field_name} values for {desc}: {lead}."
    if it.operation == "histogram" and it.when:
        return _when(engine, it, q, f, t, desc)
    if it.operation == "histogram":
        hist = engine.histogram(q, f, t, it.interval)
        buckets: list[dict[str, Any]] = [{"start": format_ts(b.start), "total": b.total, "counts": b.counts}
                                          for b in hist.buckets]
        total = sum(int(b["total"]) for b in buckets)
        if not total:
            return {"interval_ms": hist.interval_ns // 1_000_000, "buckets": buckets}, f"No records match {desc}."
        peak = max(buckets, key=lambda b: int(b["total"]))
        return {"interval_ms": hist.interval_ns // 1_000_000, "buckets": buckets}, (
            f"{total:,} records match {desc}, in {len(buckets)} buckets of {hist.interval_ns // S}s; "
            f"the busiest starts at {peak['start']} with {peak['total']:,}.")
    if it.operation == "patterns":
        listing = PatternQueries(engine).list(q, f, t, limit=20, new_only=it.new_only)
        patterns = [{"id": p["id"], "template": p["template"], "count": p["count"], "first_seen": p["first_seen"],
                     "new": p["new"], "example_id": p["example"]["id"] if p["example"] else None}
                    for p in listing["patterns"]]
        kind = ("new " if it.new_only else "") + ("pattern" if len(patterns) == 1 else "patterns")
        if not patterns:
            return {"patterns": []}, f"No {'new ' if it.new_only else ''}patterns for {desc}."
        lead = "; ".join(f"[pattern:{p['id']}] {p['template']!r} ({p['count']:,})" for p in patterns[:3])
        return {"patterns": patterns}, f"{len(patterns)} {kind} for {desc}: {lead}."
    if it.operation == "anomalies":
        found = _call_anomalies(engine, it.service, it.start, None if it.start is None else it.end)
        if found is None:
            return None, "Anomaly detection is not available in this installation."
        items = found.get("anomalies", [])
        if not items:
            return found, f"No anomalies {label}{' in ' + it.service if it.service else ''}."
        lead = "; ".join(f"{a.get('kind')} in {a.get('service') or 'all services'} (score {a.get('score', 0):.1f})"
                         for a in items[:3])
        return found, f"{len(items)} anomalies {label}: {lead}."
    raise ValueError(f"unknown operation {it.operation!r}")


def _when(engine: QueryEngine, it: Interpretation, q: str, f: str | None, t: str | None,
          desc: str) -> tuple[Any, str]:
    total = engine.count(q, f, t)
    if not total:
        return {"count": 0, "first_seen": None, "last_seen": None}, f"No records match {desc}: it never happened."
    newest = engine.search(q, f, t, limit=1).records[0]
    hist = engine.histogram(q, f, t, "auto")
    first_bucket = next(b for b in hist.buckets if b.total)
    lo, hi = first_bucket.start, first_bucket.start + hist.interval_ns
    if f is not None:
        lo = max(lo, int(f))
    oldest = None
    cursor: str | None = None
    for _ in range(100):
        page = engine.search(q, str(lo), str(hi if t is None else min(hi, int(t))), 10_000, cursor)
        if page.records:
            oldest = page.records[-1]
        if page.next_cursor is None:
            break
        cursor = str(page.next_cursor)
    if oldest is None:  # histogram and search disagree on bucket edges: fall back to a full scan
        page = engine.search(q, f, t, 10_000)
        oldest = page.records[-1]
    result = {"count": total, "first_seen": format_ts(oldest.timestamp), "last_seen": format_ts(newest.timestamp),
              "first_record": record_dict(oldest), "last_record": record_dict(newest)}
    if it.when == "last":
        return result, (f"The last record matching {desc} is at {result['last_seen']} "
                        f"([record:{newest.id}]); {total:,} in all, the first at {result['first_seen']}.")
    return result, (f"It started at {result['first_seen']} ([record:{oldest.id}]): {total:,} records match {desc}, "
                    f"the last at {result['last_seen']}.")


def _help(it: Interpretation) -> str:
    parts = ["I could not turn this question into a query."]
    if it.understood:
        parts.append("I understood: " + "; ".join(it.understood) + ".")
    if it.not_understood:
        parts.append("Not found in the logs or not understood: " + ", ".join(repr(w) for w in it.not_understood) + ".")
    parts.append("Try for example: 'how many errors from <service> yesterday', 'which hosts logged the most "
                 "\"connection refused\"', 'when did \"disk full\" start', 'new errors in the last hour', "
                 "'show timeouts in <service> since 10:00'.")
    return " ".join(parts)


def suggest(it: Interpretation) -> str:
    return it.query or "level>=ERROR"


def ask(engine: QueryEngine, question: str, now: int | None = None, llm: Any = None) -> dict[str, Any]:
    """Answer one question: ``{query, operation, from, to, result, answer, llm_used, ...}``."""
    now = now if now is not None else now_ns()
    question = (question or "").strip()
    parser = QuestionParser(engine)
    llm_note = ""
    it: Interpretation | None = None
    llm_used = False
    if llm is not None and question:
        try:
            it = llm_interpret(engine, parser, llm, question, now)
            llm_used = it is not None
        except Exception as exc:  # an unreachable or failing LLM falls back to the parser
            llm_note = f"The LLM could not be used ({exc}); the built-in parser answered."
    if it is None:
        it = parser.parse(question, now)
    base = {"question": question, "query": it.query, "operation": it.operation, "field": it.field,
            "from": _ts(it.start), "to": _ts(it.end), "llm_used": llm_used, "understood": it.understood,
            "not_understood": it.not_understood, "relative": it.relative}
    if it.operation is None or (not it.atoms and it.operation in ("search",) and it.not_understood):
        return {**base, "operation": None, "result": None, "answer": _help(it), "suggested_query": suggest(it)}
    try:
        result, answer = execute(engine, it)
    except (QueryError, ValueError) as exc:
        return {**base, "result": None, "answer": f"The query `{it.query}` could not run: {exc}",
                "suggested_query": suggest(it)}
    notes = list(it.notes)
    if it.not_understood:
        notes.append("Ignored (not found in the logs): " + ", ".join(repr(w) for w in it.not_understood) + ".")
    if llm_note:
        notes.append(llm_note)
    if notes:
        answer = answer + " " + " ".join(notes)
    return {**base, "result": result, "answer": answer}


# ------------------------------------------------------------------------------ with an LLM
_EXAMPLES = [
    ("how many errors from checkout yesterday",
     {"operation": "count", "query": "level>=ERROR service:checkout", "from": "<yesterday 00:00>",
      "to": "<today 00:00>"}),
    ("which hosts logged the most failed password attempts",
     {"operation": "top", "field": "host", "query": "\"failed password\"", "from": None, "to": None}),
    ("when did 'Connection refused' start",
     {"operation": "first", "query": "\"Connection refused\"", "from": None, "to": None}),
    ("new errors in the last hour", {"operation": "patterns", "new_only": True, "query": "level>=ERROR",
                                     "from": "now-1h", "to": "now"}),
    ("show timeouts in payment since 10:00",
     {"operation": "search", "query": "timeout* service:payment", "from": "<today 10:00>", "to": "now"}),
]


def llm_prompt(parser: QuestionParser, now: int) -> str:
    services = sorted(parser.services.values())[:60]
    hosts = sorted(parser.hosts.values())[:60]
    attributes = sorted(parser.attributes.values())[:80]
    examples = "\n".join(f"Q: {q}\nA: {orjson.dumps(a).decode()}" for q, a in _EXAMPLES)
    return f"""You translate questions about logs into a LogLens query. Answer with ONE JSON object only:
{{"operation": "count|search|top|histogram|patterns|anomalies|first|last", "query": "<LogLens query>",
 "from": <time or null>, "to": <time or null>, "field": <for top: service|host|level|template|attribute>,
 "limit": <for top/search, optional>, "new_only": <for patterns: true for new patterns>}}
"first"/"last" find when something first/last happened.

LogLens query language: bare words match whole tokens case-insensitively; "exact phrase"; field:value;
word* prefix; level:ERROR, level>=WARN (TRACE<DEBUG<INFO<WARN<ERROR<FATAL); AND, OR, NOT, -term,
parentheses; /regex/ on the message; attributes by name (status>=500). The empty query matches all.
Built-in fields: {", ".join(BUILTIN_FIELDS)}.
Times: RFC 3339 (UTC, e.g. 2024-01-15T10:00:00Z), or now, now-15m, now-2h, now-7d.
The current time is {format_ts(now)}.
Known services: {", ".join(services) or "(none)"}
Known hosts: {", ".join(hosts) or "(none)"}
Known attributes: {", ".join(attributes) or "(none)"}

Examples:
{examples}"""


def _extract_json(text: str) -> dict[str, Any]:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("the answer holds no JSON object")
    try:
        value = orjson.loads(text[start:end + 1])
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the JSON does not parse: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("the JSON is not an object")
    return value


def validate_llm_answer(engine: QueryEngine, data: dict[str, Any], now: int) -> Interpretation:
    """The model's JSON as an interpretation; raises ValueError (QueryError included) with the reason."""
    it = Interpretation(understood=["written by the LLM"])
    op = str(data.get("operation") or "").strip().lower()
    if op in ("first", "last", "when"):
        it.operation, it.when = "histogram", "last" if op == "last" else "first"
    elif op in OPERATIONS:
        it.operation = op
    else:
        raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}, first or last; got {op!r}")
    query = data.get("query") or ""
    if not isinstance(query, str):
        raise ValueError("query must be a string")
    engine.plan(query)  # raises QueryError naming the position
    it.atoms = [query] if query.strip() else []
    for key in ("from", "to"):
        value = data.get(key)
        if value in (None, ""):
            continue
        try:
            ns = parse_time(value, now_ns=now)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        it.relative = it.relative or (isinstance(value, str) and "now" in value)
        if key == "from":
            it.start = ns
        else:
            it.end = ns
    if it.end is None:
        it.end = now
    if it.start is not None and it.start > it.end:
        raise ValueError("from is after to")
    if it.operation == "top":
        name = str(data.get("field") or "service")
        try:
            it.field = resolve_field_name(name, engine.store.known_attributes())
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
    limit = data.get("limit")
    if isinstance(limit, int) and 1 <= limit <= 100:
        it.limit = limit
    it.new_only = bool(data.get("new_only"))
    if it.operation == "patterns" and it.new_only and it.start is None:
        it.start = now - 3600 * S
    return it


def llm_interpret(engine: QueryEngine, parser: QuestionParser, llm: Any, question: str,
                  now: int) -> Interpretation:
    """Ask the model for the query; on a parse or validation error, tell it and retry (twice at most)."""
    from loglens.llm.client import Message

    system = llm_prompt(parser, now)
    messages = [Message("user", question)]
    last_error = ""
    for _ in range(1 + MAX_LLM_RETRIES):
        text = llm.complete(messages, system=system, max_tokens=400)
        try:
            return validate_llm_answer(engine, _extract_json(text), now)
        except (QueryError, ValueError) as exc:
            last_error = str(exc)
            messages += [Message("assistant", text),
                         Message("user", f"That answer is invalid: {last_error}\nReply with corrected JSON only.")]
    raise ValueError(f"no valid query after {1 + MAX_LLM_RETRIES} attempts: {last_error}")
