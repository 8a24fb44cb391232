"""LLM client (OpenAI-compatible chat completions and Anthropic Messages). Optional: every feature
works without one."""

from loglens.llm.client import (
    LLMClient,
    LLMConfig,
    LLMError,
    Message,
    client_from_settings,
    estimate_tokens,
    fit_budget,
)

__all__ = ["LLMClient", "LLMConfig", "LLMError", "Message", "client_from_settings", "estimate_tokens",
           "fit_budget"]
