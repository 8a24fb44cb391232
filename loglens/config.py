"""Settings, from command-line flags and ``LOGLENS_*`` environment variables."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOGLENS_", extra="ignore")

    data: str = "./loglens-data"
    host: str = "127.0.0.1"
    port: int = 8080
    #: Keep data this long (``7d``, ``12h``); empty keeps everything.
    retention: str = ""
    #: ``normal``: a commit survives the process being killed (SQLite WAL, synchronous=NORMAL);
    #: ``full``: it also survives power loss (fsync on every commit), at some cost in speed.
    durability: str = "normal"
    #: Largest request body accepted (after gzip decompression), in bytes.
    max_body_bytes: int = 64 << 20
    #: Records waiting to be written before ingest answers 429.
    max_queued: int = 200_000

    # Receivers (see docs/ingest.md). The HTTP ones share the API port and are on by default.
    elastic: bool = True
    loki: bool = True
    otlp: bool = True
    #: UDP and TCP port for syslog (RFC 5424 and 3164); 0 = off.
    syslog_port: int = 0
    #: TCP port for the Fluentd forward protocol (24224 is usual); 0 = off.
    forward_port: int = 0
    forward_shared_key: str = ""
    #: Kafka bootstrap servers (``host:9092,host2:9092``); empty = off.
    kafka_brokers: str = ""
    kafka_topic: str = "app-logs"
    kafka_group: str = "loglens"
    #: A TOML file with ``[[sources]]`` of files to tail and ``[[alerts]]`` rules (and other settings).
    config: str = ""
    #: The UI's address as people reach it, for the links in alert notifications
    #: (``https://logs.example.com``); empty: ``http://HOST:PORT`` of this server.
    ui_url: str = ""

    # API keys (see docs/operations.md).
    #: ``on``, ``off``, or ``auto``: on unless the server binds a loopback address only.
    auth: str = "auto"
    #: Allow binding a non-loopback address with auth off.
    insecure: bool = False
    #: Failed authentications from one address within a minute before it is refused (429); 0 = no limit.
    auth_max_failures: int = 10
    #: How long such an address is refused, in seconds.
    auth_block_seconds: float = 60.0

    # LLM (optional; see docs/ai.md). Every AI feature works without one.
    #: ``openai`` (any OpenAI-compatible chat-completions server), ``anthropic``, or ``none``.
    llm_provider: str = "none"
    #: e.g. ``http://localhost:11434/v1`` for Ollama; empty: the provider's public API.
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    #: Seconds per request; retries (on 429, 5xx and connection errors) back off exponentially.
    llm_timeout: float = 60.0
    llm_max_retries: int = 3
    #: Token budget of a prompt (estimated as characters / 4); context is truncated to fit.
    llm_context_tokens: int = 8000
    llm_max_output_tokens: int = 1024
    #: Also redact IP addresses from what is sent to the LLM (secrets and e-mails always are).
    llm_redact_ips: bool = False
