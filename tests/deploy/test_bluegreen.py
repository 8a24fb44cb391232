"""deploy/bluegreen.sh with Debian's real nginx and two ``loglens serve`` processes on loopback:
continuous ingest and search through nginx across the switch, and not one request fails."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)



def _need_nginx() -> str:
    """Debian's nginx; a skip with the reason when it is absent, a failure where services are required."""
    if NGINX is None:
        if os.environ.get("LOGLENS_REQUIRE_SERVICES") == "1":
            pytest.fail("nginx is required (LOGLENS_REQUIRE_SERVICES=1): apt-get install -y nginx")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return NGINX

SLOT_SH = """#!/bin/sh
# start|stop SLOT: a loglens server per slot, like the compose services, as plain processes.
set -eu
action="$1"; slot="$2"; root="{root}"
case "$slot" in blue) port={blue_port} ;; green) port={green_port} ;; *) exit 2 ;; esac
if [ "$action" = start ]; then
  "{python}" -m loglens.cli serve --data "$root/$slot/current" --port "$port" \\
    </dev/null >>"$root/$slot.log" 2>&1 &
  echo $! >"$root/$slot.pid"
else
  pid="$(cat "$root/$slot.pid")"
  kill -TERM "$pid" 2>/dev/null || exit 0
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  exit 0
fi
"""

NGINX_CONF = """
{user}
worker_processes 2;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {root}/nginx-access.log;
    client_body_temp_path {root}/nginx-body;
    proxy_temp_path {root}/nginx-proxy;
    fastcgi_temp_path {root}/nginx-fastcgi;
    uwsgi_temp_path {root}/nginx-uwsgi;
    scgi_temp_path {root}/nginx-scgi;
    include {root}/upstream.conf;
    server {{
        listen 127.0.0.1:{port};
        include {deploy}/nginx/proxy.conf;
    }}
}}
"""


@dataclass
class Traffic:
    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    ok: dict[str, int] = field(default_factory=lambda: {"ingest": 0, "search": 0})
    failures: list[str] = field(default_factory=list)
    last_batch: int = -1
    lock: threading.Lock = field(default_factory=threading.Lock)
    during_switch: dict[str, int] = field(default_factory=lambda: {"ingest": 0, "search": 0})
    switching: bool = False

    def _client(self) -> httpx.Client:
        # A new connection per request: what is measured is nginx's switch, not a client's reuse of a
        # kept-alive connection that an old nginx worker closes at the moment of reuse.
        return httpx.Client(base_url=self.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0))

    def _done(self, kind: str, resp: httpx.Response | None, error: str | None) -> None:
        with self.lock:
            if error is None and resp is not None and 200 <= resp.status_code < 300:
                self.ok[kind] += 1
                if self.switching:
                    self.during_switch[kind] += 1
            else:
                detail = error or f"{resp.status_code if resp else '?'} {resp.text[:200] if resp else ''}"
                self.failures.append(f"{kind}: {detail}")

    def ingest(self, worker: int, max_requests: int = 5000, max_seconds: float = 120) -> None:
        deadline = time.monotonic() + max_seconds
        with self._client() as client:
            for n in range(max_requests):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                batch = worker * 100_000 + n
                body = "\n".join(f"bgbatch{batch} line {i} level=error user u{i}" for i in range(20))
                try:
                    resp = client.post("/api/v1/logs", params={"service": f"w{worker}"}, content=body,
                                       headers={"Content-Type": "text/plain"})
                    self._done("ingest", resp, None)
                    if resp.status_code == 200:
                        with self.lock:
                            self.last_batch = max(self.last_batch, batch)
                except httpx.HTTPError as exc:
                    self._done("ingest", None, f"{type(exc).__name__}: {exc}")

    def search(self, max_requests: int = 20000, max_seconds: float = 120) -> None:
        deadline = time.monotonic() + max_seconds
        with self._client() as client:
            for n in range(max_requests):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    if n % 2:
                        resp = client.get("/api/v1/search", params={"q": "level:ERROR", "limit": 20})
                    else:
                        resp = client.get("/api/v1/count", params={"q": "user"})
                    self._done("search", resp, None)
                except httpx.HTTPError as exc:
                    self._done("search", None, f"{type(exc).__name__}: {exc}")


def _wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never became ready")


def _pid_alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


