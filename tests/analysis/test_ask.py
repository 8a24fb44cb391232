"""Ask: questions over a small store with known records, without and with an LLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from loglens.analysis.ask import ask, parse_time_phrase
from loglens.config import Settings
from loglens.llm import LLMClient, LLMConfig
from loglens.query.engine import QueryEngine
from loglens.server import create_app
from tests.conftest import Server
from tests.llm.helpers import NOW, NOW_ISO, S, build_store, fake_llm

DAY = "2025-11-20T00:00:00.000000000Z"
YESTERDAY = "2025-11-19T00:00:00.000000000Z"
NOW_TS = "2025-11-20T12:00:00.000000000Z"


@pytest.fixture(autouse=True)
def lexical_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chat's semantic retrieval with its BM25 scorer: loading the embedding model takes seconds."""
    monkeypatch.setenv("LOGLENS_SEMANTIC", "bm25")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryEngine]:
    eng = build_store(tmp_path_factory.mktemp("ask") / "data")
    yield eng
    eng.store.close()


# question, operation, query, from, to, check on the result
CASES: list[tuple[str, str, str, str | None, str | None, Any]] = [
    ("how many errors from nova-compute yesterday", "count", 'level>=ERROR service:"nova-compute"',
     YESTERDAY, DAY, {"count": 4}),
    ("How many warnings yesterday?", "count", "level:WARN", YESTERDAY, DAY, {"count": 7}),
    ("how many errors today", "count", "level>=ERROR", DAY, NOW_TS, {"count": 11}),
    ("how many errors in the last 3 hours", "count", "level>=ERROR", "2025-11-20T09:00:00.000000000Z", NOW_TS,
     {"count": 11}),
    ("how many errors in the last 2 hours", "count", "level>=ERROR", "2025-11-20T10:00:00.000000000Z", NOW_TS,
     {"count": 7}),
    ("how many errors from payment between 09:00 and 10:00", "count", 'level>=ERROR service:"payment"',
     "2025-11-20T09:00:00.000000000Z", "2025-11-20T10:00:00.000000000Z", {"count": 4}),
    ("how many log lines this morning", "count", "", DAY, NOW_TS, {"count": 13}),
    ("how many records on 2025-11-19", "count", "", YESTERDAY, DAY, {"count": 18}),
    ("how many warnings on bastion-1", "count", 'level:WARN host:"bastion-1"', None, NOW_TS, {"count": 5}),
    ("how many cart errors since 11:00", "count", "level>=ERROR cart", "2025-11-20T11:00:00.000000000Z", NOW_TS,
     {"count": 3}),
    ("how many instances failed to spawn yesterday", "count", "instance failed spawn", YESTERDAY, DAY,
     {"count": 4}),
    ("how many errors from the payment service in the last 5 minutes", "count", 'level>=ERROR service:"payment"',
     "2025-11-20T11:55:00.000000000Z", NOW_TS, {"count": 0}),
    ("which hosts logged the most failed password attempts", "top", '"failed password"', None, NOW_TS,
     {"field": "host", "values": [{"value": "bastion-1", "count": 5}, {"value": "bastion-2", "count": 2}]}),
    ("top 2 services by errors", "top", "level>=ERROR", None, NOW_TS,
     {"field": "service", "values": [{"value": "payment", "count": 8}, {"value": "nova-compute", "count": 4}]}),
    ("how many hosts logged errors today", "top", "level>=ERROR", DAY, NOW_TS,
     lambda r: r["distinct"] == 3 and r["values"][0] == {"value": "pay-2", "count": 5}),
    ("show timeouts in payment since 10:00", "search", 'service:"payment" timeout',
     "2025-11-20T10:00:00.000000000Z", NOW_TS, lambda r: r["count"] == 4 and len(r["records"]) == 4),
    ('show me "Accepted password"', "search", '"Accepted password"', None, NOW_TS,
     lambda r: r["count"] == 1 and r["records"][0]["host"] == "bastion-2"),
    ("when did 'Connection refused' start", "histogram", '"Connection refused"', None, NOW_TS,
     lambda r: r["first_seen"] == "2025-11-20T09:15:00.000000000Z" and r["count"] == 3),
    ("when did timeouts last happen", "histogram", "timeout", None, NOW_TS,
     lambda r: r["last_seen"] == "2025-11-20T10:25:00.000000000Z" and r["first_seen"].startswith("2025-11-20T09:30")),
    ("new errors in the last hour", "patterns", "level>=ERROR", "2025-11-20T11:00:00.000000000Z", NOW_TS,
     lambda r: [p["template"] for p in r["patterns"]] == ["Cart service unavailable for user <*>"]),
    ("errors per hour today", "histogram", "level>=ERROR", DAY, NOW_TS,
     lambda r: r["interval_ms"] == 3_600_000 and sum(b["total"] for b in r["buckets"]) == 11),
]


