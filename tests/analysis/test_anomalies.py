"""Anomalies on a synthetic incident with a known answer.

The generator writes two and a half hours of steady traffic from three services and six hosts,
then an incident: at 14:02 ``payment`` starts timing out against its bank gateway (a pattern it
logged once in a while turns into a dozen a minute), at 14:05 host ``db-2`` goes silent, and at
14:10 a new exception appears in ``api``. The detector must report exactly those four things.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loglens.analysis.anomalies import AnomalyConfig, AnomalyDetector, rate_z, robust_baseline
from loglens.pipeline import Pipeline
from loglens.store import Store, open_store

DAY = datetime(2026, 3, 10, tzinfo=UTC)
START = DAY.replace(hour=12)
END = DAY.replace(hour=14, minute=30)
TIMEOUT_AT = DAY.replace(hour=14, minute=2)
SILENT_AT = DAY.replace(hour=14, minute=5)
EXCEPTION_AT = DAY.replace(hour=14, minute=10)
NPE = 'java.lang.NullPointerException: Cannot invoke "Order.getTotal()" because "order" is null'
TIMEOUT = "Timeout waiting for bank gateway {gw} after {ms} ms"


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 10**9


def incident_records(seed: int = 7) -> list[dict[str, Any]]:
    """The synthetic incident, as JSON records in time order."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []

    def emit(t: datetime, service: str, host: str, level: str, message: str, trace: str = "") -> None:
        rec = {"timestamp": t.isoformat(), "service": service, "host": host, "level": level, "message": message}
        if trace:
            rec["trace_id"] = trace
        out.append(rec)

    minute = START
    while minute < END:
        def at(i: int, n: int, base: datetime = minute) -> datetime:
            return base + timedelta(seconds=60 * i / n + rng.random() * 0.5)

        for host in ("api-1", "api-2"):
            n = 20 + rng.randint(-3, 3)
            for i in range(n):
                emit(at(i, n), "api", host, "INFO", f"GET /api/items/{rng.randint(1, 9999)} returned 200 "
                     f"in {rng.randint(2, 90)} ms")
            for i in range(5):
                emit(at(i, 5), "api", host, "DEBUG", f"cache miss for key user:{rng.randint(1, 10**6)}")
        if minute >= EXCEPTION_AT:
            for i in range(2):
                emit(at(i, 2), "api", "api-1", "ERROR", NPE, trace=f"{rng.getrandbits(64):016x}")
        n = 20 + rng.randint(-3, 3)
        for i in range(n):
            emit(at(i, n), "payment", "pay-1", "INFO",
                 f"payment {rng.getrandbits(32):08x} authorized amount={rng.randint(1, 500)} EUR",
                 trace=f"{rng.getrandbits(64):016x}")
        timeouts = 12 if minute >= TIMEOUT_AT else (1 if minute.minute % 15 == 7 else 0)
        for i in range(timeouts):
            emit(at(i, timeouts), "payment", "pay-1", "ERROR",
                 TIMEOUT.format(gw=f"gw-{rng.randint(1, 3)}", ms=rng.randint(5000, 5100)),
                 trace=f"{rng.getrandbits(64):016x}")
        for host in ("db-1", "db-2", "db-3"):
            if host == "db-2" and minute >= SILENT_AT:
                continue
            n = 15 + rng.randint(-2, 2)
            for i in range(n):
                emit(at(i, n), "db", host, "INFO",
                     f"query executed in {rng.randint(1, 40)} ms rows={rng.randint(0, 500)}")
            emit(at(0, 1), "db", host, "INFO", f"checkpoint complete: wrote {rng.randint(10, 900)} buffers")
        minute += timedelta(minutes=1)
    out.sort(key=lambda r: r["timestamp"])
    return out


def load(data: Path, records: list[dict[str, Any]]) -> Store:
    store = open_store(str(data), writable=True)
    with Pipeline(store).start() as pipeline:
        for i in range(0, len(records), 5000):
            pipeline.write(list(records[i:i + 5000]))
    return store


@pytest.fixture(scope="module")
def incident_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = load(tmp_path_factory.mktemp("incident") / "data", incident_records())
    yield store
    store.close()


def template_id(store: Store, prefix: str) -> int:
    matches = [t.id for t in store.templates() if t.text.startswith(prefix)]
    assert len(matches) == 1, [t.text for t in store.templates()]
    return matches[0]


