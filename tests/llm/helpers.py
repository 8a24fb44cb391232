"""A local HTTP server that speaks the OpenAI chat-completions and Anthropic Messages wire formats
(JSON and SSE streaming, error bodies), and a small fixture store with known records."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from loglens.pipeline import Pipeline
from loglens.query.engine import QueryEngine
from loglens.store import open_store

S = 1_000_000_000
#: The fixture's "now": 2025-11-20T12:00:00Z.
NOW = 1_763_640_000 * S
NOW_ISO = "2025-11-20T12:00:00Z"


@dataclass
class FakeLLM:
    """Replies come from ``replies`` in order (the last one repeats). A reply is a text, or
    ``(status, body)`` for an error answer. Every request body (and headers) is kept."""

    provider: str = "openai"
    replies: list[Any] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    responder: Callable[[dict[str, Any]], Any] | None = None

    def next_reply(self, body: dict[str, Any]) -> Any:
        if self.responder is not None:
            return self.responder(body)
        with self.lock:
            if len(self.replies) > 1:
                return self.replies.pop(0)
            return self.replies[0] if self.replies else "ok"

    def raw_bodies(self) -> str:
        return "\n".join(orjson.dumps(b).decode() for b in self.requests)


def _handler(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = orjson.loads(self.rfile.read(length))
            with fake.lock:
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
            expected = "/v1/chat/completions" if fake.provider == "openai" else "/v1/messages"
            if self.path != expected:
                self._send(404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}')
                return
            reply = fake.next_reply(body)
            if isinstance(reply, tuple):
                status, err = reply
                self._send(status, orjson.dumps(err))
                return
            text = str(reply)
            if body.get("stream"):
                self._stream(text)
            elif fake.provider == "openai":
                self._send(200, orjson.dumps({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}))
            else:
                self._send(200, orjson.dumps({
                    "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                    "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                    "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}}))

        def _stream(self, text: str) -> None:
            pieces = [text[i:i + 7] for i in range(0, len(text), 7)] or [""]
            events: list[bytes] = []
            if fake.provider == "openai":
                for p in pieces:
                    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                             "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
                    events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
                events.append(b"data: [DONE]\n\n")
            else:
                def ev(name: str, data: dict[str, Any]) -> bytes:
                    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
                events.append(ev("message_start", {"type": "message_start", "message": {
                    "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "m",
                    "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 1}}}))
                events.append(ev("content_block_start", {"type": "content_block_start", "index": 0,
                                                         "content_block": {"type": "text", "text": ""}}))
                events.append(ev("ping", {"type": "ping"}))
                for p in pieces:
                    events.append(ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                             "delta": {"type": "text_delta", "text": p}}))
                events.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
                events.append(ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                                   "usage": {"output_tokens": 5}}))
                events.append(ev("message_stop", {"type": "message_stop"}))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for e in events:
                self.wfile.write(f"{len(e):x}\r\n".encode() + e + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

    return Handler


@contextmanager
def fake_llm(provider: str = "openai", replies: list[Any] | None = None) -> Iterator[FakeLLM]:
    fake = FakeLLM(provider=provider, replies=list(replies or []))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}" + ("/v1" if provider == "openai" else "")
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def openai_error(message: str, kind: str = "server_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def anthropic_error(message: str, kind: str = "overloaded_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


# ------------------------------------------------------------------------------ fixture store
def _at(hours_before_now: float, minute: int = 0) -> str:
    from loglens.query.engine import format_ts

    return format_ts(NOW - int(hours_before_now * 3600 * S) + minute * 60 * S)


def fixture_records() -> list[dict[str, Any]]:
    """Known records around NOW (2025-11-20T12:00Z): yesterday, this morning, the last hour."""
    recs: list[dict[str, Any]] = []

    def add(ts: str, level: str, service: str, host: str, message: str) -> None:
        recs.append({"timestamp": ts, "level": level, "service": service, "host": host, "message": message})

    # yesterday (2025-11-19): nova-compute errors x4, infos x6; sshd failed passwords
    for i in range(4):
        add(f"2025-11-19T0{i + 1}:00:00Z", "ERROR", "nova-compute", "compute-1", f"Instance {i} failed to spawn")
    for i in range(6):
        add(f"2025-11-19T1{i}:30:00Z", "INFO", "nova-compute", "compute-2", f"Instance {i} started")
    for i in range(5):
        add(f"2025-11-19T2{i % 4}:0{i}:00Z", "WARN", "sshd", "bastion-1",
            f"Failed password for root from 10.0.0.{i} port 22 ssh2")
    for i in range(2):
        add(f"2025-11-19T22:1{i}:00Z", "WARN", "sshd", "bastion-2",
            f"Failed password for admin from 10.0.1.{i} port 22")
    add("2025-11-19T23:00:00Z", "INFO", "sshd", "bastion-2", "Accepted password for deploy from 10.0.2.1 port 22")
    # today: connection refused starts 09:15, payment timeouts after 10:00
    for i in range(3):
        add(f"2025-11-20T09:{15 + i}:00Z", "ERROR", "payment", "pay-1", "Connection refused to db:5432")
    add("2025-11-20T09:45:00Z", "INFO", "payment", "pay-1", "Payment accepted order=1")
    for i in range(4):
        add(f"2025-11-20T10:{10 + i * 5}:00Z", "ERROR", "payment", "pay-2", f"Timeout calling bank after {30 + i}s")
    add("2025-11-20T09:30:00Z", "ERROR", "payment", "pay-2", "Timeout calling bank after 29s")
    # the last hour: a brand-new error pattern in checkout
    for i in range(3):
        add(f"2025-11-20T11:{20 + i * 10}:00Z", "ERROR", "checkout", "web-1", f"Cart service unavailable for user {i}")
    add("2025-11-20T11:50:00Z", "INFO", "checkout", "web-1", "Checkout completed order=77")
    return recs


def build_store(path: Path) -> QueryEngine:
    store = open_store(str(path), writable=True)
    with Pipeline(store) as pipeline:
        pipeline.write(list[Any](fixture_records()), source="test")
    return QueryEngine(store)