@pytest.mark.parametrize(("question", "operation", "query", "start", "end", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_questions_without_llm(engine: QueryEngine, question: str, operation: str, query: str, start: str | None,
                               end: str | None, expected: Any) -> None:
    got = ask(engine, question, now=NOW)
    assert (got["operation"], got["query"], got["from"], got["to"]) == (operation, query, start, end)
    assert got["llm_used"] is False
    if callable(expected):
        assert expected(got["result"]), got["result"]
    else:
        assert got["result"] == expected
    assert got["answer"]


def test_answer_states_the_number(engine: QueryEngine) -> None:
    got = ask(engine, "how many errors from nova-compute yesterday", now=NOW)
    assert got["answer"].startswith("4 records match")


def test_now_replays_relative_times(engine: QueryEngine) -> None:
    early = ask(engine, "how many errors in the last hour", now=NOW - 2 * 3600 * S)  # 09:00-10:00
    late = ask(engine, "how many errors in the last hour", now=NOW)  # 11:00-12:00
    assert early["result"] == {"count": 4} and late["result"] == {"count": 3}


def test_unanswerable_question_gets_help_not_a_number(engine: QueryEngine) -> None:
    got = ask(engine, "why is the sky blue", now=NOW)
    assert got["operation"] is None and got["result"] is None
    assert "could not" in got["answer"] and "'sky'" in got["answer"]
    assert got["suggested_query"] and not any(ch.isdigit() for ch in got["answer"].split("Try")[0])


def test_words_not_in_the_logs_are_reported(engine: QueryEngine) -> None:
    got = ask(engine, "which hosts logged the most failed password attempts", now=NOW)
    assert got["not_understood"] == ["attempts"] and "attempts" in got["answer"]


def test_anomalies_operation(engine: QueryEngine) -> None:
    got = ask(engine, "any anomalies in the last 6 hours", now=NOW)
    assert got["operation"] == "anomalies" and got["answer"]


@pytest.mark.parametrize(("phrase", "start", "end"), [
    ("in the last 15 minutes", NOW - 900 * S, NOW),
    ("past hour", NOW - 3600 * S, NOW),
    ("last 2 days", NOW - 2 * 86400 * S, NOW),
    ("since 10am", NOW - 2 * 3600 * S, NOW),
    ("since 13:00", NOW - 23 * 3600 * S, NOW),  # later than now: yesterday's 13:00
    ("between 2025-11-19 and 2025-11-20", NOW - 36 * 3600 * S, NOW - 12 * 3600 * S),
    ("this afternoon", NOW, NOW),
    ("last night", NOW - 18 * 3600 * S, NOW - 6 * 3600 * S),
])
def test_time_phrases(phrase: str, start: int, end: int) -> None:
    found = parse_time_phrase(phrase, NOW)
    assert found is not None and (found[1], found[2]) == (start, end)


# ------------------------------------------------------------------------------ with an LLM
def _llm(url: str, provider: str = "openai") -> LLMClient:
    return LLMClient(LLMConfig(provider=provider, base_url=url, model="m", api_key="k", timeout=5),
                     sleep=lambda _: None)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_llm_query_is_validated_and_retried_with_the_error(engine: QueryEngine, provider: str) -> None:
    bad = orjson.dumps({"operation": "count", "query": "level>=ERROR (service:payment", "from": "now-3h"}).decode()
    good = "Here you go: " + orjson.dumps({"operation": "count", "query": "level>=ERROR service:payment",
                                           "from": "now-3h", "to": "now"}).decode()
    with fake_llm(provider, [bad, good]) as fake:
        got = ask(engine, "how many payment errors recently", now=NOW, llm=_llm(fake.url, provider))
    assert got["llm_used"] is True
    assert got["query"] == "level>=ERROR service:payment" and got["result"] == {"count": 8}
    assert got["from"] == "2025-11-20T09:00:00.000000000Z"
    assert len(fake.requests) == 2
    retry = fake.requests[1]["messages"][-1]["content"]
    assert "invalid" in retry and "expected" in retry.lower()  # the parser's own error went back
    prompt = orjson.dumps(fake.requests[0]).decode()
    assert "nova-compute" in prompt and "bastion-1" in prompt and NOW_ISO[:16] in prompt


def test_llm_gives_up_after_two_retries_and_the_parser_answers(engine: QueryEngine) -> None:
    with fake_llm("openai", ['{"operation": "explode", "query": ""}']) as fake:
        got = ask(engine, "how many errors from nova-compute yesterday", now=NOW, llm=_llm(fake.url))
    assert len(fake.requests) == 3
    assert got["llm_used"] is False and got["result"] == {"count": 4}
    assert "LLM could not be used" in got["answer"]


def test_llm_unreachable_falls_back(engine: QueryEngine) -> None:
    from tests.conftest import free_port

    client = _llm(f"http://127.0.0.1:{free_port()}/v1")
    got = ask(engine, "how many errors today", now=NOW, llm=client)
    assert got["result"] == {"count": 11} and got["llm_used"] is False


def test_llm_first_occurrence(engine: QueryEngine) -> None:
    reply = orjson.dumps({"operation": "first", "query": '"connection refused"'}).decode()
    with fake_llm("openai", [reply]) as fake:
        got = ask(engine, "when did the db connection start failing", now=NOW, llm=_llm(fake.url))
    assert got["llm_used"] and got["operation"] == "histogram"
    assert got["result"]["first_seen"] == "2025-11-20T09:15:00.000000000Z"


# ------------------------------------------------------------------------------ HTTP and CLI
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("askapi") / "data"
    build_store(data).store.close()
    return data


def test_http_ask(data_dir: Path) -> None:
    with TestClient(create_app(Settings(data=str(data_dir)))) as client:
        resp = client.post("/api/v1/ask", json={"question": "how many errors from nova-compute yesterday",
                                                "now": NOW_ISO})
        assert resp.status_code == 200
        body = resp.json()
        assert {k: body[k] for k in ("query", "operation", "from", "to", "result", "llm_used")} == {
            "query": 'level>=ERROR service:"nova-compute"', "operation": "count", "from": YESTERDAY, "to": DAY,
            "result": {"count": 4}, "llm_used": False}
        assert client.post("/api/v1/ask", json={}).status_code == 400
        assert client.post("/api/v1/ask", json={"question": "x", "now": "soon"}).status_code == 400


def test_http_ask_needs_only_a_read_key(data_dir: Path, tmp_path: Path) -> None:
    import shutil

    from tests.server.test_auth import bearer, make_keys

    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    keys = make_keys(data)
    with TestClient(create_app(Settings(data=str(data), auth="on"))) as client:
        body = {"question": "how many errors today", "now": NOW_ISO}
        assert client.post("/api/v1/ask", json=body).status_code == 401
        assert client.post("/api/v1/ask", json=body, headers=bearer(keys.ingest)).status_code == 403
        assert client.post("/api/v1/ask", json=body, headers=bearer(keys.read)).json()["result"] == {"count": 11}
        chat = {"messages": [{"role": "user", "content": "errors today"}], "now": NOW_ISO}
        assert client.post("/api/v1/chat", json=chat, headers=bearer(keys.read)).status_code == 200


def test_cli_ask(data_dir: Path) -> None:
    from tests.conftest import run_cli

    out = run_cli("ask", "how many errors from nova-compute yesterday", "--now", NOW_ISO, "--data", str(data_dir),
                  "-o", "json")
    body = orjson.loads(out.stdout)
    assert body["result"] == {"count": 4} and body["query"] == 'level>=ERROR service:"nova-compute"'
    text = run_cli("ask", "how many errors today", "--now", NOW_ISO, "--data", str(data_dir))
    assert "11 records match" in text.stdout.decode()
    assert "level>=ERROR" in text.stderr.decode()


def test_cli_ask_against_a_server(server: Server) -> None:
    from tests.conftest import run_cli
    from tests.llm.helpers import fixture_records

    body = b"\n".join(orjson.dumps(r) for r in fixture_records())
    with server.client() as client:
        resp = client.post("/api/v1/logs", content=body, headers={"content-type": "application/x-ndjson"})
        assert resp.json()["accepted"] == len(fixture_records())
    out = run_cli("ask", "which hosts logged the most failed password attempts", "--now", NOW_ISO,
                  "--url", server.url, "-o", "json")
    assert orjson.loads(out.stdout)["result"]["values"][0] == {"value": "bastion-1", "count": 5}