def test_bluegreen_switch_loses_no_request(tmp_path: Path) -> None:
    nginx_bin = _need_nginx()
    root = tmp_path
    blue_port, green_port, front_port = free_port(), free_port(), free_port()
    slot_sh = root / "slot.sh"
    slot_sh.write_text(SLOT_SH.format(root=root, blue_port=blue_port, green_port=green_port, python=sys.executable))
    slot_sh.chmod(0o755)
    upstream = root / "upstream.conf"
    upstream.write_text((DEPLOY / "nginx" / "upstream.conf").read_text().replace(
        "loglens-blue:8080", f"127.0.0.1:{blue_port}"))
    conf = root / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""  # as root, workers would otherwise drop to nobody
    conf.write_text(NGINX_CONF.format(user=user, root=root, port=front_port, deploy=DEPLOY))
    nginx_cmd = [nginx_bin, "-p", str(root), "-c", str(conf), "-e", str(root / "nginx-error.log")]
    subprocess.run([*nginx_cmd, "-t", "-q"], check=True, capture_output=True, timeout=30)

    blue_url, green_url = f"http://127.0.0.1:{blue_port}", f"http://127.0.0.1:{green_port}"
    front = f"http://127.0.0.1:{front_port}"
    subprocess.run([str(slot_sh), "start", "blue"], check=True, timeout=30)
    nginx = subprocess.Popen([*nginx_cmd, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    traffic = Traffic(front)
    threads = [threading.Thread(target=traffic.ingest, args=(w,), daemon=True) for w in range(2)]
    threads += [threading.Thread(target=traffic.search, daemon=True) for _ in range(2)]
    try:
        _wait_ready(blue_url)
        _wait_ready(front)
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while traffic.ok["ingest"] < 20 and time.monotonic() < deadline and not traffic.failures:
            time.sleep(0.05)
        assert traffic.ok["ingest"] >= 20, traffic.failures

        env = {
            **os.environ,
            "LOGLENS_BG_UPSTREAM": str(upstream),
            "LOGLENS_BG_BLUE_UPSTREAM": f"127.0.0.1:{blue_port}",
            "LOGLENS_BG_GREEN_UPSTREAM": f"127.0.0.1:{green_port}",
            "LOGLENS_BG_BLUE_URL": blue_url,
            "LOGLENS_BG_GREEN_URL": green_url,
            "LOGLENS_BG_PREPARE_CMD": (
                f'FROM_DATA="{root}/$FROM_SLOT/current" TO_DATA="{root}/$TO_SLOT/current" '
                f'BACKUP_ROOT="{root}/backups" LOGLENS="{sys.executable} -m loglens.cli" sh {DEPLOY}/handover.sh'),
            "LOGLENS_BG_START_CMD": f'{slot_sh} start "$SLOT"',
            "LOGLENS_BG_STOP_CMD": f'{slot_sh} stop "$SLOT"',
            "LOGLENS_BG_RELOAD_CMD": " ".join([*nginx_cmd, "-s", "reload"]),
            "LOGLENS_BG_READY_TIMEOUT": "60",
            "LOGLENS_BG_DRAIN_SECONDS": "2",
        }
        with traffic.lock:
            traffic.switching = True
        switch = subprocess.run(["bash", str(DEPLOY / "bluegreen.sh")], env=env, capture_output=True,
                                timeout=180)
        with traffic.lock:
            traffic.switching = False
        log = switch.stderr.decode()
        assert switch.returncode == 0, log
        time.sleep(1.0)  # traffic goes on against the new slot
    finally:
        traffic.stop.set()
        for t in threads:
            t.join(timeout=60)
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(timeout=20)
        except subprocess.TimeoutExpired:
            nginx.kill()
        for slot in ("blue", "green"):
            if (root / f"{slot}.pid").exists():
                subprocess.run([str(slot_sh), "stop", slot], timeout=60)

    assert traffic.failures == [], traffic.failures[:20]
    assert traffic.during_switch["ingest"] >= 10 and traffic.during_switch["search"] >= 10, traffic.during_switch
    assert "# active: green" in upstream.read_text() and f"127.0.0.1:{green_port}" in upstream.read_text()
    assert "done: green is active" in log
    # The hand-over carried blue's history into green, and the last batches were written to green.
    assert (root / "backups").is_dir() and any((root / "backups").iterdir())
    from loglens.query.planning import plan_query
    from loglens.store.base import TimeRange
    from loglens.store.embedded import EmbeddedStore

    green = EmbeddedStore(root / "green" / "current")
    try:
        assert green.count(plan_query("bgbatch0"), TimeRange()) == 20  # the first batch, written to blue
        assert green.count(plan_query(f"bgbatch{traffic.last_batch}"), TimeRange()) == 20
    finally:
        green.close()


def test_compose_file_matches_schema() -> None:
    import json

    import jsonschema
    import yaml

    schema = json.loads((Path(__file__).parent / "compose.schema.json").read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    jsonschema.validate(compose, schema)
    services = compose["services"]
    assert {"loglens-blue", "loglens-green", "nginx", "prometheus", "grafana"} <= set(services)
    # Two writers never share a data directory: each slot has its own volume.
    blue = {v.split(":")[0] for v in services["loglens-blue"]["volumes"]}
    green = {v.split(":")[0] for v in services["loglens-green"]["volumes"]}
    assert blue and green and not (blue & green)
    # Every file the compose file mounts exists in the repository (certs and secrets are the operator's).
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and not any(x in source for x in ("certs", "loglens.key", "grafana-dashboard")):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    assert "../Dockerfile" not in compose["x-loglens"]["build"]["dockerfile"]
    assert (DEPLOY / compose["x-loglens"]["build"]["context"] / compose["x-loglens"]["build"]["dockerfile"]).is_file()


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "a continuation line runs off the end"
    return out


def test_dockerfile_lint() -> None:
    import json

    instructions = _dockerfile_instructions((REPO / "Dockerfile").read_text())
    known = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
             "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
    assert all(k in known for k, _ in instructions), [k for k, _ in instructions if k not in known]
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM"):]
    froms = [a for k, a in instructions if k == "FROM"]
    assert all(a.startswith("python:3.11-slim") for a in froms), froms
    users = [a for k, a in final_stage if k == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:"), users
    health = [a for k, a in final_stage if k == "HEALTHCHECK"]
    assert len(health) == 1 and "/healthz" in health[0] and "curl" not in health[0]
    assert ("VOLUME", "/data") in final_stage and ("EXPOSE", "8080") in final_stage
    env = " ".join(a for k, a in final_stage if k == "ENV")
    assert "LOGLENS_DATA=/data" in env
    cmd = json.loads(next(a for k, a in final_stage if k == "CMD"))  # exec form: signals reach loglens
    assert cmd[:2] == ["loglens", "serve"] and "0.0.0.0" in cmd
    assert any(k == "RUN" and "pip install" in a for k, a in instructions)
    # The server accepts the flags the image passes.
    from typer.testing import CliRunner

    from loglens.cli import app

    help_text = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    for flag in (a for a in cmd[2:] if a.startswith("--")):
        assert flag in help_text, flag
    ignore = (REPO / ".dockerignore").read_text()
    assert "!loglens/" in ignore and "!pyproject.toml" in ignore


def test_systemd_unit() -> None:
    text = (DEPLOY / "loglens.service").read_text()
    sections: dict[str, dict[str, list[str]]] = {}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = {}
            continue
        key, _, value = line.partition("=")
        sections[current].setdefault(key, []).append(value)
    service = sections["Service"]
    assert service["User"] == ["loglens"] and service["Restart"] == ["on-failure"]
    assert service["ExecStart"][0].startswith("/usr/local/bin/loglens serve")
    assert service["NoNewPrivileges"] == ["yes"] and service["ProtectSystem"] == ["strict"]
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]


def test_compose_references_are_declared() -> None:
    import yaml

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
        for network in service.get("networks", []):
            assert network in compose["networks"], f"{name}: undeclared network {network}"
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: undeclared secret {secret}"
        for dep in service.get("depends_on", []):
            assert dep in compose["services"], f"{name}: depends on unknown {dep}"


def test_shipped_tls_config_passes_nginx_t(tmp_path: Path) -> None:
    """deploy/nginx/loglens.conf as the image mounts it, with a self-signed certificate, through `nginx -t`."""
    nginx_bin = _need_nginx()
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(certs / "privkey.pem"), "-out", str(certs / "fullchain.pem")],
                   check=True, capture_output=True, timeout=60)
    (tmp_path / "upstream.conf").write_text((DEPLOY / "nginx" / "upstream.conf").read_text().replace(
        "loglens-blue:8080", "127.0.0.1:9"))
    site = (DEPLOY / "nginx" / "loglens.conf").read_text()
    site = site.replace("/etc/nginx/loglens/upstream.conf", str(tmp_path / "upstream.conf"))
    site = site.replace("/etc/nginx/loglens/", f"{DEPLOY}/nginx/").replace("/etc/nginx/certs/", f"{certs}/")
    site = site.replace("listen 80;", "listen 127.0.0.1:8;").replace("listen 443 ssl;", "listen 127.0.0.1:9 ssl;")
    site = "\n".join(line for line in site.splitlines() if "[::]" not in line)
    version = subprocess.run([nginx_bin, "-v"], capture_output=True, text=True).stderr
    major_minor = tuple(int(x) for x in version.split("/")[-1].split(".")[:2])
    if major_minor < (1, 25):  # `http2 on` is 1.25.1+ (the compose image is 1.27); older: listen ... http2
        site = site.replace("http2 on;", "").replace("ssl;", "ssl http2;")
    (tmp_path / "site.conf").write_text(site)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{ include {tmp_path}/site.conf; }}\n")
    result = subprocess.run([nginx_bin, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
