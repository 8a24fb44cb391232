"""End to end: a real ``loglens serve`` subprocess, driven over HTTP."""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path

import httpx
import orjson

from tests.conftest import Server, start_server, stop_server

SPRING_LOGSTASH = {
    "@timestamp": "2026-11-20T10:00:00.123+01:00", "@version": "1", "message": "Payment failed for order 42",
    "logger_name": "com.shop.PaymentService", "thread_name": "http-nio-8080-exec-1", "level": "ERROR",
    "level_value": 40000,
    "stack_trace": "java.lang.IllegalStateException: card declined\n\tat com.shop.Pay.x(Pay.java:10)",
}
SPRING_ECS = {
    "@timestamp": "2026-11-20T09:00:01.5Z", "log.level": "WARN", "process.pid": 4242,
    "process.thread.name": "main", "service.name": "orders", "log.logger": "com.shop.Orders",
    "message": "Slow query took 1200ms", "ecs.version": "8.11",
}


def ndjson(*objs: dict[str, object]) -> bytes:
    return b"\n".join(orjson.dumps(o) for o in objs) + b"\n"


def search(client: httpx.Client, q: str, **params: object) -> list[dict[str, object]]:
    resp = client.get("/api/v1/search", params={"q": q, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()["records"]


def test_ingest_formats_and_search(server: Server) -> None:
    with server.client() as c:
        r = c.post("/api/v1/logs", content=ndjson(SPRING_LOGSTASH, SPRING_ECS),
                   headers={"Content-Type": "application/x-ndjson"}, params={"service": "shop"})
        assert r.status_code == 200, r.text
        assert r.json() == {"accepted": 2, "rejected": []}
        r = c.post("/api/v1/logs", content=orjson.dumps([{"msg": "array one", "ts": 1763632800},
                                                           {"msg": "array two", "ts": 1763632801000}]),
                   headers={"Content-Type": "application/json"})
        assert r.json()["accepted"] == 2
        text = (b"2026-11-20 10:05:00,123 ERROR [main] com.shop.Api: request failed\n"
                b"java.lang.RuntimeException: boom\n\tat com.shop.Api.handle(Api.java:12)\n"
                b"Caused by: java.io.IOException: connection refused\n\t... 5 more\n"
                b"2026-11-20 10:05:01,000 INFO [main] com.shop.Api: request served\n")
        r = c.post("/api/v1/logs", content=gzip.compress(text), params={"service": "api", "host": "web-1"},
                   headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"})
        assert r.json()["accepted"] == 2  # the stack trace joined its first line

        (rec,) = search(c, "card declined")
        assert rec["level"] == "ERROR" and rec["service"] == "shop"
        assert rec["timestamp"] == "2026-11-20T09:00:00.123000000Z"
        assert rec["attributes"]["logger_name"] == "com.shop.PaymentService"
        (ecs,) = search(c, "service:orders")
        assert ecs["level"] == "WARN" and ecs["attributes"]["process.pid"] == 4242
        (trace,) = search(c, '"connection refused"')
        assert trace["host"] == "web-1" and trace["level"] == "ERROR"
        assert "\tat com.shop.Api.handle" in trace["message"]
        # header words still match: the component and the thread were parsed out of the message
        assert [r["id"] for r in search(c, "com.shop.Api")] == [r["id"] for r in search(c, "service:api")]
        assert len(search(c, "array")) == 2
        r = c.post("/api/v1/logs", content=b"set by headers\n",
                   headers={"Content-Type": "text/plain", "X-LogLens-Service": "hdr-svc", "X-LogLens-Host": "hdr-host"})
        assert r.status_code == 200
        (by_header,) = search(c, "service:hdr-svc host:hdr-host")
        assert by_header["message"] == "set by headers"
        assert c.get("/api/v1/count", params={"q": "level>=WARN"}).json() == {"count": 3}
        assert c.get("/api/v1/count", params={"q": ""}).json() == {"count": 7}


def test_rejects_bad_lines_but_keeps_good_ones(server: Server) -> None:
    with server.client() as c:
        body = b'{"message": "good one"}\n{"message": broken\n[1,2]\n{"message": "good two"}\n'
        r = c.post("/api/v1/logs", content=body, headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 200
        out = r.json()
        assert out["accepted"] == 2
        assert [x["line"] for x in out["rejected"]] == [2, 3]
        assert "invalid JSON" in out["rejected"][0]["reason"]
        assert "expected a JSON object" in out["rejected"][1]["reason"]
        r = c.post("/api/v1/logs", content=b"   \n", headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 400 and "empty body" in r.json()["error"]
        r = c.post("/api/v1/logs", content=b"caf\xe9 au lait \xff\n", headers={"Content-Type": "text/plain"})
        assert r.status_code == 200
        (rec,) = search(c, "lait")
        assert rec["message"] == "caf\ufffd au lait \ufffd"
        r = c.post("/api/v1/logs", content=ndjson({"@timestamp": 2**64 - 1, "message": "far future"},
                                                  {"@timestamp": "9999-12-31T23:59:59Z", "message": "year 9999"},
                                                  {"ts": -5_000_000_000_000, "message": "before 1970"}))
        assert r.status_code == 200 and r.json()["accepted"] == 3
        for text in ("far future", "year 9999", "before 1970"):
            (odd,) = search(c, f'"{text}"')
            assert odd["timestamp"] == odd["observed_at"]
            assert "timestamp_original" in odd["attributes"]
        r = c.post("/api/v1/logs", content=b"\x1f\x8bnot gzip", headers={"Content-Encoding": "gzip"})
        assert r.status_code == 400 and "gzip" in r.json()["error"]
        assert c.get("/api/v1/count").json()["count"] == 6


def test_body_over_limit_is_413(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", env={"LOGLENS_MAX_BODY_BYTES": "1000"})
    try:
        with srv.client() as c:
            r = c.post("/api/v1/logs", content=b"x" * 2000, headers={"Content-Type": "text/plain"})
            assert r.status_code == 413
            bomb = gzip.compress(b"y" * 100_000)
            r = c.post("/api/v1/logs", content=bomb, headers={"Content-Encoding": "gzip"})
            assert r.status_code == 413
            assert c.get("/api/v1/count").json()["count"] == 0
    finally:
        stop_server(srv)


def test_query_errors_are_400_with_position(server: Server) -> None:
    with server.client() as c:
        c.post("/api/v1/logs", content=ndjson({"message": "x", "http": {"status": 500}}))
        r = c.get("/api/v1/search", params={"q": "level:ERROR AND (timeout"})
        assert r.status_code == 400
        body = r.json()
        assert body["position"] == len("level:ERROR AND (timeout")
        assert "expected ')'" in body["error"]
        r = c.get("/api/v1/search", params={"q": "nosuchfield:1"})
        assert r.status_code == 400
        assert "unknown field 'nosuchfield'" in r.json()["error"] and "http.status" in r.json()["error"]
        r = c.get("/api/v1/search", params={"from": "yesterday-ish"})
        assert r.status_code == 400 and "from" in r.json()["error"]
        r = c.get("/api/v1/top", params={"field": "nope"})
        assert r.status_code == 400 and "unknown field" in r.json()["error"]


def test_cursor_paging_histogram_top_context(server: Server) -> None:
    base = 1_763_632_800  # 2025-11-20T10:00:00Z
    lines = [{"timestamp": base + i, "message": f"req {i} {'timeout' if i % 3 == 0 else 'ok'}",
              "level": "ERROR" if i % 3 == 0 else "INFO", "service": ["a", "b"][i % 2], "host": "h1"}
             for i in range(250)]
    with server.client() as c:
        assert c.post("/api/v1/logs", content=ndjson(*lines)).status_code == 200
        ids: list[str] = []
        cursor = None
        while True:
            params = {"q": "timeout", "limit": 30, **({"cursor": cursor} if cursor else {})}
            page = c.get("/api/v1/search", params=params).json()
            ids += [r["id"] for r in page["records"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(ids) == len(set(ids)) == 84
        assert ids == sorted(ids, key=int, reverse=True)  # newest first
        hist = c.get("/api/v1/histogram", params={"q": "", "from": str(base), "to": str(base + 249),
                                                  "interval": "1m"}).json()
        assert hist["interval_ms"] == 60_000
        assert sum(b["total"] for b in hist["buckets"]) == 250
        assert sum(b["counts"].get("ERROR", 0) for b in hist["buckets"]) == 84
        top = c.get("/api/v1/top", params={"field": "service", "q": "timeout"}).json()["values"]
        assert top == [{"value": "a", "count": 42}, {"value": "b", "count": 42}]
        ranged = c.get("/api/v1/count", params={"from": "2025-11-20T10:01:00Z",
                                                "to": "2025-11-20T10:01:59.999Z"}).json()
        assert ranged == {"count": 60}
        (target,) = search(c, '"req 100"')
        ctx = c.get(f"/api/v1/records/{target['id']}/context", params={"before": 3, "after": 2}).json()
        # the same service and host only: service "a" holds the even numbers
        assert [r["message"].split()[1] for r in ctx["before"]] == ["94", "96", "98"]
        assert [r["message"].split()[1] for r in ctx["after"]] == ["102", "104"]
        assert ctx["record"]["id"] == target["id"]
        assert c.get("/api/v1/records/123/context").status_code == 404
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/docs").status_code == 200
        assert c.get("/openapi.json").json()["info"]["title"] == "LogLens"


def test_tail_delivers_within_a_second(server: Server) -> None:
    got: list[tuple[float, dict[str, object]]] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", server.url + "/api/v1/tail", params={"q": "level:ERROR"}, timeout=10) as r:
            for line in r.iter_lines():
                if line.startswith(": tailing"):
                    ready.set()
                if line.startswith("data: "):
                    got.append((time.monotonic(), orjson.loads(line[6:])))
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert ready.wait(10)
    with server.client() as c:
        c.post("/api/v1/logs", content=ndjson({"message": "quiet", "level": "info"}))
        sent = time.monotonic()
        c.post("/api/v1/logs", content=ndjson({"message": "loud failure", "level": "error"}))
    t.join(5)
    assert got, "no record arrived on the tail"
    arrived, rec = got[0]
    assert rec["message"] == "loud failure"
    assert arrived - sent < 1.0


def test_acknowledged_records_survive_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data)
    acknowledged = 0
    stop = threading.Event()

    def send() -> None:
        nonlocal acknowledged
        with srv.client() as c:
            i = 0
            while not stop.is_set():
                batch = [{"message": f"durable {i}-{j}"} for j in range(500)]
                try:
                    r = c.post("/api/v1/logs", content=ndjson(*batch))
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    acknowledged += r.json()["accepted"]
                i += 1

    t = threading.Thread(target=send)
    t.start()
    time.sleep(1.5)
    srv.kill()  # SIGKILL in the middle of ingest
    stop.set()
    t.join()
    assert acknowledged > 0
    srv2 = start_server(data)
    try:
        with srv2.client() as c:
            stored = c.get("/api/v1/count", params={"q": "durable"}).json()["count"]
        # every acknowledged record is there; at most the one unacknowledged batch in flight more
        assert acknowledged <= stored <= acknowledged + 500
    finally:
        stop_server(srv2)


def test_retention_drops_old_days_at_start(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    data = tmp_path / "data"
    now = time.time()
    lines = [{"ts": now - 5 * 86_400, "message": "ancient"}, {"ts": now - 4 * 86_400, "message": "old"},
             {"ts": now - 60, "message": "fresh"}]
    run_cli("ingest", "-", "--data", str(data), input=ndjson(*lines))
    shards = sorted(p.name for p in (data / "shards").iterdir() if p.suffix == ".db")
    assert len(shards) == 3
    srv = start_server(data, env={"LOGLENS_RETENTION": "2d"})
    try:
        with srv.client() as c:
            deadline = time.monotonic() + 10
            while c.get("/api/v1/count").json()["count"] != 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [r["message"] for r in search(c, "")] == ["fresh"]
        assert len([p for p in (data / "shards").iterdir() if p.suffix == ".db"]) == 1
    finally:
        stop_server(srv)


def test_patterns_ranked_with_trend_levels_and_example(server: Server) -> None:
    base = 1_763_632_800
    lines = []
    for i in range(60):
        lines.append({"timestamp": base + i * 60, "level": "info",
                      "message": f"user u{i} logged in from 10.0.{i % 7}.{i % 5} in {i + 3} ms"})
        if i % 3 == 0:
            lines.append({"timestamp": base + i * 60 + 1, "level": "error",
                          "message": f"payment {1000 + i} failed: card declined by bank {i % 4}"})
    lines.append({"timestamp": base + 3600, "level": "warn", "message": "disk almost full"})
    with server.client() as c:
        assert c.post("/api/v1/logs", content=ndjson(*lines)).status_code == 200
        out = c.get("/api/v1/patterns", params={"from": str(base), "to": str(base + 3600)}).json()
        counts = [(p["count"], p["template"]) for p in out["patterns"]]
        assert counts[0] == (60, "user <*> logged in from <*> in <*> ms")
        assert counts[1][0] == 20 and counts[1][1].startswith("payment <*> failed")
        assert counts[2] == (1, "disk almost full")
        first = out["patterns"][0]
        assert first["levels"] == {"INFO": 60}
        assert sum(first["trend"]) == 60 and len(first["trend"]) == 24
        assert first["example"]["message"].startswith("user u59 ")
        assert all(p["new"] for p in out["patterns"])
        errors = c.get("/api/v1/patterns", params={"q": "level:ERROR"}).json()["patterns"]
        assert [p["count"] for p in errors] == [20]
        tid = out["patterns"][1]["id"]
        assert c.get("/api/v1/count", params={"q": f"template:{tid}"}).json() == {"count": 20}
        detail = c.get(f"/api/v1/patterns/{tid}", params={"interval": "1h", "from": str(base),
                                                         "to": str(base + 7200)}).json()
        assert detail["template"] == out["patterns"][1]["template"]
        assert sum(b["total"] for b in detail["buckets"]) == 20
        assert c.get("/api/v1/patterns/99999").status_code == 404
        none_new = c.get("/api/v1/patterns", params={"from": str(base + 1800), "new": "true"}).json()
        assert [p["template"] for p in none_new["patterns"]] == ["disk almost full"]
