"""One client for the two LLM wire formats LogLens speaks, over httpx.

- ``openai``: the OpenAI-compatible chat-completions API (OpenAI, Ollama, vLLM, llama.cpp server,
  LM Studio): ``POST {base}/chat/completions``; streaming is Server-Sent Events of
  ``data: {chunk}`` lines ending with ``data: [DONE]``.
- ``anthropic``: the Anthropic Messages API: ``POST {base}/v1/messages`` with ``x-api-key`` and
  ``anthropic-version``; streaming events ``message_start``, ``content_block_delta``,
  ``message_stop`` (and ``error``).

Every request is redacted (:mod:`loglens.analysis.redact`) and fitted into a token budget
(estimated at four characters a token) before it leaves. Timeouts, and retries with exponential
backoff on 429, 5xx and connection errors, are bounded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from loglens.analysis.redact import redact

PROVIDERS = ("none", "openai", "anthropic")
DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
ANTHROPIC_VERSION = "2023-06-01"
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
TRUNCATED = "\n[... truncated to fit the token budget ...]"


class LLMError(RuntimeError):
    """The LLM could not answer: an HTTP error (with the provider's message), a timeout, bad output."""

    def __init__(self, message: str, status: int | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


@dataclass(slots=True)
class Message:
    role: str  # "user" or "assistant"
    content: str


def estimate_tokens(text: str) -> int:
    """A rough token count: about four characters a token."""
    return (len(text) + 3) // 4


def fit_budget(system: str, messages: list[Message], budget: int) -> tuple[str, list[Message]]:
    """Drop the oldest turns, then cut the longest texts, until the request fits ``budget`` tokens.

    The last message (the question with its context) is always kept, if need be truncated.
    """
    msgs = list(messages)

    def total() -> int:
        return estimate_tokens(system) + sum(estimate_tokens(m.content) + 4 for m in msgs)

    while total() > budget and len(msgs) > 1:
        msgs.pop(0)
    if msgs and msgs[0].role != "user" and len(msgs) > 1:
        msgs.pop(0)
    over = total() - budget
    if over > 0 and msgs:
        last = msgs[-1]
        keep = max(0, len(last.content) - over * 4 - len(TRUNCATED))
        msgs[-1] = Message(last.role, last.content[:keep] + TRUNCATED)
    over = total() - budget
    if over > 0:
        keep = max(0, len(system) - over * 4 - len(TRUNCATED))
        system = system[:keep] + TRUNCATED
    return system, msgs


@dataclass
class LLMConfig:
    provider: str = "none"
    base_url: str = ""
    model: str = ""
    api_key: str = ""
    timeout: float = 60.0
    max_retries: int = 3
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 8.0
    max_output_tokens: int = 1024
    context_tokens: int = 8000  # budget for the prompt (system + messages)
    redact_ips: bool = False
    temperature: float = 0.0
    extra_headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Any) -> LLMConfig:
        return cls(
            provider=(getattr(settings, "llm_provider", "none") or "none").strip().lower(),
            base_url=getattr(settings, "llm_base_url", "") or "",
            model=getattr(settings, "llm_model", "") or "",
            api_key=getattr(settings, "llm_api_key", "") or "",
            timeout=float(getattr(settings, "llm_timeout", 60.0)),
            max_retries=int(getattr(settings, "llm_max_retries", 3)),
            max_output_tokens=int(getattr(settings, "llm_max_output_tokens", 1024)),
            context_tokens=int(getattr(settings, "llm_context_tokens", 8000)),
            redact_ips=bool(getattr(settings, "llm_redact_ips", False)),
        )


class LLMClient:
    """Chat with a configured model. ``complete`` returns the whole text, ``stream`` yields pieces."""

    def __init__(self, config: LLMConfig, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if config.provider not in ("openai", "anthropic"):
            raise ValueError(f"LLM provider must be openai or anthropic, not {config.provider!r}")
        self.config = config
        self.base_url = (config.base_url or DEFAULT_BASE_URLS[config.provider]).rstrip("/")
        self._sleep = sleep
        self._http = httpx.Client(timeout=httpx.Timeout(config.timeout, connect=min(10.0, config.timeout)),
                                  transport=transport)

    @property
    def provider(self) -> str:
        return self.config.provider

    def close(self) -> None:
        self._http.close()

    # ----------------------------------------------------------------- requests
    def _prepare(self, system: str, messages: list[Message]) -> tuple[str, list[Message]]:
        ips = self.config.redact_ips
        system = redact(system, ips=ips)
        clean = [Message(m.role if m.role in ("user", "assistant") else "user", redact(m.content, ips=ips))
                 for m in messages]
        return fit_budget(system, clean, self.config.context_tokens)

    def _request(self, system: str, messages: list[Message], stream: bool,
                 max_tokens: int | None) -> tuple[str, dict[str, str], dict[str, Any]]:
        system, msgs = self._prepare(system, messages)
        limit = max_tokens or self.config.max_output_tokens
        headers = {"content-type": "application/json", **self.config.extra_headers}
        if self.provider == "openai":
            if self.config.api_key:
                headers["authorization"] = f"Bearer {self.config.api_key}"
            wire = ([{"role": "system", "content": system}] if system else []) + \
                [{"role": m.role, "content": m.content} for m in msgs]
            body: dict[str, Any] = {"model": self.config.model, "messages": wire, "max_tokens": limit,
                                    "temperature": self.config.temperature, "stream": stream}
            return self.base_url + "/chat/completions", headers, body
        headers["x-api-key"] = self.config.api_key
        headers["anthropic-version"] = ANTHROPIC_VERSION
        body = {"model": self.config.model, "max_tokens": limit, "temperature": self.config.temperature,
                "messages": [{"role": m.role, "content": m.content} for m in msgs], "stream": stream}
        if system:
            body["system"] = system
        return self.base_url + "/v1/messages", headers, body

    def _error(self, resp: httpx.Response) -> LLMError:
        """The provider's own error message: OpenAI ``{"error": {...}}``, Anthropic
        ``{"type": "error", "error": {"type", "message"}}``."""
        text = resp.read().decode("utf-8", "replace")
        message, kind = text[:500], ""
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict):
                message = str(error.get("message") or message)
                kind = str(error.get("type") or error.get("code") or "")
            elif isinstance(error, str):
                message = error
        return LLMError(f"{self.provider} API answered {resp.status_code}: {message}", resp.status_code, kind)

    def _delay(self, attempt: int, resp: httpx.Response | None) -> float:
        delay = min(self.config.max_backoff, self.config.backoff * (2 ** attempt))
        if resp is not None:
            retry_after = resp.headers.get("retry-after")
            if retry_after:
                with contextlib.suppress(ValueError):
                    delay = min(self.config.max_backoff, max(delay, float(retry_after)))
        return delay

    def _send(self, url: str, headers: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        """POST with retries; the answer is a streaming response with a 2xx status (caller closes it)."""
        payload = orjson.dumps(body)
        attempt = 0
        while True:
            resp: httpx.Response | None = None
            try:
                request = self._http.build_request("POST", url, headers=headers, content=payload)
                resp = self._http.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError,
                    httpx.ReadError, httpx.WriteError, httpx.PoolTimeout) as exc:
                if attempt >= self.config.max_retries:
                    raise LLMError(f"{self.provider} API unreachable at {url}: {exc}", kind="connection") from exc
            else:
                if resp.status_code < 300:
                    return resp
                error = self._error(resp)
                resp.close()
                if resp.status_code not in RETRY_STATUSES or attempt >= self.config.max_retries:
                    raise error
            self._sleep(self._delay(attempt, resp))
            attempt += 1

    # ------------------------------------------------------------------ public
    def complete(self, messages: list[Message], system: str = "", max_tokens: int | None = None) -> str:
        url, headers, body = self._request(system, messages, False, max_tokens)
        resp = self._send(url, headers, body)
        try:
            data = orjson.loads(resp.read())
        except orjson.JSONDecodeError as exc:
            raise LLMError(f"{self.provider} API answered with invalid JSON", resp.status_code) from exc
        finally:
            resp.close()
        try:
            if self.provider == "openai":
                return str(data["choices"][0]["message"]["content"] or "")
            return "".join(b.get("text", "") for b in data["content"] if b.get("type") == "text")
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"{self.provider} API answered in an unexpected shape") from exc

    def stream(self, messages: list[Message], system: str = "", max_tokens: int | None = None) -> Iterator[str]:
        """The answer's text in pieces as the server streams it."""
        url, headers, body = self._request(system, messages, True, max_tokens)
        resp = self._send(url, headers, body)
        try:
            for event, data in _sse_events(resp.iter_lines()):
                piece = self._piece(event, data)
                if piece is None:
                    return
                if piece:
                    yield piece
        except httpx.HTTPError as exc:
            raise LLMError(f"{self.provider} stream broke: {exc}", kind="connection") from exc
        finally:
            resp.close()

    def _piece(self, event: str, data: str) -> str | None:
        """Text from one SSE event; None at the end of the stream."""
        if self.provider == "openai":
            if data.strip() == "[DONE]":
                return None
            chunk = _json(data)
            if "error" in chunk:
                error = chunk["error"]
                raise LLMError(f"openai stream error: {error.get('message') if isinstance(error, dict) else error}")
            choices = chunk.get("choices") or []
            if not choices:
                return ""
            delta = choices[0].get("delta") or {}
            return str(delta.get("content") or "")
        payload = _json(data) if data else {}
        kind = payload.get("type", event)
        if kind == "message_stop":
            return None
        if kind == "error":
            error = payload.get("error") or {}
            raise LLMError(f"anthropic stream error: {error.get('message', data)}", kind=str(error.get("type", "")))
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") in ("text_delta", None):
                return str(delta.get("text") or "")
        return ""


def _json(data: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise LLMError(f"bad event in the stream: {data[:200]!r}") from exc
    return value if isinstance(value, dict) else {}


def _sse_events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs from Server-Sent Events lines."""
    event, data = "", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


def client_from_settings(settings: Any) -> LLMClient | None:
    """The configured client, or None when ``LOGLENS_LLM_PROVIDER`` is ``none`` (the default)."""
    config = LLMConfig.from_settings(settings)
    if config.provider in ("", "none"):
        return None
    return LLMClient(config)