def test_the_incident_produces_exactly_its_anomalies(incident_store: Store) -> None:
    detector = AnomalyDetector(incident_store)
    report = detector.detect(ns(DAY.replace(hour=13, minute=30)), ns(END) - 1, interval_ns=60 * 10**9)
    got = {(a.kind, a.service, a.pattern_id, a.host, a.start) for a in report.anomalies}
    timeout = template_id(incident_store, "Timeout waiting for bank gateway")
    npe = template_id(incident_store, "java.lang.NullPointerException")
    assert got == {
        ("pattern_spike", "payment", timeout, None, ns(TIMEOUT_AT)),
        ("error_share", "payment", None, None, ns(TIMEOUT_AT)),
        ("host_silent", "db", None, "db-2", ns(SILENT_AT)),
        ("new_pattern", "api", npe, None, ns(EXCEPTION_AT)),
    }
    by_kind = {a.kind: a for a in report.anomalies}
    spike = by_kind["pattern_spike"]
    assert spike.end == ns(END) - 1  # the timeouts go on to the end of the window
    assert spike.evidence["after"]["count"] == 12 * 28
    assert spike.evidence["before"]["per_bucket_median"] == 0
    share = by_kind["error_share"]
    assert share.evidence["before"]["error_share_median"] == 0
    assert share.evidence["after"]["error_share"] > 0.3
    new = by_kind["new_pattern"]
    assert new.evidence["after"] == {"count": 40, "levels": {"ERROR": 40}}
    silent = by_kind["host_silent"]
    assert silent.evidence["after"]["count"] == 0
    for anomaly in report.anomalies:
        assert anomaly.example_ids, anomaly
        assert anomaly.score > 0
        for ident in anomaly.example_ids:
            rec = incident_store.get(ident)
            assert rec is not None
            if anomaly.kind == "host_silent":
                assert rec.host == "db-2" and rec.timestamp < ns(SILENT_AT)
            else:
                assert rec.service == anomaly.service and rec.timestamp >= anomaly.start
            if anomaly.pattern_id is not None:
                assert rec.template_id == anomaly.pattern_id
    # the new exception (ERROR) outranks nothing it should not: scores are ranked
    assert [a.score for a in report.anomalies] == sorted((a.score for a in report.anomalies), reverse=True)
    as_json = report.to_dict()
    assert as_json["interval_ms"] == 60_000
    assert {a["kind"] for a in as_json["anomalies"]} == {a.kind for a in report.anomalies}


def test_steady_traffic_has_no_anomalies(incident_store: Store) -> None:
    report = AnomalyDetector(incident_store).detect(ns(DAY.replace(hour=12, minute=30)),
                                                    ns(DAY.replace(hour=14)) - 1)
    assert report.anomalies == []


def test_filters_by_service_and_kind(incident_store: Store) -> None:
    detector = AnomalyDetector(incident_store)
    window = (ns(DAY.replace(hour=13, minute=30)), ns(END) - 1)
    only_api = detector.detect(*window, service="api", interval_ns=60 * 10**9)
    assert {(a.kind, a.service) for a in only_api.anomalies} == {("new_pattern", "api")}
    only_hosts = detector.detect(*window, interval_ns=60 * 10**9, kinds=["host_silent"])
    assert [(a.kind, a.host) for a in only_hosts.anomalies] == [("host_silent", "db-2")]


def test_quiet_patterns_do_not_flap() -> None:
    # a pattern seen 0-2 times a bucket jumping to 5 is not a spike: below the minimum volume
    cfg = AnomalyConfig()
    z, med = rate_z(5, [0, 1, 2, 0, 1, 0, 2, 1])
    assert med == 1 and z < cfg.threshold and cfg.min_volume > 5
    assert robust_baseline([1, 2, 3, 100]) == (2.5, 1.0)


def test_streaming_hook_reports_a_new_pattern_once(tmp_path: Path) -> None:
    from loglens.analysis.anomalies import Anomaly, NewPatternWatcher

    store = open_store(str(tmp_path / "data"), writable=True)
    seen: list[Anomaly] = []
    try:
        with Pipeline(store).start() as pipeline:
            pipeline.write([{"timestamp": "2026-03-10T12:00:00Z", "service": "api", "message": "started in 3 s"}])
            pipeline.subscribe(NewPatternWatcher(store, seen.append))
            pipeline.write([{"timestamp": "2026-03-10T12:01:00Z", "service": "api", "message": "started in 4 s"},
                            {"timestamp": "2026-03-10T12:01:01Z", "service": "api", "level": "ERROR",
                             "message": "disk /dev/sda1 is full"}])
            pipeline.write([{"timestamp": "2026-03-10T12:02:00Z", "service": "api", "level": "ERROR",
                             "message": "disk /dev/sdb1 is full"}])
        assert [(a.kind, a.service, a.pattern) for a in seen] == [("new_pattern", "api", "disk <*> is full")]
        assert seen[0].score == 3 * 2 and seen[0].example_ids
    finally:
        store.close()


def test_a_barely_started_last_bucket_is_not_judged(incident_store: Store) -> None:
    # ``to`` one nanosecond into a new minute: that minute holds almost nothing, which is no drop
    report = AnomalyDetector(incident_store).detect(ns(DAY.replace(hour=13, minute=30)), ns(END) - 10**9 + 1,
                                                    interval_ns=60 * 10**9)
    assert sorted(a.kind for a in report.anomalies) == ["error_share", "host_silent", "new_pattern",
                                                         "pattern_spike"]
    cut = AnomalyDetector(incident_store).detect(ns(DAY.replace(hour=13, minute=30)), ns(TIMEOUT_AT),
                                                 interval_ns=60 * 10**9)
    assert cut.anomalies == []  # 14:02:00.000000000 alone is not a bucket of timeouts yet
