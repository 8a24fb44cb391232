"""API keys and scopes: every route refuses missing, wrong, revoked and under-scoped keys."""

from __future__ import annotations

import base64
import hmac
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from loglens.config import Settings
from loglens.keys import ApiKey, KeyStore, hash_key
from loglens.server import create_app
from loglens.server.auth import (
    ANY,
    FailureLimiter,
    credentials,
    flat_routes,
    match_route,
    required_scope,
    requires,
)
from tests.conftest import Server, run_cli, start_server, stop_server

SAMPLE_PARAMS = {"index": "app-logs", "doc_id": "1", "record_id": "1", "template_id": "1", "name": "x", "rest": "x"}
STREAMING = {"/api/v1/tail"}


@dataclass
class Keys:
    ingest: str
    read: str
    admin: str
    revoked: str
    ids: dict[str, str]


def make_keys(data: Path) -> Keys:
    store = KeyStore(data)
    made: dict[str, tuple[ApiKey, str]] = {scope: store.create(scope, name=f"test-{scope}")
                                           for scope in ("ingest", "read", "admin")}
    gone, revoked = store.create("admin", name="revoked")
    assert store.revoke(gone.id) is not None
    store.close()
    return Keys(made["ingest"][1], made["read"][1], made["admin"][1], revoked,
                {scope: rec.id for scope, (rec, _) in made.items()})


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLE_PARAMS.get(m.group(1), "x"), path)


def every_route(app: Any) -> list[tuple[str, str, str]]:
    """(method, concrete path, route path) for every route and method the app serves."""
    out = []
    for prefix, route in flat_routes(app.routes):
        if not isinstance(route, Route) or not route.methods:
            continue
        for method in sorted(route.methods):
            out.append((method, concrete(prefix + route.path), prefix + route.path))
    return out


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def under_scoped(needed: str | None, keys: Keys) -> list[str]:
    return {"ingest": [keys.read], "read": [keys.ingest], "admin": [keys.read, keys.ingest]}.get(needed or "", [])


# --------------------------------------------------------------------------------- in process
@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[tuple[TestClient, Keys]]:
    data = tmp_path / "data"
    keys = make_keys(data)
    app = create_app(Settings(data=str(data), auth="on", auth_max_failures=0))

    # what a future admin route looks like: a write that is not ingest, and a GET marked admin
    @app.post("/api/v1/admin-probe")
    def admin_write() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/api/v1/admin-read-probe")
    @requires("admin")
    def admin_read() -> dict[str, bool]:
        return {"ok": True}

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, keys


def test_every_route_needs_the_right_key(app_client: tuple[TestClient, Keys]) -> None:
    client, keys = app_client
    app: Any = client.app
    routes = every_route(app)
    paths = {p for _, _, p in routes}
    # the enumeration really covers the API, the receivers on this port and the docs
    for expected in ("/api/v1/logs", "/api/v1/search", "/metrics", "/_bulk", "/loki/api/v1/push", "/v1/logs",
                     "/openapi.json", "/api/v1/records/{record_id}/context"):
        assert expected in paths
    checked = 0
    seen_scopes = set()
    for method, path, route_path in routes:
        needed = required_scope(match_route(app.router.routes, _scope(method, path)), method, path)
        if route_path in ("/healthz", "/readyz"):
            assert needed is None
            assert client.request(method, path).status_code not in (401, 403)
            continue
        assert needed in ("ingest", "read", "admin"), (method, path, needed)
        seen_scopes.add(needed)
        label = f"{method} {path}"
        missing = client.request(method, path)
        assert missing.status_code == 401, label
        assert "Bearer" in missing.headers["www-authenticate"], label
        for bad in ("ll_" + "A" * 43, "not-a-key", keys.revoked):
            resp = client.request(method, path, headers=bearer(bad))
            assert resp.status_code == 401, label
            assert "www-authenticate" in resp.headers
        for weak in under_scoped(needed, keys):
            assert client.request(method, path, headers=bearer(weak)).status_code == 403, label
        if route_path not in STREAMING:
            good = keys.admin if needed == "admin" else getattr(keys, needed)
            for key in {good, keys.admin}:
                assert client.request(method, path, headers=bearer(key)).status_code not in (401, 403), label
        checked += 1
    assert checked > 30
    assert seen_scopes == {"ingest", "read", "admin"}
    assert client.post("/api/v1/admin-probe", headers=bearer(keys.admin)).json() == {"ok": True}
    assert client.get("/api/v1/admin-read-probe", headers=bearer(keys.read)).status_code == 403


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}


