"""Deliveries to a local HTTP receiver and SMTP sink: payload shapes, signatures, retries, independence."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import orjson

from tests.alerts.helpers import T0, alert_env, receiver, smtp_sink

SLACK_BLOCK_TYPES = {"header", "section", "actions", "context", "divider"}


def test_slack_discord_and_signed_webhook_payloads(tmp_path: Path) -> None:
    with receiver() as rec, alert_env(tmp_path) as env:
        svc = env.service
        svc.add_rule({"name": "API errors", "query": 'service:api level:ERROR', "condition": "count > 1",
                      "window": "5m", "severity": "critical", "targets": [
                          {"type": "slack", "url": rec.url + "/slack/T000/B000/XXXX"},
                          {"type": "discord", "url": rec.url + "/discord/123/token"},
                          {"type": "webhook", "url": rec.url + "/hook", "secret": "s3cret"},
                      ]})
        env.ingest(env.at(-10, "request failed: upstream timeout"), env.at(-5, "request failed: upstream reset"),
                   service="api")
        (n,) = svc.evaluate(now_ns=T0)

        (slack,) = rec.wait_for("/slack/T000/B000/XXXX")
        assert slack.headers["content-type"] == "application/json"
        body = slack.json()
        assert set(body) == {"text", "blocks"}
        assert "[FIRING] API errors" in body["text"] and n.link in body["text"]
        assert body["blocks"] and all(b["type"] in SLACK_BLOCK_TYPES for b in body["blocks"])
        header = body["blocks"][0]
        assert header["type"] == "header" and header["text"]["type"] == "plain_text"
        assert len(header["text"]["text"]) <= 150
        for block in body["blocks"]:
            if block["type"] == "section":
                assert block["text"]["type"] == "mrkdwn" and len(block["text"]["text"]) <= 3000
                for f in block.get("fields", []):
                    assert f["type"] == "mrkdwn"
        (button,) = body["blocks"][-1]["elements"]
        assert button["type"] == "button" and button["url"] == n.link

        (discord,) = rec.wait_for("/discord/123/token")
        body = discord.json()
        assert set(body) == {"content", "embeds"}
        assert body["content"].startswith("[FIRING] API errors (critical)") and len(body["content"]) <= 2000
        (embed,) = body["embeds"]
        assert embed["title"] == "[FIRING] API errors" and embed["url"] == n.link
        assert isinstance(embed["color"], int) and embed["timestamp"] == "2025-11-20T10:00:00.000000000Z"
        assert {f["name"] for f in embed["fields"]} >= {"Severity", "Condition", "Value", "Query"}
        assert all(isinstance(f["value"], str) and f["value"] for f in embed["fields"])

        (hook,) = rec.wait_for("/hook")
        expected = "sha256=" + hmac.new(b"s3cret", hook.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(hook.headers["x-loglens-signature"], expected)
        body = orjson.loads(hook.body)
        assert body["state"] == "firing" and body["value"] == 2 and body["link"] == n.link
        assert body["rule"] == {"id": n.rule.id, "name": "API errors", "query": "service:api level:ERROR",
                                "condition": "count > 1", "window": "5m", "severity": "critical"}
        assert "s3cret" not in hook.body.decode()


def test_failing_target_recovers_without_blocking_the_others(tmp_path: Path) -> None:
    with receiver() as rec, alert_env(tmp_path, backoff=0.3, attempts=5) as env:
        rec.fail_first["/flaky"] = 3  # 500 three times, then 200
        rec.delay["/slow"] = 1.5
        svc = env.service
        svc.add_rule({"name": "r", "query": "boom", "condition": "count > 0", "window": "5m", "targets": [
            {"type": "webhook", "url": rec.url + "/flaky"},
            {"type": "webhook", "url": rec.url + "/slow"},
            {"type": "slack", "url": rec.url + "/healthy"},
        ]})
        env.ingest(env.at(-1, "boom"))
        started = time.monotonic()
        svc.evaluate(now_ns=T0)
        (healthy,) = rec.wait_for("/healthy", timeout=5)
        assert healthy.at - started < 1.0  # neither the failing nor the slow target held it up
        rec.wait_for("/flaky", timeout=15)
        flaky_tries = [a for a in rec.attempts if a.path == "/flaky"]
        assert len(flaky_tries) == 4
        assert healthy.at < flaky_tries[1].at
        # exponential backoff: 0.3 s, 0.6 s, 1.2 s between the attempts
        gaps = [b.at - a.at for a, b in itertools.pairwise(flaky_tries)]
        assert gaps[0] >= 0.25 and gaps[1] >= 0.55 and gaps[2] >= 1.1
        rec.wait_for("/slow")
        assert svc.dispatcher.wait()
        (h,) = svc.db.history()
        outcomes = {d["target"].split(":")[0] + str(d["index"]): (d["outcome"], d["attempts"]) for d in h["deliveries"]}
        assert outcomes == {"webhook0": ("ok", 4), "webhook1": ("ok", 1), "slack2": ("ok", 1)}
        assert all(d["target"] == f"{d['target'].split(':')[0]}:{rec.url.split('//')[1]}" for d in h["deliveries"])


def test_bounded_attempts_and_no_retry_on_client_errors(tmp_path: Path) -> None:
    with receiver() as rec, alert_env(tmp_path, backoff=0.01, attempts=3) as env:
        rec.fail_first["/down"] = 100
        svc = env.service
        svc.add_rule({"name": "r", "query": "boom", "condition": "count > 0", "window": "5m", "targets": [
            {"type": "webhook", "url": rec.url + "/down"}]})
        env.ingest(env.at(-1, "boom"))
        svc.evaluate(now_ns=T0)
        assert svc.dispatcher.wait()
        (d,) = svc.db.history()[0]["deliveries"]
        assert (d["outcome"], d["attempts"]) == ("failed", 3) and "HTTP 500" in d["error"]
        rec.fail_status = 404
        svc.evaluate(now_ns=T0 + 3600 * 10**9)  # resolved, to a target that answers 404: not retried
        assert svc.dispatcher.wait()
        (d,) = svc.db.history()[0]["deliveries"]
        assert (d["outcome"], d["attempts"]) == ("failed", 1) and "HTTP 404" in d["error"]


def test_email_over_smtp(tmp_path: Path) -> None:
    with smtp_sink() as sink, alert_env(tmp_path) as env:
        svc = env.service
        svc.add_rule({"name": "db down", "query": "database", "condition": "count >= 1", "window": "5m",
                      "targets": [{"type": "email", "to": ["ops@example.com", "dba@example.com"],
                                   "smtp_host": sink.host, "smtp_port": sink.port, "from": "loglens@example.com"}]})
        env.ingest(env.at(-3, "database connection refused"))
        (n,) = svc.evaluate(now_ns=T0)
        assert svc.dispatcher.wait()
        (mail,) = sink.messages
        assert mail["from"] == "<loglens@example.com>"
        assert mail["to"] == ["<ops@example.com>", "<dba@example.com>"]
        msg: Message = message_from_bytes(mail["data"])
        assert msg["Subject"] == "[LogLens] [FIRING] db down"
        assert msg["To"] == "ops@example.com, dba@example.com"
        text = msg.get_payload(decode=True)
        assert isinstance(text, bytes)
        assert b"Condition: count >= 1" in text and n.link.encode() in text
        (d,) = svc.db.history()[0]["deliveries"]
        assert d["target"] == "email:ops@example.com,dba@example.com" and d["outcome"] == "ok"
