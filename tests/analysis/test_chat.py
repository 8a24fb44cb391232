"""Chat: answers from retrieved logs with real citations, SSE streaming, and the QA cache."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from loglens.analysis.cache import QACache, jaccard, tokens
from loglens.analysis.chat import NOT_IN_LOGS, chat
from loglens.config import Settings
from loglens.llm import LLMClient, LLMConfig
from loglens.pipeline import Pipeline
from loglens.query.engine import QueryEngine
from loglens.server import create_app
from tests.llm.helpers import NOW, NOW_ISO, build_store, fake_llm


@pytest.fixture(autouse=True)
def lexical_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Semantic retrieval with its BM25 scorer: loading the embedding model takes seconds on 2 cores."""
    monkeypatch.setenv("LOGLENS_SEMANTIC", "bm25")


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[QueryEngine]:
    eng = build_store(tmp_path / "data")
    yield eng
    eng.store.close()


def assert_real(engine: QueryEngine, citations: list[dict[str, str]]) -> None:
    templates = {t.id for t in engine.store.templates()}
    for c in citations:
        if c["type"] == "record":
            assert engine.store.get(int(c["id"])) is not None
        else:
            assert int(c["id"]) in templates


def test_chat_without_llm_cites_real_records_and_patterns(engine: QueryEngine) -> None:
    reply = chat(engine, user("what happened with payment timeouts today?"), now=NOW)
    assert reply["llm_used"] is False and reply["found"] is True and reply["cached"] is False
    assert reply["query"] == 'service:"payment" timeout' and reply["count"] == 5
    kinds = {c["type"] for c in reply["citations"]}
    assert kinds == {"record", "pattern"}
    assert_real(engine, reply["citations"])
    for c in reply["citations"]:
        assert f"[{c['type']}:{c['id']}]" in reply["answer"]
    assert "Timeout calling bank" in reply["answer"]


def test_chat_says_when_the_logs_do_not_hold_the_answer(engine: QueryEngine) -> None:
    reply = chat(engine, user("why is the sky blue"), now=NOW)
    assert reply["found"] is False and reply["citations"] == []
    assert NOT_IN_LOGS in reply["answer"]


def test_chat_lexical_retrieval_when_the_question_is_not_a_query(engine: QueryEngine) -> None:
    reply = chat(engine, user("tell me everything about spawning instances"), now=NOW)
    assert reply["count"] >= 4 and reply["citations"]
    assert_real(engine, reply["citations"])


def test_chat_semantic_retrieval_of_patterns(engine: QueryEngine) -> None:
    reply = chat(engine, user("bank payment timeout"), now=NOW)
    assert reply["retrieval"].endswith("+semantic")
    assert any("Timeout calling bank" in (p["template"] or "") for p in reply["patterns"])


def _llm(url: str, provider: str = "openai") -> LLMClient:
    return LLMClient(LLMConfig(provider=provider, base_url=url, model="m", api_key="k", timeout=5),
                     sleep=lambda _: None)


def _citing_responder(body: dict[str, Any]) -> str:
    """An LLM that writes the query when asked for one, and otherwise cites the first record and pattern
    of the facts it was given, plus an id it made up."""
    system = body.get("system") or body["messages"][0]["content"]
    if "You translate questions" in system:
        return '{"operation": "search", "query": "service:payment timeout", "from": "now-12h", "to": "now"}'
    facts = body["messages"][-1]["content"]
    record = re.search(r"\[record:(\d+)\]", facts)
    pattern = re.search(r"\[pattern:(\d+)\]", facts)
    if record is None:
        return "The logs do not contain the answer. Try `level>=ERROR`."
    return (f"Payments timed out calling the bank [record:{record.group(1)}], all one pattern "
            f"[pattern:{pattern.group(1) if pattern else 0}]; see also [record:42424242].")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_chat_with_llm_keeps_only_real_citations(engine: QueryEngine, provider: str) -> None:
    with fake_llm(provider) as fake:
        fake.responder = _citing_responder
        reply = chat(engine, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                              {"role": "user", "content": "what happened with payment timeouts today?"}],
                     now=NOW, llm=_llm(fake.url, provider))
    assert reply["llm_used"] is True and reply["query"] == "service:payment timeout"
    assert len(reply["citations"]) == 2 and "42424242" not in reply["answer"]
    assert_real(engine, reply["citations"])
    # the chat request (the last one) carried the conversation and the facts
    last = fake.requests[-1]
    assert last["stream"] is True
    sent = orjson.dumps(last).decode()
    assert "hello" in sent and "Timeout calling bank" in sent


def test_chat_with_llm_when_nothing_matches(engine: QueryEngine) -> None:
    replies = ['{"operation": "search", "query": "sky blue"}', "The logs do not contain the answer."]
    with fake_llm("openai", replies) as fake:
        reply = chat(engine, user("why is the sky blue"), now=NOW, llm=_llm(fake.url))
    assert reply["found"] is False and "do not contain" in reply["answer"] and reply["citations"] == []


