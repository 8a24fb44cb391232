"""The ``loglens`` command. Local commands open the data directory; ``--url`` talks to a server."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

app = typer.Typer(help="LogLens: ingest, store, search and understand logs.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
console = Console()
err = Console(stderr=True, soft_wrap=True)

DataOpt = Annotated[str, typer.Option("--data", envvar="LOGLENS_DATA", help="Data directory.")]
UrlOpt = Annotated[str | None, typer.Option("--url", envvar="LOGLENS_URL",
                                            help="Talk to a running server instead of the data directory.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Only the last DURATION (15m, 1h, 7d).")]
FromOpt = Annotated[str | None, typer.Option("--from", help="Start: RFC 3339, epoch, or now-1h.")]
ToOpt = Annotated[str | None, typer.Option("--to", help="End: RFC 3339, epoch, or now.")]
DEFAULT_DATA = "./loglens-data"

LEVEL_STYLES = {
    "TRACE": "dim", "DEBUG": "cyan", "INFO": "green", "WARN": "yellow", "ERROR": "bold red",
    "FATAL": "bold white on red",
}


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _time_window(since: str | None, start: str | None) -> str | None:
    if since and start:
        raise _fail("give --since or --from, not both")
    if since:
        return f"now-{since}"
    return start


# ---------------------------------------------------------------------------------------- serve
@app.command()
def serve(
    data: Annotated[str | None, typer.Option("--data", help="Data directory [env LOGLENS_DATA].")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind [env LOGLENS_HOST; 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env LOGLENS_PORT; 8080].")] = None,
    retention: Annotated[str | None, typer.Option(
        help="Remove data older than this, e.g. 7d, 12h [env LOGLENS_RETENTION].")] = None,
    durability: Annotated[str | None, typer.Option(
        help="normal: commits survive kill -9; full: also power loss [env LOGLENS_DURABILITY].")] = None,
    elastic: Annotated[bool | None, typer.Option(
        "--elastic/--no-elastic", help="Elasticsearch _bulk API on the HTTP port [env LOGLENS_ELASTIC].")] = None,
    loki: Annotated[bool | None, typer.Option(
        "--loki/--no-loki", help="Loki push API on the HTTP port [env LOGLENS_LOKI].")] = None,
    otlp: Annotated[bool | None, typer.Option(
        "--otlp/--no-otlp", help="OTLP/HTTP logs on the HTTP port [env LOGLENS_OTLP].")] = None,
    syslog_port: Annotated[int | None, typer.Option(
        help="Syslog on this UDP and TCP port [env LOGLENS_SYSLOG_PORT].")] = None,
    forward_port: Annotated[int | None, typer.Option(
        help="Fluentd forward protocol on this port, usually 24224 [env LOGLENS_FORWARD_PORT].")] = None,
    forward_shared_key: Annotated[str | None, typer.Option(
        help="Shared key for the forward handshake [env LOGLENS_FORWARD_SHARED_KEY].")] = None,
    kafka_brokers: Annotated[str | None, typer.Option(
        help="Consume logs from these Kafka brokers [env LOGLENS_KAFKA_BROKERS].")] = None,
    kafka_topic: Annotated[str | None, typer.Option(help="Kafka topic [env LOGLENS_KAFKA_TOPIC; app-logs].")] = None,
    kafka_group: Annotated[str | None, typer.Option(help="Kafka group [env LOGLENS_KAFKA_GROUP; loglens].")] = None,
    config: Annotated[str | None, typer.Option(
        help="TOML file with [[sources]] of files to tail and [[alerts]] rules [env LOGLENS_CONFIG].")] = None,
    auth: Annotated[str | None, typer.Option(
        help="Require API keys: on, off, or auto (on unless bound to loopback) [env LOGLENS_AUTH].")] = None,
    insecure: Annotated[bool | None, typer.Option(
        "--insecure", help="Allow a non-loopback address with auth off [env LOGLENS_INSECURE].")] = None,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "info",
) -> None:
    """Start the HTTP server (API and UI) on the embedded store."""
    import uvicorn
    from pydantic import ValidationError

    from loglens.config import Settings
    from loglens.query.timerange import parse_duration
    from loglens.server import create_app
    from loglens.store import StoreLockedError, open_store

    given = {k: v for k, v in locals().items() if k in Settings.model_fields and v is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise _fail(str(exc)) from None
    if settings.retention:
        try:
            parse_duration(settings.retention)
        except ValueError as exc:
            raise _fail(f"--retention: {exc}") from None
    if settings.durability not in ("normal", "full"):
        raise _fail("--durability is normal or full")
    from loglens.server.auth import auth_enabled, is_loopback

    if settings.auth.strip().lower() not in ("on", "off", "auto", "true", "false", "1", "0", "yes", "no"):
        raise _fail("--auth is on, off or auto")
    if not auth_enabled(settings) and not is_loopback(settings.host) and not settings.insecure:
        raise _fail(f"refusing to listen on {settings.host} without authentication: anyone who can reach it "
                    "could read and write the logs. Use --auth on (create a key with `loglens keys create`), "
                    "bind 127.0.0.1, or pass --insecure if a network control protects this port")
    try:  # say plainly when another process holds the data directory, before the server starts
        open_store(settings.data, writable=True).close()
    except StoreLockedError as exc:
        raise _fail(str(exc)) from None
    if settings.kafka_brokers:
        try:
            import confluent_kafka  # noqa: F401
        except ImportError:
            raise _fail("--kafka-brokers needs the Kafka client: pip install 'loglens[kafka]'") from None
    if settings.config:  # a bad config file is named, with the section and the key, not a traceback
        from loglens.alerts.rules import RuleError, load_config_rules
        from loglens.ingest.files import ConfigError, load_config

        try:
            load_config(settings.config)
            load_config_rules(settings.config)
        except (ConfigError, RuleError) as exc:
            raise _fail(str(exc)) from None
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level,
                access_log=False)


# --------------------------------------------------------------------------------------- ingest
class _LinesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        lines = task.fields.get("lines", 0)
        elapsed = task.elapsed or 0
        rate = lines / elapsed if elapsed > 0 else 0
        return Text(f"{lines:,} lines {rate:,.0f}/s", style="progress.data.speed")


class _Source:
    """A file (or stdin) read line by line, with its position in bytes for the progress bar."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path == "-":
            self.raw: Any = sys.stdin.buffer
            self.size: int | None = None
        else:
            self.raw = open(path, "rb")  # noqa: SIM115 - closed in close()
            self.size = os.fstat(self.raw.fileno()).st_size
        if path.endswith(".gz"):
            import gzip

            self.stream: Any = gzip.GzipFile(fileobj=self.raw)
        else:
            self.stream = self.raw

    def position(self) -> int:
        try:
            return int(self.raw.tell())
        except (OSError, ValueError):
            return 0

    def chunks(self, size: int = 1 << 20) -> Iterator[list[str]]:
        """The lines, a list per ``size`` bytes read (decoding a chunk at once is several times
        cheaper than line by line); a line ending is ``\n`` or ``\r\n``."""
        rest = b""
        while True:
            data = self.stream.read(size)
            if not data:
                break
            end = data.rfind(b"\n")
            if end < 0:
                rest += data
                continue
            text = (rest + data[:end]).decode("utf-8", errors="replace")
            rest = data[end + 1:]
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            yield text.split("\n")
        if rest:
            yield [rest.decode("utf-8", errors="replace").rstrip("\r")]

    def close(self) -> None:
        if self.path != "-":
            self.raw.close()


