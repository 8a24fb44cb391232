"""Alert rules: what to watch (a query and a condition over a window) and where to send notifications.

Rules come from ``[[alerts]]`` tables of the configuration file (``loglens serve --config``) or from
``POST /api/v1/alerts`` (JSON); both go through :func:`parse_rule`, which raises :class:`RuleError`
naming the rule and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loglens.query.errors import QueryError
from loglens.query.language import parse as parse_query
from loglens.query.timerange import parse_duration

__all__ = [
    "SEVERITIES",
    "TARGET_TYPES",
    "Condition",
    "Rule",
    "RuleError",
    "Target",
    "load_config_rules",
    "parse_condition",
    "parse_rule",
]

SEVERITIES = ("info", "warning", "error", "critical")
TARGET_TYPES = ("slack", "discord", "webhook", "email")
RULE_KEYS = frozenset(("id", "name", "query", "condition", "window", "every", "severity", "targets", "repeat",
                       "enabled", "description"))
TARGET_KEYS = {
    "slack": frozenset(("type", "url")),
    "discord": frozenset(("type", "url")),
    "webhook": frozenset(("type", "url", "secret")),
    "email": frozenset(("type", "to", "smtp_host", "smtp_port", "from", "username", "password", "starttls",
                        "timeout")),
}
#: Target keys whose values are secrets: never shown by the API nor logged.
SECRET_KEYS = frozenset(("secret", "password"))
MIN_EVERY_NS = 1_000_000_000  # one second

_COUNT = re.compile(r"count\s*(>=|<=|>|<|==)\s*([0-9]+)", re.IGNORECASE)
_RATE = re.compile(r"rate\s+increase\s*>\s*([0-9]+(?:\.[0-9]+)?)\s*%", re.IGNORECASE)
_NEW = re.compile(r"new\s+patterns?", re.IGNORECASE)
_ANOMALY = re.compile(r"anomaly\s+score\s*>\s*([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)
_SLUG = re.compile(r"[^a-z0-9]+")


class RuleError(ValueError):
    """A rule is not valid; the message names the rule and the key."""


@dataclass(frozen=True, slots=True)
class Condition:
    """``kind`` is ``count``, ``rate``, ``new_pattern`` or ``anomaly``."""

    kind: str
    op: str = ">"
    threshold: float = 0.0
    text: str = ""

    def holds(self, value: float) -> bool:
        if self.op == ">":
            return value > self.threshold
        if self.op == ">=":
            return value >= self.threshold
        if self.op == "<":
            return value < self.threshold
        if self.op == "<=":
            return value <= self.threshold
        return value == self.threshold


def parse_condition(text: str) -> Condition:
    """``count > N`` (also ``>=``, ``<``, ``<=``, ``==``), ``rate increase > x%``, ``new pattern``,
    ``anomaly score > s``. Raises ``ValueError``."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string, got {text!r}")
    spec = " ".join(text.split())
    if m := _COUNT.fullmatch(spec):
        return Condition("count", m.group(1), float(m.group(2)), spec)
    if m := _RATE.fullmatch(spec):
        return Condition("rate", ">", float(m.group(1)), spec)
    if _NEW.fullmatch(spec):
        return Condition("new_pattern", text="new pattern")
    if m := _ANOMALY.fullmatch(spec):
        return Condition("anomaly", ">", float(m.group(1)), spec)
    raise ValueError(f"cannot parse condition {text!r}: expected 'count > N' (or >=, <, <=, ==), "
                     "'rate increase > X%', 'new pattern' or 'anomaly score > S'")


@dataclass(frozen=True, slots=True)
class Target:
    type: str
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """Where it goes, without secrets: the host of a URL (webhook URLs carry tokens in their path)."""
        if self.type == "email":
            return f"email:{','.join(self.recipients())}"
        host = urlsplit(str(self.options.get("url", ""))).netloc
        return f"{self.type}:{host}"

    def recipients(self) -> list[str]:
        to = self.options.get("to", [])
        return [to] if isinstance(to, str) else [str(t) for t in to]

    def public(self) -> dict[str, Any]:
        """The target as the API shows it: secrets masked, URL paths (which hold tokens) cut."""
        shown: dict[str, Any] = {"type": self.type}
        for key, value in self.options.items():
            if key in SECRET_KEYS:
                shown[key] = "***" if value else ""
            elif key == "url":
                parts = urlsplit(str(value))
                shown[key] = f"{parts.scheme}://{parts.netloc}/…" if parts.path not in ("", "/") else str(value)
            else:
                shown[key] = value
        return shown


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    query: str
    condition: Condition
    window_ns: int
    every_ns: int
    severity: str
    targets: tuple[Target, ...]
    repeat_ns: int = 0
    enabled: bool = True
    description: str = ""
    source: str = "api"  # "api" or "config"
    spec: dict[str, Any] = field(default_factory=dict, compare=False)  # as given, for persistence

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "query": self.query, "condition": self.condition.text,
            "window": self.spec.get("window"), "every": self.spec.get("every", "1m"),
            "severity": self.severity, "repeat": self.spec.get("repeat") or None, "enabled": self.enabled,
            "description": self.description, "source": self.source,
            "targets": [t.public() for t in self.targets],
        }


