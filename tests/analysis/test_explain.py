"""Explain: the facts around an error, with and without an LLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loglens.analysis.explain import Explainer
from loglens.analysis.semantic import BM25, PatternIndex
from loglens.llm.client import LLMClient, LLMConfig
from loglens.pipeline import Pipeline
from loglens.query.engine import QueryEngine
from loglens.store import Store, open_store
from tests.analysis.test_anomalies import DAY, TIMEOUT_AT, incident_records, load, ns, template_id
from tests.llm.helpers import fake_llm


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryEngine]:
    store = load(tmp_path_factory.mktemp("explain") / "data", incident_records())
    eng = QueryEngine(store)
    eng.patterns = PatternIndex(store, BM25())
    yield eng
    store.close()


def a_timeout(engine: QueryEngine) -> Any:
    page = engine.search("gateway level:ERROR", "2026-03-10T14:10:00Z", "2026-03-10T14:11:00Z", 1)
    return page.records[0]


def test_explain_a_record_without_llm(engine: QueryEngine) -> None:
    rec = a_timeout(engine)
    facts = Explainer(engine).explain_record(rec.id)
    timeout = template_id(engine.store, "Timeout waiting for bank gateway")
    assert facts["record"]["id"] == str(rec.id)
    pattern = facts["pattern"]
    assert pattern["id"] == timeout and pattern["template"].startswith("Timeout waiting")
    assert pattern["first_seen"] < "2026-03-10T12:30"  # seen rarely long before the incident
    assert pattern["count_window"] > pattern["count_baseline"] / 4 * 2
    assert sum(pattern["trend"]) > 0
    changes = facts["changes"]
    assert changes["patterns"][0]["id"] == timeout  # the most over-represented pattern is this one
    assert changes["patterns"][0]["baseline"] < changes["patterns"][0]["window"]
    assert all(s["template_id"] == timeout for s in facts["samples"]) and facts["samples"]
    assert facts["llm"] is None
    assert facts["trace"] == []  # its trace has no other records


def test_explain_a_query(engine: QueryEngine) -> None:
    facts = Explainer(engine).explain_query("level:ERROR service:payment", "2026-03-10T14:00:00Z",
                                            "2026-03-10T14:20:00Z")
    assert facts["pattern"]["template"].startswith("Timeout waiting")
    assert facts["query"] == "level:ERROR service:payment"
    with pytest.raises(LookupError):
        Explainer(engine).explain_query("service:nosuch", "2026-03-10T14:00:00Z", "2026-03-10T14:20:00Z")


def test_new_exception_is_new_and_its_hosts_stand_out(engine: QueryEngine) -> None:
    rec = engine.search("NullPointerException", "2026-03-10T14:12:00Z", "2026-03-10T14:13:00Z", 1).records[0]
    facts = Explainer(engine).explain_record(rec.id)
    assert facts["pattern"]["new_in_window"] is True
    assert facts["pattern"]["count_baseline"] == 0
    assert facts["pattern"]["trend"][-1] == facts["pattern"]["count_window"] > 0  # all in the last hour
    assert sum(facts["pattern"]["trend"]) == facts["pattern"]["count_window"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_with_llm_the_narration_is_cached_per_pattern_and_window(engine: QueryEngine, provider: str) -> None:
    # the real client, against a local server speaking the provider's wire format
    with fake_llm(provider, ["Summary: timeouts [pattern:1]."]) as fake:
        llm = LLMClient(LLMConfig(provider=provider, base_url=fake.url, model="test-model",
                                  api_key="sk-test-key-000000000000000000", timeout=5))
        explainer = Explainer(engine, llm=llm)
        rec = a_timeout(engine)
        first = explainer.explain_record(rec.id)
        assert first["llm"] == {"text": "Summary: timeouts [pattern:1].", "cached": False}
        sent = fake.raw_bodies()
        assert str(rec.id) in sent and "Timeout waiting" in sent
        assert "sk-test-key" not in sent  # the key goes in a header, never in the prompt
        again = explainer.explain_record(rec.id)
        assert again["llm"]["cached"] is True and len(fake.requests) == 1


def test_same_trace_records(tmp_path: Path) -> None:
    store: Store = open_store(str(tmp_path / "data"), writable=True)
    try:
        with Pipeline(store).start() as p:
            p.write([
                {"timestamp": "2026-03-10T12:00:00Z", "service": "api", "message": "request started", "trace_id": "t1"},
                {"timestamp": "2026-03-10T12:00:01Z", "service": "db", "message": "deadlock detected", "level": "ERROR",
                 "trace_id": "t1"},
                {"timestamp": "2026-03-10T12:00:02Z", "service": "api", "message": "request failed", "level": "ERROR",
                 "trace_id": "t1"},
                {"timestamp": "2026-03-10T12:00:03Z", "service": "api", "message": "request started", "trace_id": "t2"},
            ])
        engine = QueryEngine(store)
        engine.patterns = PatternIndex(store, BM25())
        failed = engine.search("failed").records[0]
        facts = Explainer(engine).explain_record(failed.id)
        assert [r["message"] for r in facts["trace"]] == ["request started", "deadlock detected"]
        similar = facts["similar_patterns"]
        assert similar[0]["template"] == "request started" and similar[0]["first_seen"].startswith("2026-03-10T12:00")
        assert all(m["id"] != failed.template_id for m in similar)
    finally:
        store.close()


def test_unknown_record(engine: QueryEngine) -> None:
    with pytest.raises(KeyError):
        Explainer(engine).explain_record(123)
    assert ns(TIMEOUT_AT) > ns(DAY)


# ------------------------------------------------------------------------------------ API and CLI
@pytest.fixture(scope="module")
def incident_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("api") / "data"
    load(data, incident_records()).close()
    return data


def test_api_routes_with_auth(incident_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from loglens.config import Settings
    from loglens.keys import KeyStore
    from loglens.server import create_app

    monkeypatch.setenv("LOGLENS_SEMANTIC", "bm25")
    keys = KeyStore(incident_data)
    _, read_key = keys.create("read", name="reader")
    keys.close()
    app = create_app(Settings(data=str(incident_data), auth="on"))
    auth = {"Authorization": f"Bearer {read_key}"}
    with TestClient(app) as client:
        resp = client.get("/api/v1/anomalies", params={"from": "2026-03-10T13:30:00Z", "to": "2026-03-10T14:29:59Z",
                                                       "interval": "1m"}, headers=auth)
        assert resp.status_code == 200, resp.text
        kinds = sorted(a["kind"] for a in resp.json()["anomalies"])
        assert kinds == ["error_share", "host_silent", "new_pattern", "pattern_spike"]
        assert all(a["evidence"]["example_ids"] for a in resp.json()["anomalies"])
        only = client.get("/api/v1/anomalies", params={"from": "2026-03-10T13:30:00Z", "to": "2026-03-10T14:29:59Z",
                                                       "interval": "1m", "service": "api"}, headers=auth).json()
        assert [a["kind"] for a in only["anomalies"]] == ["new_pattern"]
        strong = client.get("/api/v1/anomalies", params={"from": "2026-03-10T13:30:00Z", "to": "2026-03-10T14:29:59Z",
                                                         "interval": "1m", "min_score": 15}, headers=auth).json()
        assert all(a["score"] >= 15 for a in strong["anomalies"]) and len(strong["anomalies"]) < 4
        bad = client.get("/api/v1/anomalies", params={"interval": "soon"}, headers=auth)
        assert bad.status_code == 400

        sim = client.get("/api/v1/patterns/similar", params={"text": "payment gateway timed out", "limit": 3},
                         headers=auth).json()
        assert sim["scorer"] == "bm25" and sim["patterns"][0]["template"].startswith("Timeout waiting")
        hits = client.get("/api/v1/search", params={"q": 'similar:"gateway timed out"', "limit": 5},
                          headers=auth).json()["records"]
        assert hits and all(r["message"].startswith("Timeout waiting") for r in hits)

        rec = hits[0]
        explained = client.get(f"/api/v1/records/{rec['id']}/explain", headers=auth)
        assert explained.status_code == 200, explained.text
        assert explained.json()["pattern"]["id"] == rec["template_id"]
        assert client.get("/api/v1/records/99/explain", headers=auth).status_code == 404
        posted = client.post("/api/v1/explain", json={"q": "level:ERROR service:payment",
                                                      "from": "2026-03-10T14:00:00Z", "to": "2026-03-10T14:20:00Z"},
                             headers=auth)  # a read key is enough: explaining changes nothing
        assert posted.status_code == 200, posted.text
        assert posted.json()["pattern"]["template"].startswith("Timeout waiting")
        assert client.post("/api/v1/explain", json={"q": "service:nosuch"}, headers=auth).status_code == 404
        assert client.post("/api/v1/explain", content=b"[1", headers=auth).status_code == 400
        assert client.post("/api/v1/explain", json={"q": "level:"}, headers=auth).status_code == 400


def test_cli_anomalies_and_explain(incident_data: Path) -> None:
    import orjson

    from tests.conftest import run_cli

    env = {"LOGLENS_SEMANTIC": "bm25", "LOGLENS_LLM_PROVIDER": "none"}
    out = run_cli("anomalies", "--from", "2026-03-10T13:30:00Z", "--to", "2026-03-10T14:29:59Z", "--interval", "1m",
                  "-o", "json", "--data", str(incident_data), env=env).stdout.decode()
    found = [orjson.loads(line) for line in out.splitlines()]
    assert sorted(a["kind"] for a in found) == ["error_share", "host_silent", "new_pattern", "pattern_spike"]
    table = run_cli("anomalies", "--from", "2026-03-10T13:30:00Z", "--to", "2026-03-10T14:29:59Z",
                    "--data", str(incident_data), env={**env, "COLUMNS": "250"}).stdout.decode()
    assert "host_silent" in table and "db-2" in table
    rec_id = next(a for a in found if a["kind"] == "new_pattern")["evidence"]["example_ids"][0]
    text = run_cli("explain", rec_id, "--data", str(incident_data), env={**env, "COLUMNS": "250"}).stdout.decode()
    assert "NullPointerException" in text and "what changed" in text and "samples" in text
    facts = orjson.loads(run_cli("explain", rec_id, "-o", "json", "--data", str(incident_data), env=env).stdout)
    assert facts["record"]["id"] == rec_id
    missing = run_cli("explain", "12345", "--data", str(incident_data), env=env, check=False)
    assert missing.returncode == 1 and b"no record" in missing.stderr