def test_scopes_of_known_routes(tmp_path: Path) -> None:
    app: Any = create_app(Settings(data=str(tmp_path), auth="on"))

    def scope_of(method: str, path: str) -> str | None:
        return required_scope(match_route(app.router.routes, _scope(method, path)), method, path)

    assert scope_of("POST", "/api/v1/logs") == "ingest"
    assert scope_of("POST", "/_bulk") == "ingest"
    assert scope_of("POST", "/logs-2026/_bulk") == "ingest"
    assert scope_of("POST", "/loki/api/v1/push") == "ingest"
    assert scope_of("POST", "/v1/logs") == "ingest"
    assert scope_of("GET", "/") == "ingest"  # the Elasticsearch handshake
    for path in ("/api/v1/search", "/api/v1/count", "/api/v1/histogram", "/api/v1/top", "/api/v1/records/1",
                 "/api/v1/tail", "/api/v1/patterns", "/api/v1/fields", "/api/v1/stats", "/metrics"):
        assert scope_of("GET", path) == "read", path
    assert scope_of("GET", "/healthz") is None and scope_of("GET", "/readyz") is None
    assert scope_of("DELETE", "/api/v1/search") == "admin"  # the 405 is only shown to an admin key
    assert required_scope(None, "GET", "/nowhere") == ANY


def test_other_credential_forms(app_client: tuple[TestClient, Keys]) -> None:
    client, keys = app_client
    key_id = keys.ids["read"]
    forms = {
        "Bearer": f"Bearer {keys.read}",
        "ApiKey raw": f"ApiKey {keys.read}",
        "ApiKey id:key": "ApiKey " + base64.b64encode(f"{key_id}:{keys.read}".encode()).decode(),
        "Basic": "Basic " + base64.b64encode(f"anyone:{keys.read}".encode()).decode(),
    }
    for label, header in forms.items():
        assert client.get("/api/v1/count", headers={"Authorization": header}).status_code == 200, label
    assert client.get("/api/v1/count", auth=("someone", keys.read)).status_code == 200
    assert client.get("/api/v1/count", auth=("someone", keys.ingest)).status_code == 403
    assert client.get("/api/v1/count", auth=(keys.read, "")).status_code == 401  # the key is the password


def test_credentials_parsing() -> None:
    def parse(value: str) -> str | None:
        return credentials([(b"authorization", value.encode())])

    assert parse("Bearer ll_abc") == "ll_abc"
    assert parse("bearer  ll_abc ") == "ll_abc"
    assert parse("ApiKey " + base64.b64encode(b"id1:ll_xyz").decode()) == "ll_xyz"
    assert parse("ApiKey ll_xyz") == "ll_xyz"
    assert parse("Basic " + base64.b64encode(b"u:ll_p:w").decode()) == "ll_p:w"
    assert parse("Basic !!!") is None
    assert parse("Digest x") is None
    assert credentials([]) is None


def test_comparison_is_hmac_compare_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore(tmp_path)
    _, key = store.create("read")
    store.create("ingest")
    assert store.verify(key) is not None
    calls: list[tuple[Any, Any]] = []

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return False

    monkeypatch.setattr(hmac, "compare_digest", spy)
    # with compare_digest answering "different", even the right key fails: it is the only comparison
    assert store.verify(key) is None
    assert len(calls) == 2  # every key compared, no early exit
    assert all(a == hash_key(key) for a, _ in calls)
    assert all(isinstance(a, str) and len(a) == 64 for pair in calls for a in pair)  # hashes, never keys
    monkeypatch.undo()
    assert store.verify(key) is not None


def test_only_the_hash_is_stored(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    record, key = store.create("admin", "ops")
    assert key.startswith("ll_") and len(key) == 46
    raw = (tmp_path / "keys.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("keys.db-*"))
    assert key.encode() not in raw
    assert record.hash == hash_key(key)


def test_failed_attempts_are_rate_limited(tmp_path: Path) -> None:
    data = tmp_path / "data"
    keys = make_keys(data)
    app = create_app(Settings(data=str(data), auth="on", auth_max_failures=3, auth_block_seconds=60))
    with TestClient(app) as client:
        assert client.get("/api/v1/count", headers=bearer(keys.read)).status_code == 200
        for _ in range(3):
            assert client.get("/api/v1/count", headers=bearer("ll_guess")).status_code == 401
        blocked = client.get("/api/v1/count", headers=bearer(keys.read))
        assert blocked.status_code == 429
        assert 0 < int(blocked.headers["retry-after"]) <= 61
        assert client.get("/healthz").status_code == 200


def test_failure_limiter_window_and_block() -> None:
    limiter = FailureLimiter(max_failures=3, window=60, block=30)
    assert not limiter.fail("a", now=0) and not limiter.fail("a", now=1)
    assert not limiter.fail("a", now=70)  # the first two fell out of the window
    assert not limiter.fail("b", now=70)
    assert not limiter.fail("a", now=71)
    assert limiter.fail("a", now=72)
    assert limiter.blocked_for("a", now=80) == pytest.approx(22)
    assert limiter.blocked_for("b", now=80) == 0
    assert limiter.blocked_for("a", now=102.5) == 0


# ------------------------------------------------------------------------------- a real server
@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Keys]]:
    data = tmp_path_factory.mktemp("auth") / "data"
    keys = make_keys(data)
    srv = start_server(data, "--auth", "on", "--log-level", "debug", env={"LOGLENS_AUTH_MAX_FAILURES": "0"})
    yield srv, keys
    stop_server(srv)