def slug(name: str) -> str:
    return _SLUG.sub("-", name.lower()).strip("-") or "rule"


def _duration(raw: dict[str, Any], key: str, where: str, default: str | None = None) -> int:
    value = raw.get(key, default)
    if value is None:
        raise RuleError(f"{where}: '{key}' is required (a duration such as 5m)")
    try:
        ns = parse_duration(str(value))
    except ValueError as exc:
        raise RuleError(f"{where}.{key}: {exc}") from None
    return ns


def _target(raw: Any, where: str) -> Target:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: expected a table/object with a 'type'")
    kind = raw.get("type")
    if kind not in TARGET_TYPES:
        raise RuleError(f"{where}.type: expected one of {', '.join(TARGET_TYPES)}, got {kind!r}")
    unknown = sorted(set(raw) - TARGET_KEYS[kind])
    if unknown:
        raise RuleError(f"{where}: unknown key {unknown[0]!r} for a {kind} target "
                        f"(known: {', '.join(sorted(TARGET_KEYS[kind]))})")
    options = {k: v for k, v in raw.items() if k != "type"}
    if kind == "email":
        to = options.get("to")
        if not to or not (isinstance(to, str) or (isinstance(to, list) and all(isinstance(t, str) for t in to))):
            raise RuleError(f"{where}.to: expected an address or a list of addresses")
        port = options.get("smtp_port", 25)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise RuleError(f"{where}.smtp_port: expected a port number, got {port!r}")
    else:
        url = options.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise RuleError(f"{where}.url: expected an http(s) URL")
        if kind == "webhook" and not isinstance(options.get("secret", ""), str):
            raise RuleError(f"{where}.secret: expected a string")
    return Target(kind, options)


def parse_rule(raw: Any, *, where: str = "rule", source: str = "api", rule_id: str | None = None) -> Rule:
    """Validate one rule given as a TOML table or a JSON object."""
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: expected a table/object")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RuleError(f"{where}: 'name' is required (a non-empty string)")
    where = f"{where} {name!r}"
    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        raise RuleError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(RULE_KEYS))})")
    query = raw.get("query", "")
    if not isinstance(query, str):
        raise RuleError(f"{where}.query: expected a string")
    try:
        parse_query(query)
    except QueryError as exc:
        raise RuleError(f"{where}.query: {exc.headline}") from None
    try:
        condition = parse_condition(raw.get("condition", ""))
    except ValueError as exc:
        raise RuleError(f"{where}.condition: {exc}") from None
    window = _duration(raw, "window", where)
    every = _duration(raw, "every", where, "1m")
    if window <= 0:
        raise RuleError(f"{where}.window: must be positive")
    if every < MIN_EVERY_NS:
        raise RuleError(f"{where}.every: must be at least 1s")
    repeat = _duration(raw, "repeat", where, "0s") if raw.get("repeat") else 0
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        raise RuleError(f"{where}.severity: expected one of {', '.join(SEVERITIES)}, got {severity!r}")
    targets_raw = raw.get("targets", [])
    if not isinstance(targets_raw, list):
        raise RuleError(f"{where}.targets: expected a list of targets")
    targets = tuple(_target(t, f"{where}.targets[{i}]") for i, t in enumerate(targets_raw))
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(f"{where}.enabled: expected true or false")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise RuleError(f"{where}.description: expected a string")
    ident = rule_id or raw.get("id") or (f"config-{slug(name)}" if source == "config" else slug(name))
    if not isinstance(ident, str) or not ident:
        raise RuleError(f"{where}.id: expected a non-empty string")
    spec = {k: v for k, v in raw.items() if k != "id"}
    return Rule(ident, name.strip(), query, condition, window, every, severity, targets, repeat, enabled,
                description, source, spec)


def load_config_rules(path: str) -> list[Rule]:
    """The ``[[alerts]]`` tables of the configuration file (none when it has no such key)."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise RuleError(f"{path}: cannot read the configuration file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{path}: not valid TOML: {exc}") from None
    tables = raw.get("alerts", [])
    if not isinstance(tables, list):
        raise RuleError(f"{path}: key 'alerts': expected [[alerts]] tables")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, table in enumerate(tables, 1):
        rule = parse_rule(table, where=f"{path}: [[alerts]] #{i}", source="config")
        if rule.id in seen:
            raise RuleError(f"{path}: [[alerts]] #{i}: another rule is named {rule.name!r}")
        seen.add(rule.id)
        rules.append(rule)
    return rules
