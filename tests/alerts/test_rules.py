from __future__ import annotations

from pathlib import Path

import pytest

from loglens.alerts.rules import RuleError, load_config_rules, parse_condition, parse_rule

S = 1_000_000_000


def test_conditions() -> None:
    c = parse_condition("count  >= 10")
    assert (c.kind, c.op, c.threshold) == ("count", ">=", 10)
    assert c.holds(10) and not c.holds(9)
    assert parse_condition("count < 1").holds(0)
    r = parse_condition("rate increase > 50%")
    assert (r.kind, r.threshold) == ("rate", 50)
    assert parse_condition("new pattern").kind == "new_pattern"
    assert parse_condition("anomaly score > 0.8").kind == "anomaly"
    with pytest.raises(ValueError, match="expected 'count > N'"):
        parse_condition("count is big")


def test_rule_defaults_and_errors() -> None:
    rule = parse_rule({"name": "errors", "query": "level:ERROR", "condition": "count > 5", "window": "5m",
                       "targets": [{"type": "webhook", "url": "https://hooks.example/x/TOKEN", "secret": "s3"}]})
    assert rule.every_ns == 60 * S and rule.window_ns == 300 * S and rule.severity == "warning"
    assert rule.repeat_ns == 0
    shown = rule.public()["targets"][0]
    assert shown["secret"] == "***" and "TOKEN" not in shown["url"]
    for bad, message in [
        ({"query": "x", "condition": "count > 1", "window": "5m"}, "'name' is required"),
        ({"name": "a", "condition": "count > 1"}, "'window' is required"),
        ({"name": "a", "condition": "count > 1", "window": "5 minutes"}, "window"),
        ({"name": "a", "condition": "count > 1", "window": "5m", "query": "level:("}, "query"),
        ({"name": "a", "condition": "count > 1", "window": "5m", "every": "10ms"}, "at least 1s"),
        ({"name": "a", "condition": "count > 1", "window": "5m", "severity": "meh"}, "severity"),
        ({"name": "a", "condition": "count > 1", "window": "5m", "targets": [{"type": "sms"}]}, "type"),
        ({"name": "a", "condition": "count > 1", "window": "5m", "targets": [{"type": "slack", "url": "ftp://x"}]},
         "url"),
        ({"name": "a", "condition": "count > 1", "window": "5m", "targets": [{"type": "email"}]}, "to"),
        ({"name": "a", "condition": "count > 1", "window": "5m", "colour": "red"}, "unknown key 'colour'"),
    ]:
        with pytest.raises(RuleError, match=message):
            parse_rule(bad)


def test_config_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "loglens.toml"
    path.write_text("""
[[sources]]
path = "/var/log/app.log"

[[alerts]]
name = "Payment errors"
query = 'service:payments level:ERROR'
condition = "count > 10"
window = "5m"
every = "30s"
severity = "critical"
repeat = "1h"
targets = [
  { type = "slack", url = "https://hooks.slack.com/services/T/B/X" },
  { type = "email", to = ["ops@example.com"], smtp_host = "localhost", smtp_port = 25, from = "loglens@example.com" },
]
""")
    (rule,) = load_config_rules(str(path))
    assert rule.id == "config-payment-errors" and rule.source == "config"
    assert rule.every_ns == 30 * S and rule.repeat_ns == 3600 * S
    assert [t.type for t in rule.targets] == ["slack", "email"]
    path.write_text('[[alerts]]\nname = "x"\ncondition = "count > 1"\n')
    with pytest.raises(RuleError, match=r"\[\[alerts\]\] #1 'x': 'window' is required"):
        load_config_rules(str(path))
