"""A local HTTP receiver and SMTP sink that record what they get, and an in-process store to alert on."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from loglens.alerts.evaluator import AlertService
from loglens.alerts.notifiers import Dispatcher
from loglens.pipeline import Pipeline
from loglens.query.engine import QueryEngine
from loglens.store import open_store

S = 1_000_000_000
#: A fixed "now" for the evaluator: 2025-11-20T10:00:00Z.
T0 = 1_763_632_800 * S


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """Answers ``fail_first[path]`` requests to a path with ``status`` (500), then 200; ``delay[path]``
    seconds before answering. Records every request, failed ones included, in ``attempts``."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)  # answered 200
    attempts: list[Received] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)
    fail_status: int = 500
    delay: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, n: int = 1, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(path)
            if len(got) >= n:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{path}: got {len(self.on(path))} requests, expected {n}")


@contextmanager
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            item = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
            with rec.lock:
                rec.attempts.append(item)
                failing = rec.fail_first.get(self.path, 0) > 0
                if failing:
                    rec.fail_first[self.path] -= 1
            delay = rec.delay.get(self.path, 0.0)
            if delay:
                time.sleep(delay)
            status = rec.fail_status if failing else 200
            if not failing:
                with rec.lock:
                    rec.requests.append(item)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    """Just enough SMTP (RFC 5321) to receive mail from ``smtplib``: EHLO/HELO, MAIL, RCPT, DATA, QUIT."""
    sink = SmtpSink("127.0.0.1", 0)

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            self.reply("220 sink ESMTP")
            sender, rcpts = "", []
            while True:
                raw = self.rfile.readline()
                if not raw:
                    return
                cmd = raw.decode().strip()
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    self.reply("250-sink")
                    self.reply("250 8BITMIME")
                elif verb == "HELO":
                    self.reply("250 sink")
                elif verb == "MAIL":
                    sender, rcpts = cmd.split(":", 1)[1].strip(), []
                    self.reply("250 OK")
                elif verb == "RCPT":
                    rcpts.append(cmd.split(":", 1)[1].strip())
                    self.reply("250 OK")
                elif verb == "DATA":
                    self.reply("354 end with <CRLF>.<CRLF>")
                    lines = []
                    while True:
                        line = self.rfile.readline()
                        if line in (b".\r\n", b".\n", b""):
                            break
                        lines.append(line[1:] if line.startswith(b"..") else line)
                    sink.messages.append({"from": sender, "to": rcpts, "data": b"".join(lines)})
                    self.reply("250 queued")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("250 OK")

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Env:
    store: Any
    pipeline: Pipeline
    service: AlertService

    def ingest(self, *items: dict[str, Any] | str, service: str = "app") -> None:
        self.pipeline.submit(list(items), service=service).result(timeout=30)

    def at(self, offset_s: float, message: str, level: str = "ERROR") -> dict[str, Any]:
        """A record ``offset_s`` seconds after :data:`T0` (negative: before)."""
        return {"timestamp": (T0 + int(offset_s * S)) // 1_000_000, "message": message, "level": level}


@contextmanager
def alert_env(tmp_path: Path, *, config: str = "", backoff: float = 0.05, attempts: int = 5) -> Iterator[Env]:
    data = tmp_path / "data"
    store = open_store(str(data), writable=True)
    pipeline = Pipeline(store).start()
    config_path = ""
    if config:
        config_path = str(tmp_path / "loglens.toml")
        Path(config_path).write_text(config)
    service = AlertService(QueryEngine(store), data, config_path=config_path, ui_url="http://logs.test:8080/",
                           dispatcher=Dispatcher(attempts=attempts, backoff=backoff, timeout=5))
    try:
        yield Env(store, pipeline, service)
    finally:
        service.close()
        pipeline.close()
        store.close()