# ------------------------------------------------------------------------------ streaming over HTTP
def sse_events(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        out.append((fields["event"], orjson.loads(fields["data"])))
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("chatapi") / "data"
    build_store(data).store.close()
    return data


def test_http_chat_streams_sse_without_llm(data_dir: Path) -> None:
    with TestClient(create_app(Settings(data=str(data_dir)))) as client:
        body = {"messages": user("show timeouts in payment since 10:00"), "stream": True, "now": NOW_ISO}
        with client.stream("POST", "/api/v1/chat", json=body) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            events = sse_events(resp.read().decode())
        names = [e for e, _ in events]
        assert names[0] == "meta" and names[-1] == "done" and names.count("delta") >= 2
        done = events[-1][1]
        assert "".join(d["text"] for e, d in events if e == "delta") == done["answer"]
        assert done["citations"] and done["query"] == 'service:"payment" timeout'
        assert client.post("/api/v1/chat", json={"messages": []}).status_code == 400
        assert client.post("/api/v1/chat", json={"messages": [{"role": "bot"}], "stream": True}).status_code == 400


def test_http_chat_streams_sse_with_llm(data_dir: Path) -> None:
    with fake_llm("anthropic") as fake:
        fake.responder = _citing_responder
        settings = Settings(data=str(data_dir), llm_provider="anthropic", llm_base_url=fake.url, llm_model="m",
                            llm_api_key="k")
        with TestClient(create_app(settings)) as client:
            body = {"messages": user("what happened with payment timeouts today?"), "stream": True, "now": NOW_ISO}
            with client.stream("POST", "/api/v1/chat", json=body) as resp:
                events = sse_events(resp.read().decode())
            deltas = [d["text"] for e, d in events if e == "delta"]
            assert len(deltas) > 3  # the model's stream, passed on piece by piece
            done = events[-1][1]
            assert done["llm_used"] is True and len(done["citations"]) == 2
            again = client.post("/api/v1/chat", json={**body, "stream": False}).json()
            assert again["cached"] is True and again["answer"] == done["answer"]


# ------------------------------------------------------------------------------ the QA cache
class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_cache_hit_and_near_identical(engine: QueryEngine) -> None:
    cache = QACache()
    first = chat(engine, user("how many errors today?"), now=NOW, cache=cache)
    assert first["cached"] is False
    again = chat(engine, user("How many errors today"), now=NOW, cache=cache)
    assert again["cached"] is True and again["answer"] == first["answer"]
    near = chat(engine, user("how many errors today please"), now=NOW, cache=cache)
    assert near["cached"] is True
    other = chat(engine, user("how many warnings today"), now=NOW, cache=cache)
    assert other["cached"] is False
    assert jaccard(tokens("how many errors today"), tokens("how many errors yesterday")) < 0.9


def test_cache_is_per_filters(engine: QueryEngine) -> None:
    cache = QACache()
    chat(engine, user("how many errors today"), now=NOW, cache=cache)
    assert chat(engine, user("how many errors today"), now=NOW, cache=cache, filters="a")["cached"] is False
    assert chat(engine, user("how many errors today"), now=NOW - 60, cache=cache)["cached"] is False


def test_cache_expiry_relative_fast_absolute_slow(engine: QueryEngine) -> None:
    clock = Clock()
    cache = QACache(clock=clock)
    chat(engine, user("how many errors in the last 3 hours"), now=NOW, cache=cache)
    chat(engine, user("how many records on 2025-11-19"), now=NOW, cache=cache)
    clock.t += 61
    assert chat(engine, user("how many errors in the last 3 hours"), now=NOW, cache=cache)["cached"] is False
    assert chat(engine, user("how many records on 2025-11-19"), now=NOW, cache=cache)["cached"] is True
    clock.t += 3600
    assert chat(engine, user("how many records on 2025-11-19"), now=NOW, cache=cache)["cached"] is False


def test_cache_invalidated_by_new_matching_data(engine: QueryEngine) -> None:
    cache = QACache()
    chat(engine, user("how many errors from payment today"), now=NOW, cache=cache)
    chat(engine, user("how many errors from checkout today"), now=NOW, cache=cache)
    with Pipeline(engine.store) as pipeline:
        pipeline.write([{"timestamp": "2025-11-20T11:59:00Z", "level": "ERROR", "service": "payment",
                         "host": "pay-1", "message": "Timeout calling bank after 60s"}])
    fresh = chat(engine, user("how many errors from payment today"), now=NOW, cache=cache)
    assert fresh["cached"] is False and fresh["count"] == 9
    assert chat(engine, user("how many errors from checkout today"), now=NOW, cache=cache)["cached"] is True


def test_cache_new_data_after_now_for_live_questions(engine: QueryEngine) -> None:
    cache = QACache()
    chat(engine, user("how many errors from checkout"), cache=cache)
    assert chat(engine, user("how many errors from checkout"), cache=cache)["cached"] is True
    with Pipeline(engine.store) as pipeline:
        pipeline.write([{"level": "ERROR", "service": "checkout", "message": "Cart service unavailable for user 9"}])
    assert chat(engine, user("how many errors from checkout"), cache=cache)["cached"] is False


def test_cache_is_bounded(engine: QueryEngine) -> None:
    cache = QACache(max_entries=2)
    for q in ("errors today", "warnings yesterday", "timeouts in payment", "failed password"):
        chat(engine, user(q), now=NOW, cache=cache)
    assert len(cache) == 2