def test_elasticsearch_client_with_api_key(auth_server: tuple[Server, Keys]) -> None:
    from elasticsearch import AuthenticationException, Elasticsearch, helpers

    srv, keys = auth_server
    es = Elasticsearch(srv.url, api_key=(keys.ids["ingest"], keys.ingest), request_timeout=30)
    ok, errors = helpers.bulk(es, [{"_index": "es-auth", "_source": {"message": f"hello {i}"}} for i in range(20)])
    assert ok == 20 and not errors
    encoded = base64.b64encode(f"{keys.ids['ingest']}:{keys.ingest}".encode()).decode()
    es2 = Elasticsearch(srv.url, api_key=encoded, request_timeout=30)
    assert es2.index(index="es-auth", document={"message": "one more"})["result"] == "created"
    with pytest.raises(AuthenticationException):
        Elasticsearch(srv.url, api_key=("x", "ll_wrong"), request_timeout=30).index(
            index="es-auth", document={"message": "refused"})
    with httpx.Client(base_url=srv.url, auth=("reader", keys.read)) as c:  # basic auth, key as password
        assert c.get("/api/v1/count", params={"q": "service:es-auth"}).json()["count"] == 21


def test_revoke_on_a_running_server(auth_server: tuple[Server, Keys]) -> None:
    srv, _ = auth_server
    created = run_cli("keys", "create", "--scope", "read", "--name", "temp", "--data", str(srv.data))
    key = created.stdout.decode().strip()
    assert key.startswith("ll_") and key not in created.stderr.decode()
    listed = run_cli("keys", "list", "--data", str(srv.data)).stdout.decode()
    assert "temp" in listed and key not in listed
    with httpx.Client(base_url=srv.url, headers=bearer(key), timeout=10) as c:
        assert c.get("/api/v1/count").status_code == 200
        run_cli("keys", "revoke", key, "--data", str(srv.data))
        revoked_at = time.monotonic()
        while (status := c.get("/api/v1/count").status_code) != 401:
            assert status == 200
            assert time.monotonic() - revoked_at < 1.0, "the revoked key still works after a second"
            time.sleep(0.02)
    assert run_cli("keys", "revoke", key, "--data", str(srv.data), check=False).returncode == 1
    assert "temp" not in run_cli("keys", "list", "--data", str(srv.data)).stdout.decode()


def test_revoke_by_id(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = run_cli("keys", "create", "--scope", "ingest", "--data", str(data)).stdout.decode().strip()
    key_id = KeyStore(data).verify(key)
    assert key_id is not None
    run_cli("keys", "revoke", key_id.id, "--data", str(data))
    assert KeyStore(data).verify(key) is None
    assert run_cli("keys", "create", "--scope", "root", "--data", str(data), check=False).returncode == 2


def test_secrets_stay_out_of_logs_and_metrics(auth_server: tuple[Server, Keys]) -> None:
    srv, keys = auth_server
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        c.post("/api/v1/logs", content=b"one line\n", headers=bearer(keys.ingest))
        c.get("/api/v1/search", params={"q": "line"}, headers=bearer(keys.admin))
        c.get("/api/v1/search", headers=bearer(keys.revoked))
        c.get("/api/v1/search", headers=bearer("ll_guessed-key-value"))
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=bearer(keys.ingest)).status_code == 403
        metrics = c.get("/metrics", headers=bearer(keys.read))
        assert metrics.status_code == 200
        assert 'loglens_auth_failures_total{reason="invalid"}' in metrics.text
    time.sleep(0.2)
    log = srv.log.read_text()
    secrets = [keys.ingest, keys.read, keys.admin, keys.revoked, "ll_guessed-key-value"]
    for secret in secrets + [hash_key(k) for k in secrets]:
        assert secret not in log
        assert secret not in metrics.text
        assert secret[3:20] not in log and secret[3:20] not in metrics.text


def test_refuses_non_loopback_without_auth(tmp_path: Path) -> None:
    result = run_cli("serve", "--data", str(tmp_path / "d"), "--host", "0.0.0.0", "--auth", "off", check=False)
    assert result.returncode == 2
    assert "without authentication" in result.stderr.decode() and "--insecure" in result.stderr.decode()
    bad = run_cli("serve", "--data", str(tmp_path / "d"), "--auth", "maybe", check=False)
    assert bad.returncode == 2


def test_non_loopback_defaults_to_auth_on(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", "--host", "0.0.0.0")
    try:
        with srv.client() as c:
            assert c.get("/healthz").status_code == 200
            assert c.get("/api/v1/count").status_code == 401
            assert c.post("/api/v1/logs", content=b"x\n").status_code == 401
    finally:
        stop_server(srv)
