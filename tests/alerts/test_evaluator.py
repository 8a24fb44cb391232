"""State changes, de-duplication, repeat, silences and each condition, with time injected."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from loglens.alerts.notifiers import Notification
from loglens.alerts.rules import Target
from tests.alerts.helpers import T0, Receiver, alert_env, receiver

M = 60.0  # seconds in a minute, for offsets


def hook(rec: Receiver, path: str = "/hook") -> dict[str, Any]:
    return {"type": "webhook", "url": rec.url + path}


def test_firing_resolved_dedup_and_repeat(tmp_path: Path) -> None:
    with receiver() as rec, alert_env(tmp_path) as env:
        svc = env.service
        svc.add_rule({"name": "errors", "query": "level:ERROR", "condition": "count > 2", "window": "1h",
                      "repeat": "10m", "targets": [hook(rec)]})
        env.ingest(*(env.at(-60, f"payment failed for order {i}") for i in range(3)),
                   env.at(-60, "all good", "INFO"))
        (n,) = svc.evaluate(now_ns=T0)
        assert n.change == "firing" and n.value == 3
        assert svc.evaluate(now_ns=T0 + int(30e9)) == []  # still firing: no second notification
        assert svc.evaluate(now_ns=T0 + int(5 * M * 1e9)) == []  # repeat (10m) not due yet
        (r,) = svc.evaluate(now_ns=T0 + int(11 * M * 1e9))
        assert r.change == "repeat"
        assert svc.evaluate(now_ns=T0 + int(12 * M * 1e9)) == []
        (res,) = svc.evaluate(now_ns=T0 + int(2 * 60 * M * 1e9))  # the records left the window
        assert res.change == "resolved" and res.value == 0
        assert svc.evaluate(now_ns=T0 + int(2 * 60 * M * 1e9) + int(60e9)) == []
        got = rec.wait_for("/hook", 3)
        assert [g.json()["change"] for g in got] == ["firing", "repeat", "resolved"]
        assert [g.json()["state"] for g in got] == ["firing", "firing", "resolved"]
        assert svc.dispatcher.wait()
        history = svc.db.history()
        assert [h["change"] for h in history] == ["resolved", "repeat", "firing"]
        assert all(h["deliveries"][0]["outcome"] == "ok" for h in history)
        # the link goes back to the UI with the query and the window
        link = urlsplit(got[0].json()["link"])
        assert (link.scheme, link.netloc, link.path) == ("http", "logs.test:8080", "/")
        params = parse_qs(link.query)
        assert params["q"] == ["level:ERROR"]
        assert params["to"] == ["2025-11-20T10:00:00.000000000Z"]
        assert params["from"] == ["2025-11-20T09:00:00.001000000Z"]
        (status,) = svc.status()
        assert status["state"] == "ok" and status["value"] == 0


def test_silence_suppresses_then_notifies_when_it_ends(tmp_path: Path) -> None:
    with receiver() as rec, alert_env(tmp_path) as env:
        svc = env.service
        rule = svc.add_rule({"name": "disk", "query": "disk", "condition": "count >= 1", "window": "1h",
                             "severity": "critical", "targets": [hook(rec)]})
        other = svc.add_rule({"name": "disk info", "query": "disk", "condition": "count >= 1", "window": "1h",
                              "severity": "info", "targets": [hook(rec, "/other")]})
        svc.add_silence(rule.name, {}, T0 + int(10 * M * 1e9))
        svc.add_silence("", {"severity": "inf*"}, T0 + int(10 * M * 1e9))
        env.ingest(env.at(-30, "disk full on /var"))
        assert svc.evaluate(now_ns=T0) == []
        assert svc.evaluate(now_ns=T0 + int(M * 1e9)) == []
        history = svc.db.history(rule.id)
        assert [(h["change"], h["silenced"], h["deliveries"]) for h in history] == [("firing", True, [])]
        svc.clock = lambda: T0  # status() looks at silences at the service's clock
        assert svc.status()[0]["silenced"] is True
        svc.db.delete_silence(2)  # end the matcher's silence early; the rule's one runs out at T0+10m
        (n,) = svc.evaluate(now_ns=T0 + int(2 * M * 1e9))
        assert n.rule.id == other.id
        (n,) = svc.evaluate(now_ns=T0 + int(11 * M * 1e9))  # still firing, never announced: now it is
        assert n.rule.id == rule.id and n.change == "firing"
        assert len(rec.wait_for("/hook", 1)) == 1 and len(rec.wait_for("/other", 1)) == 1


def test_resolved_is_not_sent_for_a_firing_never_announced(tmp_path: Path) -> None:
    with receiver() as rec, alert_env(tmp_path) as env:
        svc = env.service
        svc.add_rule({"name": "r", "query": "oops", "condition": "count > 0", "window": "5m", "targets": [hook(rec)]})
        svc.add_silence("r", {}, T0 + int(M * 1e9))
        env.ingest(env.at(-10, "oops"))
        assert svc.evaluate(now_ns=T0) == []
        assert svc.evaluate(now_ns=T0 + int(20 * M * 1e9)) == []  # resolved quietly
        assert [h["change"] for h in svc.db.history()] == ["resolved", "firing"]
        assert rec.attempts == []


def test_new_pattern_fires_once_for_a_new_template(tmp_path: Path) -> None:
    with receiver() as rec, alert_env(tmp_path) as env:
        svc = env.service
        svc.add_rule({"name": "new errors", "query": "level:ERROR", "condition": "new pattern", "window": "10m",
                      "targets": [hook(rec)]})
        env.ingest(*(env.at(-7200 + i, f"connection to db-{i} lost") for i in range(5)))
        env.ingest(env.at(-60, "connection to db-9 lost"))  # known template inside the window: not new
        assert svc.evaluate(now_ns=T0) == []
        env.ingest(env.at(30, "disk quota exceeded for uid 1001"), env.at(31, "disk quota exceeded for uid 1002"))
        (n,) = svc.evaluate(now_ns=T0 + int(M * 1e9))
        assert n.change == "firing" and n.value == 1
        (pattern,) = n.details["patterns"]
        assert "disk quota exceeded" in pattern["template"] and pattern["count"] == 2
        env.ingest(env.at(120, "disk quota exceeded for uid 1003"))
        assert svc.evaluate(now_ns=T0 + int(3 * M * 1e9)) == []  # same template: no second notification
        assert svc.evaluate(now_ns=T0 + int(5 * M * 1e9)) == []
        (res,) = svc.evaluate(now_ns=T0 + int(30 * M * 1e9))  # no longer new in the window
        assert res.change == "resolved"
        got = rec.wait_for("/hook", 2)
        assert [g.json()["change"] for g in got] == ["firing", "resolved"]
        assert "disk quota exceeded" in got[0].json()["details"]["patterns"][0]["template"]


def test_rate_increase(tmp_path: Path) -> None:
    with alert_env(tmp_path) as env:
        svc = env.service
        svc.add_rule({"name": "rate", "query": "timeout", "condition": "rate increase > 50%", "window": "10m"})
        env.ingest(*(env.at(-15 * M + i, "timeout calling api") for i in range(10)))  # previous window
        env.ingest(*(env.at(-5 * M + i, "timeout calling api") for i in range(14)))  # +40%
        assert svc.evaluate(now_ns=T0) == []
        assert svc.status()[0]["value"] == 40.0
        env.ingest(*(env.at(-4 * M + i, "timeout calling api") for i in range(2)))  # +60%
        (n,) = svc.evaluate(now_ns=T0)
        assert n.change == "firing" and n.value == 60.0
        assert n.details == {"count": 16, "previous_count": 10}


def test_anomaly_rules_are_kept_but_unavailable(tmp_path: Path) -> None:
    with alert_env(tmp_path) as env:
        svc = env.service
        svc.add_rule({"name": "odd", "query": "", "condition": "anomaly score > 0.9", "window": "5m"})
        assert svc.evaluate(now_ns=T0) == []
        (status,) = svc.status()
        assert status["state"] == "unavailable" and "not available yet" in status["error"]


def test_evaluator_survives_failures(tmp_path: Path) -> None:
    with receiver() as rec, alert_env(tmp_path) as env:
        svc = env.service
        svc.add_rule({"name": "bad", "query": "nosuchfield:1", "condition": "count > 0", "window": "5m",
                      "targets": [hook(rec)]})
        svc.add_rule({"name": "good", "query": "boom", "condition": "count > 0", "window": "5m",
                      "targets": [hook(rec)]})

        def broken(n: Notification, target: Target, timeout: float) -> None:
            raise RuntimeError("a bug")

        env.ingest(env.at(-1, "boom"))
        svc.dispatcher.sender = broken
        (n,) = svc.evaluate(now_ns=T0)  # the bad rule fails alone
        assert n.rule.name == "good"
        assert svc.dispatcher.wait()
        bad, good = svc.status()
        assert "nosuchfield" in bad["error"] and good["state"] == "firing"
        (h,) = svc.db.history()
        assert h["deliveries"][0]["outcome"] == "failed" and "a bug" in h["deliveries"][0]["error"]
        # the background thread keeps going too
        svc.start()
        assert svc._thread is not None and svc._thread.is_alive()
