"""Receivers bench: records/s through each receiver from its real client on loopback, and peak RSS.

    .venv/bin/python bench/receivers.py                  # 200,000 records per receiver
    .venv/bin/python bench/receivers.py --records 5000   # quick check
    .venv/bin/python bench/receivers.py --only kafka,syslog

The same generated events (bench/gen_logs.py, NDJSON shape) go, each time to a fresh
`loglens serve` on a fresh data directory with that receiver's flags, through:

* `/api/v1/logs` NDJSON (the reference): POSTs of `--batch` lines with httpx;
* Elasticsearch `_bulk`: elasticsearch-py's `helpers.bulk` (`chunk_size=--batch`);
* OTLP/HTTP: protobuf `ExportLogsServiceRequest`s of `--batch` records built with
  opentelemetry-proto and POSTed to `/v1/logs` (the SDK's exporter sends these same messages; its
  Python-side batching would be what is measured otherwise);
* Loki: protobuf+snappy `PushRequest`s of `--batch` entries (one stream per service);
* syslog: RFC 5424 frames, octet-counted, over one TCP connection (no acknowledgement in the
  protocol: the clock stops when the search API counts every record);
* forward: msgpack PackedForward messages of `--batch` entries with `chunk`, each waiting for its ack;
* Kafka: every record produced first to librdkafka's mock cluster (confluent-kafka's producer), then
  the server's consumer drains it; the clock runs from the first record stored to the last (the
  consumer group's join, a few seconds on the mock cluster, is not counted).

For the pushing clients the clock runs from the first send to the last acknowledgement (or, for
syslog, to the count reaching N); every run is checked with `/api/v1/count`. Peak RSS is the
server's (kernel high-water mark, VmHWM, polled).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BenchError,
    die,
    find_loglens,
    fmt_int,
    fmt_num,
    free_port,
    machine_note,
    markdown_table,
    serve,
)
from gen_logs import iter_chunks

RECEIVERS = ("logs", "elastic", "otlp", "loki", "syslog", "forward", "kafka")
NAMES = {
    "logs": "/api/v1/logs NDJSON", "elastic": "Elasticsearch _bulk (helpers.bulk)",
    "otlp": "OTLP/HTTP protobuf", "loki": "Loki protobuf+snappy", "syslog": "syslog TCP (RFC 5424, octet-counted)",
    "forward": "forward PackedForward + ack", "kafka": "Kafka (mock cluster, consumer group)",
}


@dataclass
class Result:
    name: str
    records: int
    seconds: float
    stored: int
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("nan")


# --------------------------------------------------------------------------------------------------
# The server


def count(base: str) -> int:
    import httpx

    r = httpx.get(base + "/api/v1/count", params={"q": "*"}, timeout=60)
    return int(r.json()["count"]) if r.status_code == 200 else -1


def wait_count(base: str, n: int, timeout: float) -> tuple[int, float]:
    """Poll until ``n`` records are counted; (count, time it was reached)."""
    deadline = time.monotonic() + timeout
    while True:
        got = count(base)
        now = time.perf_counter()
        if got >= n or time.monotonic() > deadline:
            return got, now
        time.sleep(0.05)


def _post(client: Any, path: str, body: bytes, headers: dict[str, str]) -> None:
    """POST, honouring 429 + Retry-After (the server's backpressure)."""
    while True:
        r = client.post(path, content=body, headers=headers)
        if r.status_code == 429:
            time.sleep(float(r.headers.get("Retry-After", "0.2") or 0.2))
            continue
        if r.status_code >= 300:
            raise BenchError(f"POST {path}: {r.status_code} {r.text[:300]}")
        return


def batches(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(events), size):
        yield events[i:i + size]


# --------------------------------------------------------------------------------------------------
# Clients. Each gets (base URL, the events, the batch size, the receiver's port) and returns when
# the server has acknowledged everything (or, without acknowledgements, when everything was sent).


def send_logs(base: str, events: list[dict[str, Any]], batch: int, port: int) -> None:
    import httpx

    with httpx.Client(base_url=base, timeout=120) as client:
        for chunk in batches(events, batch):
            body = b"\n".join(orjson.dumps(e) for e in chunk)
            _post(client, "/api/v1/logs", body, {"Content-Type": "application/x-ndjson"})


def send_elastic(base: str, events: list[dict[str, Any]], batch: int, port: int) -> None:
    from elasticsearch import Elasticsearch, helpers

    es = Elasticsearch(base, request_timeout=120, retry_on_status=(429,), max_retries=50)
    actions = ({"_index": "bench-logs", "_source": e} for e in events)
    _, errors = helpers.bulk(es, actions, chunk_size=batch, max_chunk_bytes=64 << 20, raise_on_error=False)
    es.close()
    if errors:
        raise BenchError(f"bulk errors: {str(errors)[:500]}")


def send_otlp(base: str, events: list[dict[str, Any]], batch: int, port: int) -> None:
    import httpx
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

    severity = {"DEBUG": SeverityNumber.SEVERITY_NUMBER_DEBUG, "INFO": SeverityNumber.SEVERITY_NUMBER_INFO,
                "WARN": SeverityNumber.SEVERITY_NUMBER_WARN, "ERROR": SeverityNumber.SEVERITY_NUMBER_ERROR}
    with httpx.Client(base_url=base, timeout=120) as client:
        for chunk in batches(events, batch):
            by_service: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for e in chunk:
                by_service.setdefault((e["service"], e["host"]), []).append(e)
            req = ExportLogsServiceRequest()
            for (service, host), evs in by_service.items():
                rl = req.resource_logs.add()
                rl.resource.attributes.extend([KeyValue(key="service.name", value=AnyValue(string_value=service)),
                                               KeyValue(key="host.name", value=AnyValue(string_value=host))])
                sl = rl.scope_logs.add()
                for e in evs:
                    rec = sl.log_records.add()
                    rec.time_unix_nano = e["_ns"]
                    rec.severity_text = e["level"]
                    rec.severity_number = severity.get(e["level"], 0)
                    rec.body.string_value = e["message"]
                    rec.attributes.append(KeyValue(key="thread", value=AnyValue(string_value=e["thread"])))
                    rec.trace_id = bytes.fromhex(e["trace_id"].rjust(32, "0"))
            _post(client, "/v1/logs", req.SerializeToString(), {"Content-Type": "application/x-protobuf"})


def send_loki(base: str, events: list[dict[str, Any]], batch: int, port: int) -> None:
    import cramjam
    import httpx

    from loglens.ingest._loki_pb import PushRequest  # Loki's push.proto messages

    with httpx.Client(base_url=base, timeout=120) as client:
        for chunk in batches(events, batch):
            streams: dict[str, list[dict[str, Any]]] = {}
            for e in chunk:
                streams.setdefault(f'{{service_name="{e["service"]}", host="{e["host"]}"}}', []).append(e)
            req = PushRequest()
            for labels, evs in streams.items():
                s = req.streams.add(labels=labels.encode())
                for e in evs:
                    entry = s.entries.add(line=f'{e["level"]} [{e["thread"]}] {e["message"]}'.encode())
                    entry.timestamp.seconds, entry.timestamp.nanos = divmod(e["_ns"], 1_000_000_000)
            body = bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
            _post(client, "/loki/api/v1/push", body, {"Content-Type": "application/x-protobuf"})


_SYSLOG_SEV = {"DEBUG": 7, "INFO": 6, "WARN": 4, "ERROR": 3}


def send_syslog(base: str, events: list[dict[str, Any]], batch: int, port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for chunk in batches(events, batch):
            frames = []
            for e in chunk:
                pri = 16 * 8 + _SYSLOG_SEV.get(e["level"], 6)  # local0
                msg = (f'<{pri}>1 {e["@timestamp"]} {e["host"]} {e["service"]} - - '
                       f'[ctx thread="{e["thread"]}"] {e["message"]}').encode()
                frames.append(b"%d %s" % (len(msg), msg))
            sock.sendall(b"".join(frames))


def send_forward(base: str, events: list[dict[str, Any]], batch: int, port: int) -> None:
    import msgpack

    with socket.create_connection(("127.0.0.1", port)) as sock:
        unpacker = msgpack.Unpacker(raw=False)
        for i, chunk in enumerate(batches(events, batch)):
            stream = b"".join(
                msgpack.packb([msgpack.ExtType(0, divmod(e["_ns"], 1_000_000_000)[0].to_bytes(4, "big")
                                               + (e["_ns"] % 1_000_000_000).to_bytes(4, "big")),
                               {k: v for k, v in e.items() if k != "_ns"}], use_bin_type=True)
                for e in chunk)
            ack_id = f"bench-{i}"
            sock.sendall(msgpack.packb(["app.bench", stream, {"chunk": ack_id, "size": len(chunk)}],
                                       use_bin_type=True))
            while True:  # wait for this chunk's ack: the records are committed
                reply = next(iter(unpacker), None)
                if reply is not None:
                    if reply.get("ack") != ack_id:
                        raise BenchError(f"unexpected forward reply {reply!r}")
                    break
                data = sock.recv(65536)
                if not data:
                    raise BenchError("the forward connection closed before the ack")
                unpacker.feed(data)


class KafkaSource:
    """The mock cluster lives in this producer: it stays alive for the whole Kafka run."""

    def __init__(self) -> None:
        import logging

        import confluent_kafka

        quiet = logging.getLogger("bench.librdkafka")
        quiet.setLevel(logging.ERROR)
        self.producer = confluent_kafka.Producer({"test.mock.num.brokers": 1, "linger.ms": 20,
                                                  "batch.num.messages": 10000, "logger": quiet})
        brokers = self.producer.list_topics(timeout=10).brokers.values()
        self.bootstrap = ",".join(f"{b.host}:{b.port}" for b in brokers)

    def produce(self, topic: str, events: list[dict[str, Any]]) -> None:
        for e in events:
            value = orjson.dumps({k: v for k, v in e.items() if k != "_ns"})
            while True:
                try:
                    self.producer.produce(topic, value=value)
                    break
                except BufferError:
                    self.producer.poll(0.05)
        if self.producer.flush(120):
            raise BenchError("the mock cluster did not take every record")


# --------------------------------------------------------------------------------------------------


def make_events(n: int) -> list[dict[str, Any]]:
    from datetime import datetime

    events: list[dict[str, Any]] = []
    for block in iter_chunks(n, fmt="ndjson"):
        for line in block.splitlines():
            e = orjson.loads(line)
            e.pop("stack_trace", None)  # one line per record for every protocol
            e["_ns"] = int(datetime.fromisoformat(e["@timestamp"].replace("Z", "+00:00")).timestamp() * 1e9)
            events.append(e)
    return events


def run_one(loglens: str, name: str, events: list[dict[str, Any]], batch: int, work: Path,
            timeout: float) -> Result:
    n = len(events)
    data = work / f"data-{name}"
    log_path = str(work / f"server-{name}.log")
    port = free_port()
    args: list[str] = []
    source: KafkaSource | None = None
    if name == "syslog":
        args = ["--syslog-port", str(port)]
    elif name == "forward":
        args = ["--forward-port", str(port)]
    elif name == "kafka":
        source = KafkaSource()
        source.produce("bench-logs", events)  # before the server starts: it drains a backlog
        args = ["--kafka-brokers", source.bootstrap, "--kafka-topic", "bench-logs", "--kafka-group", "bench"]
    senders: dict[str, Callable[[str, list[dict[str, Any]], int, int], None]] = {
        "logs": send_logs, "elastic": send_elastic, "otlp": send_otlp, "loki": send_loki,
        "syslog": send_syslog, "forward": send_forward,
    }
    with serve(loglens, str(data), log_path, args) as (child, base):
        if source is not None:
            got, t0 = wait_count(base, 1, timeout)
            first = got
            got, t1 = wait_count(base, n, timeout)
            measured, seconds = n - first, t1 - t0
        else:
            t0 = time.perf_counter()
            senders[name](base, events, batch, port)
            t1 = time.perf_counter()
            if name == "syslog":  # no acknowledgement: done when everything is stored
                got, t1 = wait_count(base, n, timeout)
            else:
                got = count(base)
            measured, seconds = n, t1 - t0
        stored = count(base)
        child.stop()
    del source
    if stored != n:
        print(f"warning: {name}: {stored} records stored, {n} sent", file=sys.stderr)
    return Result(name, measured, seconds, stored, child.peak_rss_mb)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000, help="records per receiver (default 200000)")
    ap.add_argument("--batch", type=int, default=5000, help="records per request/chunk (default 5000)")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(RECEIVERS)}")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed per receiver")
    ap.add_argument("--keep", action="store_true", help="keep the data directories and server logs")
    args = ap.parse_args(argv)
    chosen = [r.strip() for r in args.only.split(",") if r.strip()] or list(RECEIVERS)
    unknown = [r for r in chosen if r not in RECEIVERS]
    if unknown:
        die(f"unknown receiver(s) {', '.join(unknown)}; choose from {', '.join(RECEIVERS)}")
    if "logs" not in chosen:
        chosen.insert(0, "logs")  # the reference column needs it
    try:
        loglens = find_loglens()
    except BenchError as exc:
        die(str(exc))
    print(f"generating {args.records:,} events...", file=sys.stderr)
    events = make_events(args.records)
    work = Path(tempfile.mkdtemp(prefix="loglens-bench-receivers-"))
    results: list[Result] = []
    skipped: list[str] = []
    try:
        for name in chosen:
            print(f"{NAMES[name]}...", file=sys.stderr)
            try:
                results.append(run_one(loglens, name, events, args.batch, work, args.timeout))
            except ImportError as exc:
                skipped.append(f"{name}: {exc} (pip install -e '.[test]')")
            except BenchError as exc:
                skipped.append(f"{name}: {exc}")
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    ref = next((r.rate for r in results if r.name == "logs"), None)
    rows = [[NAMES[r.name], fmt_int(r.records) + ("" if r.stored == args.records else f" ({r.stored:,} stored!)"),
             fmt_num(r.seconds, 2), fmt_int(r.rate), f"{r.rate / ref:.2f}x" if ref else "n/a",
             fmt_num(r.peak_rss_mb, 0)] for r in results]
    print(markdown_table(["receiver", "records", "seconds", "records/s", "vs /api/v1/logs", "peak RSS MB"], rows))
    print(f"\n{args.records:,} records per receiver, batches of {args.batch:,}; {machine_note()}")
    for s in skipped:
        print(f"skipped {s}")
    return 1 if skipped or any(r.stored != args.records for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