class _Loader:
    """Reads sources line by line, joins continuation lines, and sends batches with progress."""

    def __init__(self, sender: _LocalSender | _RemoteSender, progress: Progress, batch_size: int) -> None:
        self.sender = sender
        self.progress = progress
        self.batch_size = batch_size
        self.records = 0
        self.lines = 0

    def _flush(self, batch: list[str], source: _Source, task: Any) -> None:
        self.sender.send(batch)
        self.records += len(batch)
        batch.clear()
        self.progress.update(task, completed=source.position(), lines=self.lines)

    def load(self, path: str, follow: bool) -> None:
        from loglens.parse import MultilineJoiner

        source = _Source(path)
        self.lines = 0
        task = self.progress.add_task(Path(path).name if path != "-" else "stdin", total=source.size, lines=0)
        joiner = MultilineJoiner()
        batch: list[str] = []
        try:
            for lines in source.chunks():
                self.lines += len(lines)
                batch.extend(joiner.feed_many(lines))
                while len(batch) >= self.batch_size:
                    self._flush(batch[:self.batch_size], source, task)
                    del batch[:self.batch_size]
            batch.extend(joiner.flush())
            if batch:
                self._flush(batch, source, task)
            self.progress.update(task, completed=source.size or source.position(), lines=self.lines)
            if follow:
                self._follow(source, task)
        finally:
            source.close()

    def _follow(self, source: _Source, task: Any) -> None:
        """Keep reading lines appended to the file until interrupted."""
        from loglens.parse import MultilineJoiner

        joiner = MultilineJoiner()
        batch: list[str] = []
        idle_since = time.monotonic()
        pending = b""
        while True:
            chunk = source.stream.readline()
            if chunk:
                pending += chunk
                if not pending.endswith(b"\n"):
                    continue
                line = pending.decode("utf-8", errors="replace").rstrip("\r\n")
                pending = b""
                self.lines += 1
                if line.strip():
                    batch.extend(joiner.feed(line))
                idle_since = time.monotonic()
                if len(batch) >= self.batch_size:
                    self._flush(batch, source, task)
                continue
            # A record is complete once no continuation line has come for a second.
            if time.monotonic() - idle_since > 1.0 and joiner.pending():
                batch.extend(joiner.flush())
            if batch:
                self._flush(batch, source, task)
            time.sleep(0.2)


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files to load (.gz ok); - for stdin.")],
    service: Annotated[str, typer.Option(help="Service name for every record.")] = "",
    host: Annotated[str, typer.Option(help="Host name for every record.")] = "",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep reading appended lines.")] = False,
    data: DataOpt = DEFAULT_DATA,
    url: UrlOpt = None,
    batch_size: Annotated[int, typer.Option(help="Records per batch.")] = 5000,
) -> None:
    """Load log files: JSON lines keep their fields, text lines are parsed, stack traces joined."""
    for path in paths:
        if path != "-" and not Path(path).is_file():
            raise _fail(f"no such file: {path}")
    # A service manager stops us with SIGTERM: finish and commit what was read, like Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sender = _RemoteSender(url, service, host) if url else _LocalSender(data, service, host)
    started = time.perf_counter()
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), _LinesPerSecond(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as progress:
        loader = _Loader(sender, progress, batch_size)
        try:
            for path in paths:
                loader.load(path, follow)
        except KeyboardInterrupt:
            pass
        finally:
            sender.close()
    elapsed = time.perf_counter() - started
    rate = loader.records / elapsed if elapsed > 0 else 0.0
    err.print(f"[bold green]ingested[/] {loader.records:,} records, {sender.rejected:,} rejected "
              f"in {elapsed:.2f}s ({rate:,.0f} records/s)", highlight=False)


class _LocalSender:
    def __init__(self, data: str, service: str, host: str) -> None:
        from loglens.pipeline import Pipeline
        from loglens.store import StoreLockedError, open_store

        try:
            self.store = open_store(data, writable=True)
        except StoreLockedError as exc:
            raise _fail(str(exc)) from None
        # a short queue keeps the progress bar close to what is committed, and memory small
        self.pipeline = Pipeline(self.store, max_queued=40_000).start()
        self.service, self.host = service, host
        self.rejected = 0
        #: Batches not yet committed: (future, items, resent already).
        self.pending: list[tuple[Any, list[str], bool]] = []

    def _submit(self, items: list[str], resent: bool) -> None:
        future = self.pipeline.submit(items, service=self.service, host=self.host, source="file", block=True)
        self.pending.append((future, items, resent))

    def send(self, items: list[str]) -> None:
        self._submit(list(items), False)
        self._settle(wait=False)

    def _settle(self, *, wait: bool) -> None:
        """Check finished batches (all of them with ``wait``). A batch lost with a worker process
        that died (its pipe broke) is sent once more: the pipeline has started a new worker."""
        while self.pending:
            still: list[tuple[Any, list[str], bool]] = []
            resend: list[list[str]] = []
            for future, items, resent in self.pending:
                if not wait and not future.done():
                    still.append((future, items, resent))
                    continue
                try:
                    future.result()
                except (EOFError, OSError):
                    if resent:
                        raise
                    resend.append(items)
            self.pending = still
            for items in resend:
                self._submit(items, True)
            if not wait:
                return

    def close(self) -> None:
        try:
            self._settle(wait=True)
        finally:
            self.pipeline.close()
            self.store.close()


class _RemoteSender:
    def __init__(self, url: str, service: str, host: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=url, timeout=60, headers=_key_headers())
        self.params = {k: v for k, v in (("service", service), ("host", host)) if v}
        self.rejected = 0

    def send(self, items: list[str]) -> None:
        # Records are already joined; a record with newlines goes as one JSON string.
        body = orjson.dumps(items)
        while True:
            resp = self.client.post("/api/v1/logs", params=self.params, content=body,
                                    headers={"Content-Type": "application/json"})
            if resp.status_code == 429:
                time.sleep(float(resp.headers.get("Retry-After", "1")))
                continue
            if resp.status_code >= 400 and resp.status_code != 400:
                raise _fail(f"server answered {resp.status_code}: {resp.text}")
            self.rejected += len(resp.json().get("rejected", []))
            return

    def close(self) -> None:
        self.client.close()


# ------------------------------------------------------------------------------- query commands
def _engine(data: str) -> Any:
    from loglens.query.engine import QueryEngine
    from loglens.store import open_store

    try:
        return QueryEngine(open_store(data))
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None


def _key_headers() -> dict[str, str]:
    """``Authorization`` for a server with auth on, from ``LOGLENS_API_KEY``."""
    key = os.environ.get("LOGLENS_API_KEY", "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _remote_get(url: str, path: str, params: dict[str, Any]) -> Any:
    import httpx

    resp = httpx.get(url.rstrip("/") + path, params={k: v for k, v in params.items() if v is not None},
                     timeout=60, headers=_key_headers())
    if resp.status_code >= 400:
        try:
            message = resp.json().get("error", resp.text)
        except ValueError:
            message = resp.text
        raise _fail(message)
    return resp.json()


def _local(call: Any) -> Any:
    from loglens.query.engine import ParameterError
    from loglens.query.errors import QueryError

    try:
        return call()
    except QueryError as exc:
        raise _fail(str(exc)) from None
    except ParameterError as exc:
        raise _fail(str(exc)) from None


def _print_records(records: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        out = sys.stdout.buffer
        for rec in records:
            out.write(orjson.dumps(rec) + b"\n")
        out.flush()
        return
    if output == "raw":
        for rec in records:
            sys.stdout.write(rec["line"] + "\n")
        sys.stdout.flush()
        return
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("time", no_wrap=True, style="dim")
    table.add_column("level", no_wrap=True)
    table.add_column("service", no_wrap=True, style="magenta")
    table.add_column("host", no_wrap=True, style="blue")
    table.add_column("message", overflow="fold")
    for rec in records:
        level = rec["level"] or "-"
        table.add_row(rec["timestamp"][:23].replace("T", " "), Text(level, style=LEVEL_STYLES.get(level, "")),
                      Text(rec["service"]), Text(rec["host"]), Text(rec["message"]))
    console.print(table)


OutputOpt = Annotated[str, typer.Option("-o", "--output", help="table, json (NDJSON) or raw.")]


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Query, e.g. 'timeout level:ERROR service:api'.")] = "",
    since: SinceOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    limit: Annotated[int, typer.Option("-n", "--limit", help="How many records.")] = 100,
    output: OutputOpt = "table",
    data: DataOpt = DEFAULT_DATA,
    url: UrlOpt = None,
) -> None:
    """Search records, newest first."""
    if output not in ("table", "json", "raw"):
        raise _fail("-o is table, json or raw")
    start = _time_window(since, start)
    if url:
        records = _remote_get(url, "/api/v1/search", {"q": query, "from": start, "to": end,
                                                       "limit": limit})["records"]
    else:
        from loglens.query.engine import record_dict

        engine = _engine(data)
        page = _local(lambda: engine.search(query, start, end, limit))
        records = [record_dict(r) for r in page.records]
    _print_records(records, output)


@app.command()
def count(
    query: Annotated[str, typer.Argument()] = "",
    since: SinceOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    data: DataOpt = DEFAULT_DATA,
    url: UrlOpt = None,
) -> None:
    """Count matching records (exact)."""
    start = _time_window(since, start)
    if url:
        n = _remote_get(url, "/api/v1/count", {"q": query, "from": start, "to": end})["count"]
    else:
        engine = _engine(data)
        n = _local(lambda: engine.count(query, start, end))
    print(n)


@app.command()
def top(
    field: Annotated[str, typer.Argument(help="service, host, level, template, message or an attribute.")],
    query: Annotated[str, typer.Argument()] = "",
    since: SinceOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    limit: Annotated[int, typer.Option("-n", "--limit")] = 10,
    output: OutputOpt = "table",
    data: DataOpt = DEFAULT_DATA,
    url: UrlOpt = None,
) -> None:
    """Most frequent values of a field among matching records."""
    start = _time_window(since, start)
    if url:
        values = _remote_get(url, "/api/v1/top", {"field": field, "q": query, "from": start, "to": end,
                                                   "limit": limit})["values"]
    else:
        engine = _engine(data)
        values = [{"value": v.value, "count": v.count}
                  for v in _local(lambda: engine.top(field, query, start, end, limit))]
    if output == "json":
        for v in values:
            print(orjson.dumps(v).decode())
        return
    table = Table("count", field, box=None)
    for v in values:
        table.add_row(f"{v['count']:,}", Text(v["value"]))
    console.print(table)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="A question, e.g. 'how many errors from api in the last hour'.")],
    now: Annotated[str | None, typer.Option(
        "--now", help="Anchor relative times here (RFC 3339 or epoch) to replay a past incident.")] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="text or json.")] = "text",
    data: DataOpt = DEFAULT_DATA,
    url: UrlOpt = None,
) -> None:
    """Ask a question in plain English: shows the query it ran and the answer (see docs/ai.md)."""
    if url:
        import httpx

        resp = httpx.post(url.rstrip("/") + "/api/v1/ask", json={"question": question, "now": now}, timeout=120,
                          headers=_key_headers())
        if resp.status_code >= 400:
            raise _fail(resp.json().get("error", resp.text) if resp.headers.get("content-type", "").startswith(
                "application/json") else resp.text)
        answer = resp.json()
    else:
        from loglens.analysis.ask import ask as ask_question
        from loglens.config import Settings
        from loglens.llm import client_from_settings
        from loglens.query.timerange import parse_time

        try:
            anchor = parse_time(now) if now else None
        except ValueError as exc:
            raise _fail(f"--now: {exc}") from None
        engine = _engine(data)
        answer = _local(lambda: ask_question(engine, question, now=anchor, llm=client_from_settings(Settings())))
    if output == "json":
        print(orjson.dumps(answer).decode())
        return
    err.print(f"[dim]query:[/] {escape(answer.get('query') or '(none)')}  [dim]operation:[/] "
              f"{escape(str(answer.get('operation')))}  [dim]from[/] {escape(str(answer.get('from')))} "
              f"[dim]to[/] {escape(str(answer.get('to')))}" + ("  [dim](LLM)[/]" if answer.get("llm_used") else ""),
              highlight=False)
    console.print(Text(str(answer.get("answer", ""))))


