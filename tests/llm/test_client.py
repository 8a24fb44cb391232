"""The LLM client against a local server speaking each wire format exactly."""

from __future__ import annotations

import pytest

from loglens.config import Settings
from loglens.llm import LLMClient, LLMConfig, LLMError, Message, client_from_settings, estimate_tokens, fit_budget
from loglens.llm.client import _sse_events
from tests.llm.helpers import anthropic_error, fake_llm, openai_error


def make(provider: str, url: str, sleeps: list[float] | None = None, **kw: object) -> LLMClient:
    config = LLMConfig(provider=provider, base_url=url, model="test-model", api_key="sk-test-key-000000000000000000",
                       timeout=5, **kw)  # type: ignore[arg-type]
    return LLMClient(config, sleep=(sleeps.append if sleeps is not None else lambda _: None))


def test_openai_complete_wire_format() -> None:
    with fake_llm("openai", ["hello there"]) as fake:
        client = make("openai", fake.url)
        assert client.complete([Message("user", "hi")], system="be brief") == "hello there"
    body, headers = fake.requests[0], fake.headers[0]
    assert headers["authorization"] == "Bearer sk-test-key-000000000000000000"
    assert body["model"] == "test-model" and body["stream"] is False
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def test_anthropic_complete_wire_format() -> None:
    with fake_llm("anthropic", ["bonjour"]) as fake:
        client = make("anthropic", fake.url)
        assert client.complete([Message("user", "hi")], system="be brief", max_tokens=50) == "bonjour"
    body, headers = fake.requests[0], fake.headers[0]
    assert headers["x-api-key"] == "sk-test-key-000000000000000000"
    assert headers["anthropic-version"] == "2023-06-01"
    assert body["system"] == "be brief" and body["max_tokens"] == 50
    assert body["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_streaming(provider: str) -> None:
    text = "The logs show 3 timeouts [record:12] in payment."
    with fake_llm(provider, [text]) as fake:
        pieces = list(make(provider, fake.url).stream([Message("user", "q")]))
    assert len(pieces) > 3 and "".join(pieces) == text
    assert fake.requests[0]["stream"] is True


def test_openai_error_body_is_reported_without_retry_on_400() -> None:
    reply = (400, openai_error("model not found", "invalid_request_error"))
    with fake_llm("openai", [reply]) as fake, pytest.raises(LLMError) as info:
        make("openai", fake.url).complete([Message("user", "q")])
    assert info.value.status == 400 and "model not found" in str(info.value)
    assert info.value.kind == "invalid_request_error"
    assert len(fake.requests) == 1


def test_anthropic_error_body_is_reported() -> None:
    reply = (401, anthropic_error("invalid x-api-key", "authentication_error"))
    with fake_llm("anthropic", [reply]) as fake, pytest.raises(LLMError) as info:
        make("anthropic", fake.url).complete([Message("user", "q")])
    assert info.value.status == 401 and "invalid x-api-key" in str(info.value)
    assert info.value.kind == "authentication_error"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_retries_with_backoff_on_429_and_5xx(provider: str) -> None:
    err = openai_error("slow down", "rate_limit") if provider == "openai" else anthropic_error("overloaded")
    sleeps: list[float] = []
    with fake_llm(provider, [(429, err), (503, err), (529, err), "finally"]) as fake:
        assert make(provider, fake.url, sleeps).complete([Message("user", "q")]) == "finally"
    assert len(fake.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]  # exponential


def test_retries_are_bounded() -> None:
    sleeps: list[float] = []
    with fake_llm("openai", [(500, openai_error("boom"))]) as fake, pytest.raises(LLMError, match="boom"):
        make("openai", fake.url, sleeps, max_retries=2).complete([Message("user", "q")])
    assert len(fake.requests) == 3 and len(sleeps) == 2


def test_connection_errors_are_retried_then_reported() -> None:
    from tests.conftest import free_port

    sleeps: list[float] = []
    client = make("openai", f"http://127.0.0.1:{free_port()}/v1", sleeps, max_retries=2)
    with pytest.raises(LLMError) as info:
        client.complete([Message("user", "q")])
    assert info.value.kind == "connection" and len(sleeps) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_secrets_never_reach_the_server(provider: str) -> None:
    secrets = ["hunter2", "sk-live-abcdefghijklmnopqrstuvwx", "AKIAIOSFODNN7EXAMPLE", "alice@example.com",
               "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
               "s3cr3t-t0ken", "abcdef0123456789abcdef"]
    text = (f"login failed password={secrets[0]} key {secrets[1]} aws {secrets[2]} user {secrets[3]} "
            f"jwt {secrets[4]} url https://x/?token={secrets[5]} Authorization: Bearer {secrets[6]}")
    with fake_llm(provider, ["ok"]) as fake:
        client = make(provider, fake.url)
        client.complete([Message("user", text)], system=f"context: {text}")
        list(client.stream([Message("user", text)]))
    sent = fake.raw_bodies()
    for secret in secrets:
        assert secret not in sent
    assert "[REDACTED:email]" in sent and "login failed" in sent


def test_ips_redacted_only_when_asked() -> None:
    with fake_llm("openai", ["ok"]) as fake:
        make("openai", fake.url).complete([Message("user", "from 10.1.2.3 port 22")])
        make("openai", fake.url, redact_ips=True).complete([Message("user", "from 10.1.2.3 port 22")])
    assert "10.1.2.3" in str(fake.requests[0]) and "10.1.2.3" not in str(fake.requests[1])


def test_token_budget_truncates_context() -> None:
    big = "line of context\n" * 5000  # ~20k tokens
    with fake_llm("openai", ["ok"]) as fake:
        make("openai", fake.url, context_tokens=1000).complete(
            [Message("user", "old question"), Message("assistant", "old answer"), Message("user", big)],
            system="sys")
    messages = fake.requests[0]["messages"]
    total = sum(estimate_tokens(m["content"]) + 4 for m in messages) - 4  # the system prompt has no overhead
    assert total <= 1000
    assert messages[-1]["content"].endswith("truncated to fit the token budget ...]")
    assert messages[0] == {"role": "system", "content": "sys"}


def test_fit_budget_keeps_small_requests_whole() -> None:
    msgs = [Message("user", "a"), Message("assistant", "b"), Message("user", "c")]
    assert fit_budget("s", msgs, 1000) == ("s", msgs)


def test_sse_parser() -> None:
    lines = [": comment", "event: a", "data: 1", "data: 2", "", "data: x", ""]
    assert list(_sse_events(iter(lines))) == [("a", "1\n2"), ("", "x")]


def test_configuration_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert client_from_settings(Settings()) is None
    monkeypatch.setenv("LOGLENS_LLM_PROVIDER", "anthropic")
    monkeypatch.setenv("LOGLENS_LLM_MODEL", "claude-x")
    monkeypatch.setenv("LOGLENS_LLM_BASE_URL", "http://127.0.0.1:9/")
    client = client_from_settings(Settings())
    assert client is not None and client.provider == "anthropic" and client.base_url == "http://127.0.0.1:9"
    assert client.config.model == "claude-x"
    with pytest.raises(ValueError):
        LLMClient(LLMConfig(provider="gpt"))
