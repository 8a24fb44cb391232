"""End to end: a real ``loglens serve --config`` with an [[alerts]] rule, and the /api/v1/alerts routes."""

from __future__ import annotations

import time
from pathlib import Path

from tests.alerts.helpers import receiver
from tests.conftest import start_server, stop_server


def test_config_rule_fires_to_webhook_and_api(tmp_path: Path) -> None:
    with receiver() as rec:
        config = tmp_path / "loglens.toml"
        config.write_text(f"""
[[alerts]]
name = "checkout errors"
query = "service:checkout level:ERROR"
condition = "count >= 3"
window = "30s"
every = "1s"
severity = "critical"
targets = [{{ type = "webhook", url = "{rec.url}/hook", secret = "topsecret" }}]
""")
        server = start_server(tmp_path / "data", "--config", str(config),
                              env={"LOGLENS_UI_URL": "https://logs.example.com"})
        try:
            with server.client() as c:
                (rule,) = c.get("/api/v1/alerts").json()["alerts"]
                assert rule["id"] == "config-checkout-errors" and rule["source"] == "config"
                assert rule["targets"][0]["secret"] == "***"
                lines = "\n".join(f'{{"level": "error", "message": "charge failed for cart {i}"}}' for i in range(3))
                r = c.post("/api/v1/logs", content=lines, params={"service": "checkout"},
                           headers={"Content-Type": "application/x-ndjson"})
                assert r.json()["accepted"] == 3
                started = time.monotonic()
                (hook,) = rec.wait_for("/hook", timeout=15)
                assert hook.at - started < 8  # within a few evaluation intervals (every = 1s)
                body = hook.json()
                assert body["state"] == "firing" and body["value"] == 3 and body["rule"]["name"] == "checkout errors"
                assert body["link"].startswith("https://logs.example.com/?q=service%3Acheckout+level%3AERROR&from=")
                assert hook.headers["x-loglens-signature"].startswith("sha256=")
                assert c.get("/api/v1/alerts/config-checkout-errors").json()["state"] == "firing"

                # the history, with the delivery's outcome
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    (entry,) = c.get("/api/v1/alerts/history").json()["history"]
                    if entry["deliveries"][0]["outcome"] != "pending":
                        break
                    time.sleep(0.1)
                assert entry["rule"] == "checkout errors" and entry["change"] == "firing" and entry["value"] == 3
                assert entry["deliveries"][0]["outcome"] == "ok"
                assert entry["deliveries"][0]["target"] == "webhook:" + rec.url.split("//")[1]
                metrics = c.get("/metrics").text
                assert 'loglens_alert_deliveries_total{outcome="ok",target="webhook"} 1.0' in metrics
                evaluations = next(line for line in metrics.splitlines()
                                   if line.startswith("loglens_alert_evaluations_total "))
                assert float(evaluations.split()[1]) >= 1
                assert "topsecret" not in metrics and "topsecret" not in server.log.read_text()

                # rules over the API: validated, listed, persisted, deleted; config rules stay
                r = c.post("/api/v1/alerts", json={"name": "x", "condition": "count > ", "window": "5m"})
                assert r.status_code == 400 and "condition" in r.json()["error"]
                r = c.post("/api/v1/alerts", json={"name": "checkout errors", "condition": "count > 1",
                                                   "window": "5m"})
                assert r.status_code == 409
                r = c.post("/api/v1/alerts", json={"name": "slow", "query": "timeout", "condition": "count > 100",
                                                   "window": "5m", "targets": [
                                                       {"type": "slack", "url": rec.url + "/services/T/B/SECRET"}]})
                assert r.status_code == 201, r.text
                api_rule = r.json()
                assert "SECRET" not in r.text
                assert {a["name"] for a in c.get("/api/v1/alerts").json()["alerts"]} == {"checkout errors", "slow"}
                assert c.delete("/api/v1/alerts/config-checkout-errors").status_code == 409

                # silences
                r = c.post("/api/v1/alerts/silences", json={"rule": "slow", "for": "1h", "comment": "deploy"})
                assert r.status_code == 201, r.text
                (s,) = c.get("/api/v1/alerts/silences").json()["silences"]
                assert s["rule"] == "slow" and s["comment"] == "deploy"
                assert c.post("/api/v1/alerts/silences", json={"rule": "nope", "for": "1h"}).status_code == 400
                assert c.post("/api/v1/alerts/silences", json={"rule": "slow"}).status_code == 400
                assert c.get(f"/api/v1/alerts/{api_rule['id']}").json()["silenced"] is True
                assert c.delete(f"/api/v1/alerts/silences/{s['id']}").status_code == 200
        finally:
            stop_server(server)

        server = start_server(tmp_path / "data", "--config", str(config))  # API rules survive a restart
        try:
            with server.client() as c:
                assert {a["name"] for a in c.get("/api/v1/alerts").json()["alerts"]} == {"checkout errors", "slow"}
                assert c.delete(f"/api/v1/alerts/{api_rule['id']}").status_code == 200
                assert c.delete(f"/api/v1/alerts/{api_rule['id']}").status_code == 404
                assert [a["name"] for a in c.get("/api/v1/alerts").json()["alerts"]] == ["checkout errors"]
                assert c.get("/api/v1/alerts/history").json()["history"][-1]["change"] == "firing"
        finally:
            stop_server(server)