def _chat_remote(url: str, messages: list[dict[str, str]], now: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    import httpx

    body = {"messages": messages, "stream": True, **({"now": now} if now else {})}
    with httpx.stream("POST", url.rstrip("/") + "/api/v1/chat", json=body, timeout=300,
                      headers=_key_headers()) as resp:
        if resp.status_code >= 400:
            resp.read()
            raise _fail(resp.text)
        event = "message"
        for line in resp.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                yield event, orjson.loads(line[6:])


@app.command()
def chat(
    question: Annotated[str | None, typer.Argument(
        help="One question; without it, a conversation on the terminal (empty line or Ctrl-D ends it).")] = None,
    now: Annotated[str | None, typer.Option("--now", help="Anchor relative times here (replay an incident).")] = None,
    data: DataOpt = DEFAULT_DATA,
    url: UrlOpt = None,
) -> None:
    """Chat with your logs: answers come from the records, with [record:ID] and [pattern:ID] citations."""
    messages: list[dict[str, str]] = []
    if url:
        def events() -> Iterator[tuple[str, dict[str, Any]]]:
            return _chat_remote(url, messages, now)
    else:
        from loglens.analysis.chat import chat_events
        from loglens.config import Settings
        from loglens.llm import client_from_settings
        from loglens.query.timerange import parse_time

        try:
            anchor = parse_time(now) if now else None
        except ValueError as exc:
            raise _fail(f"--now: {exc}") from None
        engine = _engine(data)
        llm = client_from_settings(Settings())

        def events() -> Iterator[tuple[str, dict[str, Any]]]:
            return chat_events(engine, messages, now=anchor, llm=llm)

    while True:
        text = question if question is not None else console.input("[bold]you>[/] ")
        if not text.strip():
            return
        messages.append({"role": "user", "content": text})
        answer = ""
        for event, payload in _local(lambda: list(events())):
            if event == "meta":
                err.print(f"[dim]query:[/] {escape(str(payload.get('query')))}" +
                          ("  [dim](cached)[/]" if payload.get("cached") else ""), highlight=False)
            elif event == "delta":
                console.print(Text(payload.get("text", "")), end="")
            elif event == "done":
                answer = payload.get("answer", "")
            elif event == "error":
                raise _fail(str(payload.get("error")))
        console.print()
        messages.append({"role": "assistant", "content": answer})
        if question is not None:
            return


@app.command()
def tail(
    query: Annotated[str, typer.Argument()] = "",
    output: OutputOpt = "table",
    lines: Annotated[int, typer.Option("-n", "--lines", help="Show this many recent records first.")] = 10,
    data: DataOpt = DEFAULT_DATA,
    url: UrlOpt = None,
) -> None:
    """Follow matching records as they arrive (like kubectl logs -f)."""
    try:
        if url:
            _tail_remote(url, query, output, lines)
        else:
            _tail_local(data, query, output, lines)
    except KeyboardInterrupt:
        pass


def _tail_remote(url: str, query: str, output: str, lines: int) -> None:
    import httpx

    if lines:
        recent = _remote_get(url, "/api/v1/search", {"q": query, "limit": lines})["records"]
        _print_records(list(reversed(recent)), output)
    with httpx.stream("GET", url.rstrip("/") + "/api/v1/tail", params={"q": query}, timeout=None,
                      headers=_key_headers()) as resp:
        if resp.status_code >= 400:
            resp.read()
            raise _fail(resp.json().get("error", resp.text))
        for line in resp.iter_lines():
            if line.startswith("data: "):
                _print_records([orjson.loads(line[6:])], output)


def _tail_local(data: str, query: str, output: str, lines: int) -> None:
    """Poll the data directory: works beside a server writing to it from another process."""
    from loglens.query.engine import record_dict

    engine = _engine(data)
    page = _local(lambda: engine.search(query, None, None, max(lines, 1)))
    last = page.records[0].id if page.records else 0
    last_ts = page.records[0].timestamp if page.records else None
    if lines:
        _print_records([record_dict(r) for r in reversed(page.records)], output)
    plan = _local(lambda: engine.plan(query))
    from loglens.store.base import TimeRange

    while True:
        time.sleep(0.5)
        engine.store.refresh()
        # newest first by time: only what is no older than the last record shown needs looking at
        fresh = engine.store.search(plan, TimeRange(start=last_ts), 1000)
        new = [r for r in fresh.records if r.id > last]
        if new:
            last, last_ts = new[0].id, new[0].timestamp
            _print_records([record_dict(r) for r in reversed(new)], output)


@app.command()
def stats(
    output: OutputOpt = "table",
    data: DataOpt = DEFAULT_DATA,
    url: UrlOpt = None,
) -> None:
    """Records, bytes on disk, time span and records per service."""
    if url:
        result = _remote_get(url, "/api/v1/stats", {})
    else:
        from loglens.query.engine import format_ts

        s = _engine(data).store.stats()
        result = {
            "records": s.records, "bytes_on_disk": s.bytes_on_disk,
            "first_timestamp": format_ts(s.first_timestamp) if s.first_timestamp else None,
            "last_timestamp": format_ts(s.last_timestamp) if s.last_timestamp else None,
            "services": s.services, "templates": s.templates, "shards": s.shards,
        }
    if output == "json":
        print(orjson.dumps(result).decode())
        return
    console.print(f"[bold]records[/]        {result['records']:,}")
    console.print(f"[bold]bytes on disk[/]  {result['bytes_on_disk']:,} "
                  f"({result['bytes_on_disk'] / max(result['records'], 1):.0f} per record)")
    console.print(f"[bold]time span[/]      {result['first_timestamp']} → {result['last_timestamp']}")
    console.print(f"[bold]templates[/]      {result['templates']:,}")
    table = Table("service", "records", box=None)
    for name, n in result["services"].items():
        table.add_row(Text(name or "(none)"), f"{n:,}")
    console.print(table)


# ------------------------------------------------------------------------------ backup, restore
def _file_progress() -> Progress:
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[file]}"),
               TimeElapsedColumn()]
    return Progress(*columns, console=err, transient=False, disable=not err.is_terminal)


@app.command()
def backup(
    dest: Annotated[str, typer.Argument(help="New directory to write the backup into.")],
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Consistent snapshot of the data directory while ingest goes on (a running server may keep writing)."""
    from loglens.store.embedded.backup import BackupError, plan_backup
    from loglens.store.embedded.backup import backup as take_backup

    started = time.perf_counter()
    try:
        files = plan_backup(Path(data))
        with _file_progress() as progress:
            task = progress.add_task("backup", total=sum(f.size for f in files), file="")
            sizes = {f.name: f.size for f in files}
            manifest = take_backup(data, dest, files=files, on_file=lambda name, _n: progress.update(
                task, advance=sizes.get(name, 0), file=name))
    except BackupError as exc:
        raise _fail(str(exc)) from None
    size = sum(f["bytes"] for f in manifest["files"])
    err.print(f"[bold green]backed up[/] {manifest['records']:,} records in {len(manifest['files'])} files "
              f"({size:,} bytes) to {dest} in {time.perf_counter() - started:.2f}s", highlight=False)


@app.command()
def restore(
    src: Annotated[str, typer.Argument(help="A directory written by `loglens backup`.")],
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Restore a backup into an empty (or new) data directory, verifying checksums and integrity."""
    from loglens.store.embedded.backup import BackupError, read_manifest
    from loglens.store.embedded.backup import restore as do_restore

    started = time.perf_counter()
    try:
        total = sum(int(f.get("bytes", 0)) for f in read_manifest(Path(src))["files"])
        with _file_progress() as progress:
            checking = progress.add_task("verify", total=total, file="")
            copying = progress.add_task("restore", total=total, file="")
            manifest = do_restore(
                src, data,
                on_verify=lambda name, n: progress.update(checking, advance=n, file=name),
                on_file=lambda name, n: progress.update(copying, advance=n, file=name))
    except BackupError as exc:
        raise _fail(str(exc)) from None
    err.print(f"[bold green]restored[/] {manifest['records']:,} records from {src} (taken {manifest['created']}) "
              f"into {data}: checksums and integrity ok, in {time.perf_counter() - started:.2f}s", highlight=False)


SPARKS = "▁▂▃▄▅▆▇█"
LEVEL_LETTERS = {"FATAL": "F", "ERROR": "E", "WARN": "W", "INFO": "I", "DEBUG": "D", "TRACE": "T", "UNKNOWN": "?"}


def sparkline(values: list[int]) -> str:
    top = max(values) if values else 0
    if top == 0:
        return SPARKS[0] * len(values)
    return "".join(" " if v == 0 else SPARKS[min(len(SPARKS) - 1, v * (len(SPARKS) - 1) // top)] for v in values)


@app.command()
def patterns(
    args: Annotated[list[str] | None, typer.Argument(
        help="QUERY to restrict the records, or: mine FILE (print each line's template as CSV).")] = None,
    since: SinceOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
    new: Annotated[bool, typer.Option("--new", help="Only patterns first seen in the window.")] = False,
    limit: Annotated[int, typer.Option("-n", "--limit")] = 30,
    raw: Annotated[bool, typer.Option("--raw", help="mine: the lines still have their headers.")] = False,
    output: Annotated[str | None, typer.Option("-o", "--output",
                                               help="table or json; for mine: csv or json.")] = None,
    data: DataOpt = DEFAULT_DATA,
    url: UrlOpt = None,
) -> None:
    """Log patterns ranked by count, with trend, level mix and an example; `patterns mine FILE` mines a file."""
    words = args or []
    if words and words[0] == "mine":
        if len(words) != 2:
            raise _fail("usage: loglens patterns mine FILE [--raw] [-o csv|json]  (FILE may be -)")
        fmt = output or "csv"
        if fmt not in ("csv", "json"):
            raise _fail("-o is csv or json for mine")
        from loglens.patterns.mine import mine_file

        if words[1] != "-" and not Path(words[1]).is_file():
            raise _fail(f"no such file: {words[1]}")
        mine_file(words[1], raw=raw, fmt=fmt, out=sys.stdout)
        return
    query = " ".join(words)
    start = _time_window(since, start)
    output = output or "table"
    if url:
        result = _remote_get(url, "/api/v1/patterns", {"q": query, "from": start, "to": end, "limit": limit,
                                                        "service": service, "new": str(new).lower()})
    else:
        from loglens.query.engine import PatternQueries

        engine = _engine(data)
        result = _local(lambda: PatternQueries(engine).list(query, start, end, limit, service, new))
    if output == "json":
        for p in result["patterns"]:
            print(orjson.dumps(p).decode())
        return
    table = Table(box=None, show_header=True, header_style="bold")
    for name in ("count", "trend", "levels", "id", "pattern"):
        table.add_column(name, no_wrap=name != "pattern", overflow="fold")
    for p in result["patterns"]:
        levels = " ".join(f"{LEVEL_LETTERS.get(k, k)}:{v}" for k, v in sorted(
            p["levels"].items(), key=lambda kv: -kv[1]))
        pattern = Text(p["template"] or "?")
        if p["new"]:
            pattern = Text.assemble(("NEW ", "bold yellow"), pattern)
        if p["example"]:
            pattern.append("\n  " + p["example"]["line"].split("\n", 1)[0], style="dim")
        table.add_row(f"{p['count']:,}", Text(sparkline(p["trend"]), style="cyan"), levels, str(p["id"]), pattern)
    console.print(table)
    console.print(f"[dim]{len(result['patterns'])} patterns from {result['from']} to {result['to']}; "
                  f"trend points are {result['trend_interval_ms'] / 1000:g}s[/]")


# ------------------------------------------------------------------------------ anomalies, explain
@app.command()
def anomalies(
    since: SinceOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
    interval: Annotated[str | None, typer.Option(help="Bucket size (5m, 1h); default: about 30 buckets.")] = None,
    min_score: Annotated[float, typer.Option(help="Only anomalies scoring at least this.")] = 0.0,
    output: Annotated[str, typer.Option("-o", "--output", help="table or json (NDJSON).")] = "table",
    data: DataOpt = DEFAULT_DATA,
    url: UrlOpt = None,
) -> None:
    """What changed: new patterns, rate spikes and drops, error share, silent hosts; ranked by score."""
    if output not in ("table", "json"):
        raise _fail("-o is table or json")
    start = _time_window(since, start) or "now-6h"
    if url:
        result = _remote_get(url, "/api/v1/anomalies", {"from": start, "to": end, "service": service,
                                                         "interval": interval, "min_score": min_score})
    else:
        from loglens.analysis.anomalies import AnomalyDetector
        from loglens.query.timerange import parse_duration

        engine = _engine(data)

        def run() -> Any:
            window = engine.time_range(start, end)
            try:
                step = parse_duration(interval) if interval else None
            except ValueError as exc:
                raise _fail(f"--interval: {exc}") from None
            try:
                return AnomalyDetector(engine.store).detect(window.start, window.end, service, step,
                                                            min_score=min_score).to_dict()
            except ValueError as exc:
                raise _fail(str(exc)) from None

        result = _local(run)
    if output == "json":
        for a in result["anomalies"]:
            print(orjson.dumps(a).decode())
        return
    table = Table(box=None, show_header=True, header_style="bold")
    for name in ("score", "kind", "from", "to", "service", "what", "before → after", "examples"):
        table.add_column(name, no_wrap=name not in ("what", "examples"), overflow="fold")
    for a in result["anomalies"]:
        ev = a["evidence"]
        before, after = ev.get("before", {}), ev.get("after", {})
        if a["kind"] == "error_share":
            change = f"{before.get('error_share_median', 0):.0%} → {after.get('error_share', 0):.0%}"
        elif "per_bucket_median" in before:
            change = f"{before['per_bucket_median']:g}/bucket → {after.get('count', 0)}"
        else:
            change = f"{before.get('count', 0)} → {after.get('count', 0)}"
        pattern = f"#{a['pattern_id']} {a['pattern']}" if a["pattern_id"] else ""
        what = f"host {a['host']}" if a["host"] else pattern
        table.add_row(f"{a['score']:.1f}", a["kind"], a["window"]["from"][:19].replace("T", " "),
                      a["window"]["to"][:19].replace("T", " "), a["service"], Text(what), change,
                      " ".join(ev.get("example_ids", [])))
    console.print(table)
    console.print(f"[dim]{len(result['anomalies'])} anomalies from {result['from']} to {result['to']}; "
                  f"buckets of {result['interval_ms'] / 1000:g}s[/]")


@app.command()
def explain(
    record_id: Annotated[str, typer.Argument(help="A record id (from search -o json or the UI).")],
    output: Annotated[str, typer.Option("-o", "--output", help="text or json.")] = "text",
    data: DataOpt = DEFAULT_DATA,
    url: UrlOpt = None,
) -> None:
    """Explain one record: its pattern and trend, what changed around it, its trace, similar patterns."""
    if output not in ("text", "json"):
        raise _fail("-o is text or json")
    if url:
        facts = _remote_get(url, f"/api/v1/records/{record_id}/explain", {})
    else:
        from loglens.analysis.explain import Explainer
        from loglens.config import Settings
        from loglens.llm import client_from_settings
        from loglens.query.engine import parse_record_id

        engine = _engine(data)
        try:
            ident = _local(lambda: parse_record_id(record_id))
            facts = Explainer(engine, llm=client_from_settings(Settings())).explain_record(ident)
        except KeyError:
            raise _fail(f"no record {record_id}", code=1) from None
    if output == "json":
        print(orjson.dumps(facts).decode())
        return
    rec, pat = facts["record"], facts["pattern"]
    console.print(Text.assemble(("record ", "bold"), rec["id"], "  ", rec["timestamp"], "  ",
                                (rec["level"] or "-", LEVEL_STYLES.get(rec["level"] or "", "")), "  ",
                                rec["service"], "\n", rec["line"]))
    console.print(Text.assemble(("\npattern ", "bold"), f"#{pat['id']} ", pat["template"] or "?"))
    console.print(f"  first seen {pat['first_seen']}, last seen {pat['last_seen']}, {pat['count_total']} in all; "
                  f"{pat['count_window']} in the window, {pat['count_baseline']} in the baseline before"
                  + ("  [bold yellow]NEW[/]" if pat["new_in_window"] else ""), highlight=False)
    console.print(Text("  last 24h " + sparkline(pat["trend"]), style="cyan"))
    ch = facts["changes"]
    console.print(Text(f"\nwhat changed ({facts['window']['from']} .. {facts['window']['to']} against the "
                       "baseline before)", style="bold"))
    for row in ch["patterns"][:5]:
        console.print(Text(f"  pattern #{row['id']}: {row['baseline']} → {row['window']} (score {row['score']}) "
                           f"{row['template']}"))
    for label in ("services", "hosts"):
        for row in ch[label][:5]:
            console.print(Text(f"  {label[:-1]} {row['value']}: {row['baseline']} → {row['window']} "
                               f"(score {row['score']})"))
    for row in ch["attributes"][:5]:
        console.print(Text(f"  {row['field']}={row['value']}: {row['baseline']} → {row['window']} "
                           f"(score {row['score']})"))
    if facts["trace"]:
        console.print(Text(f"\nsame trace ({rec['trace_id']})", style="bold"))
        for r in facts["trace"][:20]:
            console.print(Text(f"  {r['id']} {r['timestamp'][:23]} {r['service']} {r['level'] or '-'} {r['message']}"))
    if facts["similar_patterns"]:
        console.print(Text("\nsimilar patterns", style="bold"))
        for m in facts["similar_patterns"]:
            console.print(Text(f"  #{m['id']} ({m['score']:.2f}, {m['count']} seen, last {m['last_seen']}) "
                               f"{m['template']}"))
    console.print(Text("\nsamples", style="bold"))
    for r in facts["samples"]:
        console.print(Text(f"  {r['id']} {r['line'].splitlines()[0] if r['line'] else ''}"))
    if facts.get("llm") and facts["llm"].get("text"):
        console.print(Text("\nLLM" + (" (cached)" if facts["llm"].get("cached") else ""), style="bold"))
        console.print(Text(facts["llm"]["text"]))


# ----------------------------------------------------------------------------------------- keys
keys_app = typer.Typer(help="API keys for a server with auth on (see docs/operations.md).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help="ingest (write endpoints), read (queries, /metrics) or admin (all).")],
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "",
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Create a key and print it once: only its hash is stored."""
    from loglens.keys import SCOPES, KeyStore

    if scope not in SCOPES:
        raise _fail(f"--scope is one of {', '.join(SCOPES)}")
    record, key = KeyStore(data).create(scope, name)
    err.print(f"created key [bold]{record.id}[/] ({record.scope}{', ' + record.name if record.name else ''}); "
              "it is shown once, store it now:", highlight=False)
    print(key)


@keys_app.command("list")
def keys_list(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    output: Annotated[str, typer.Option("-o", "--output", help="table or json.")] = "table",
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """The keys (never the keys themselves): id, name, scope, created, last used."""
    from loglens.keys import KeyStore

    keys = KeyStore(data, create=False).all(include_revoked=all_)
    if output == "json":
        for k in keys:
            sys.stdout.buffer.write(orjson.dumps({"id": k.id, "name": k.name, "scope": k.scope, "created": k.created,
                                                  "last_used": k.last_used, "revoked": k.revoked}) + b"\n")
        return
    table = Table(box=None)
    for column in ("id", "name", "scope", "created", "last used", *(["revoked"] if all_ else [])):
        table.add_column(column)
    for k in keys:
        table.add_row(k.id, k.name, k.scope, _when(k.created), _when(k.last_used),
                      *([_when(k.revoked)] if all_ else []))
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_or_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`) or the key itself.")],
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Revoke a key: a running server refuses it from its next request."""
    from loglens.keys import KeyStore

    record = KeyStore(data, create=False).revoke(key_or_id)
    if record is None:
        raise _fail("no active key with that id or value", code=1)
    err.print(f"revoked key [bold]{record.id}[/] ({record.scope}{', ' + record.name if record.name else ''})",
              highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
