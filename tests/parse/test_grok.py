"""Grok: the library patterns on handwritten lines, typed fields, records, errors, fuzzing, and
``POST /api/v1/logs?grok=`` over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglens.model import Level
from loglens.parse.grok import Grok, GrokError, compile_grok, grok_record, library, resolve
from tests.conftest import start_server, stop_server

APACHE_COMBINED = ('203.0.113.9 - alice [15/Jan/2024:10:00:00 +0100] "GET /shop/cart?id=42 HTTP/1.1" 200 5123 '
                   '"https://example.com/products" '
                   '"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"')
APACHE_COMMON = '192.168.4.20 - - [03/Feb/2024:23:59:59 -0500] "POST /login HTTP/1.0" 302 -'
NGINX_ACCESS = ('10.1.2.3 - - [15/Jan/2024:10:00:01 +0000] "POST /api/orders HTTP/2.0" 502 157 "-" '
                '"curl/8.5.0" "198.51.100.7" 0.153')
NGINX_ERROR = ('2024/01/15 10:00:02 [error] 1234#1234: *99 connect() failed (111: Connection refused) while '
               'connecting to upstream, client: 10.1.2.3, server: shop.example.com, request: "POST /api/orders '
               'HTTP/2.0", upstream: "http://127.0.0.1:9000/api/orders", host: "shop.example.com"')
NGINX_ERROR_SHORT = "2024/01/15 10:00:09 [warn] 77#77: worker process 81 exited on signal 9"
APACHE24_ERROR = ("[Mon Jan 15 10:00:03.123456 2024] [proxy_fcgi:error] [pid 4242:tid 139912] "
                  "[client 2001:db8::7:51234] AH01071: Got error 'Primary script unknown'")
APACHE22_ERROR = ("[Mon Jan 15 10:00:04 2024] [error] [client 127.0.0.1] client denied by server configuration: "
                  "/var/www/private")
ALB = ('https 2024-03-05T10:15:30.123456Z app/shop-alb/50dc6c495c0c9188 203.0.113.12:46532 10.0.1.15:8080 '
       '0.001 0.048 0.000 200 200 412 1893 "GET https://shop.example.com:443/api/cart?id=7 HTTP/1.1" '
       '"Mozilla/5.0 (X11; Linux x86_64)" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 '
       'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/shop/73e2d6bc24d8a067 '
       '"Root=1-65e6f0a2-0123456789abcdef01234567" "shop.example.com" '
       '"arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-1234-4321-abcd-0123456789ab" 0 '
       '2024-03-05T10:15:30.074000Z "forward" "-" "-" "10.0.1.15:8080" "200" "-" "-" TID_1234abcd')
ALB_NO_TARGET = ('http 2024-03-05T10:16:00.000001Z app/shop-alb/50dc6c495c0c9188 198.51.100.3:40000 - -1 -1 -1 '
                 '503 - 120 326 "GET http://shop.example.com:80/health HTTP/1.1" "kube-probe/1.29" - - '
                 '- "Root=1-65e6f0d0-aaaaaaaaaaaaaaaaaaaaaaaa" "-" "-" 0 2024-03-05T10:15:59.990000Z '
                 '"forward" "-" "-" "-" "-" "-" "-"')
SYSLOG = "Jan 15 10:00:05 web-1 sshd[4242]: Accepted publickey for deploy from 10.0.0.7 port 52344 ssh2"
SYSLOG5424 = '<165>1 2024-01-15T10:00:00.123Z web-2 billing 77 ID47 [meta user="bob"] invoice 9 sent'
LOG4J = "2024-01-15 10:00:06,123 [http-nio-8080-exec-3] ERROR com.example.shop.CartService - cart 42 not found"
LOGBACK = "2024-01-15 10:00:08.001 WARN  [main] c.e.shop.Boot - slow start"
SPRING = ("2024-01-15T10:00:07.123+01:00  INFO 4242 --- [shop] [           main] "
          "o.s.b.w.e.tomcat.TomcatWebServer         : Tomcat started on port 8080 (http)")


def check(name: str, line: str, expected: dict[str, Any]) -> dict[str, Any]:
    got = resolve(name).match(line)
    assert got is not None, f"{name} did not match {line!r}"
    for key, value in expected.items():
        assert got.get(key) == value, (key, got)
        if isinstance(value, int | float):
            assert type(got[key]) is type(value), (key, got[key])
    return got


def test_apache_combined_and_common() -> None:
    check("COMBINEDAPACHELOG", APACHE_COMBINED, {
        "client": "203.0.113.9", "user": "alice", "method": "GET", "path": "/shop/cart?id=42",
        "http_version": "1.1", "status": 200, "bytes": 5123, "referrer": "https://example.com/products",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "timestamp": "15/Jan/2024:10:00:00 +0100"})
    got = check("COMMONAPACHELOG", APACHE_COMMON, {"client": "192.168.4.20", "status": 302, "method": "POST"})
    assert "bytes" not in got and "ident" not in got  # "-" is left out
    assert resolve("COMBINEDAPACHELOG").match(APACHE_COMMON) is None


def test_nginx_access_and_error() -> None:
    check("NGINXACCESS", NGINX_ACCESS, {"client": "10.1.2.3", "status": 502, "bytes": 157, "user_agent": "curl/8.5.0",
                                        "forwarded_for": "198.51.100.7", "request_time": 0.153})
    check("NGINXERROR", NGINX_ERROR, {
        "timestamp": "2024/01/15 10:00:02", "level": "error", "pid": 1234, "tid": 1234, "connection_id": 99,
        "message": "connect() failed (111: Connection refused) while connecting to upstream",
        "client": "10.1.2.3", "server": "shop.example.com", "request": "POST /api/orders HTTP/2.0",
        "upstream": "http://127.0.0.1:9000/api/orders", "http_host": "shop.example.com"})
    check("NGINXERROR", NGINX_ERROR_SHORT,
          {"level": "warn", "pid": 77, "message": "worker process 81 exited on signal 9"})


def test_apache_error_logs() -> None:
    check("HTTPD24_ERRORLOG", APACHE24_ERROR, {
        "module": "proxy_fcgi", "level": "error", "pid": 4242, "tid": 139912, "client": "2001:db8::7",
        "client_port": 51234, "error_code": "AH01071", "message": "Got error 'Primary script unknown'"})
    check("HTTPD20_ERRORLOG", APACHE22_ERROR, {"level": "error", "client": "127.0.0.1",
                                               "message": "client denied by server configuration: /var/www/private"})
    for line in (APACHE22_ERROR, APACHE24_ERROR):
        assert resolve("HTTPD_ERRORLOG").match(line) is not None


def test_alb() -> None:
    got = check("ALBACCESS", ALB, {
        "type": "https", "elb": "app/shop-alb/50dc6c495c0c9188", "client_ip": "203.0.113.12", "client_port": 46532,
        "target_ip": "10.0.1.15", "target_port": 8080, "request_processing_time": 0.001,
        "target_processing_time": 0.048, "response_processing_time": 0.0, "elb_status_code": 200,
        "target_status_code": 200, "received_bytes": 412, "sent_bytes": 1893, "method": "GET",
        "url": "https://shop.example.com:443/api/cart?id=7", "http_version": "HTTP/1.1",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "ssl_cipher": "ECDHE-RSA-AES128-GCM-SHA256",
        "ssl_protocol": "TLSv1.2", "trace_id": "Root=1-65e6f0a2-0123456789abcdef01234567",
        "domain_name": "shop.example.com", "matched_rule_priority": "0",
        "request_creation_time": "2024-03-05T10:15:30.074000Z", "actions_executed": "forward",
        "target_port_list": "10.0.1.15:8080", "target_status_code_list": "200", "conn_trace_id": "TID_1234abcd"})
    assert got["target_group_arn"].startswith("arn:aws:elasticloadbalancing:")
    assert got["chosen_cert_arn"].startswith("arn:aws:acm:")
    got = check("ALBACCESS", ALB_NO_TARGET, {"elb_status_code": 503, "request_processing_time": -1.0})
    assert "target_ip" not in got and "target_status_code" not in got


def test_syslog_and_java() -> None:
    check("SYSLOGLINE", SYSLOG, {"timestamp": "Jan 15 10:00:05", "host": "web-1", "service": "sshd", "pid": 4242,
                                 "message": "Accepted publickey for deploy from 10.0.0.7 port 52344 ssh2"})
    check("SYSLOG5424LINE", SYSLOG5424, {"priority": 165, "host": "web-2", "service": "billing", "pid": 77,
                                         "msgid": "ID47", "message": "invoice 9 sent"})
    check("LOG4J", LOG4J, {"thread": "http-nio-8080-exec-3", "level": "ERROR", "logger": "com.example.shop.CartService",
                           "message": "cart 42 not found"})
    check("LOGBACK", LOGBACK, {"level": "WARN", "thread": "main", "logger": "c.e.shop.Boot"})
    check("SPRINGBOOT", SPRING, {"level": "INFO", "pid": 4242, "application": "shop", "thread": "main",
                                 "logger": "o.s.b.w.e.tomcat.TomcatWebServer",
                                 "message": "Tomcat started on port 8080 (http)"})
    for line in (LOG4J, LOGBACK, SPRING):
        assert resolve("JAVALOG").match(line) is not None
    trace = LOG4J + ("\njava.lang.IllegalStateException: boom"
                     "\n\tat com.example.shop.CartService.get(CartService.java:42)")
    assert resolve("LOG4J").match(trace)["message"].endswith("(CartService.java:42)")  # type: ignore[index]
    frame = Grok("%{JAVASTACKTRACEPART}").match("\tat com.example.shop.CartService.get(CartService.java:42)")
    assert frame == {"class": "com.example.shop.CartService", "method": "get", "file": "CartService.java", "line": 42}


@pytest.mark.parametrize(("name", "good", "bad"), [
    ("INT", "-42", "x"), ("NUMBER", "3.25", "abc"), ("WORD", "hello_1", "!!"), ("NOTSPACE", "a/b", " "),
    ("QUOTEDSTRING", '"say \\"hi\\""', "no quotes"), ("UUID", "123e4567-e89b-12d3-a456-426614174000", "123e4567"),
    ("IPV4", "192.168.0.254", "999.1.1.1"), ("IPV6", "2001:db8:0:0:1::7", "2001:zz8::1"), ("IPV6", "::1", "12345"),
    ("IPV6", "::ffff:10.0.0.1", "nope"), ("IP", "10.0.0.1", "localhost"), ("HOSTNAME", "api.example.com", "-"),
    ("IPORHOST", "db-1.internal", "???"), ("URIPATH", "/a/b.html", "a/b"), ("URIPARAM", "?q=1&x=%20", "q=1"),
    ("URI", "https://user@example.com:8443/p/q?x=1", "example.com/p"),
    ("HTTPDATE", "10/Oct/2000:13:55:36 -0700", "10/10/2000"),
    ("TIMESTAMP_ISO8601", "2024-01-15T10:00:00.123+01:00", "15.01.2024"),
    ("SYSLOGTIMESTAMP", "Jan  5 10:00:01", "5 Jan 10:00"), ("LOGLEVEL", "WARNING", "verbose"),
    ("EMAILADDRESS", "ops@example.com", "ops@"), ("MAC", "00:1b:44:11:3a:b7", "00:1b"),
])  # fmt: skip
def test_basic_types(name: str, good: str, bad: str) -> None:
    grok = compile_grok(f"^%{{{name}:v}}$")
    assert grok.match(good) == {"v": good}
    assert grok.match(bad) is None


def test_typed_fields_and_known_numeric_fields() -> None:
    assert Grok("%{NUMBER:n:int} %{NUMBER:f:float} %{NUMBER:s}").match("7 2.5 9") == {"n": 7, "f": 2.5, "s": "9"}
    assert Grok("took %{NUMBER:duration}ms").match("took 12.5ms") == {"duration": 12.5}
    assert Grok("%{WORD:status}").match("OK") == {"status": "OK"}  # not a number: kept as text
    assert Grok("(?<user>\\w+) logged in").match("bob logged in") == {"user": "bob"}


def test_errors() -> None:
    with pytest.raises(GrokError, match="NOPE"):
        Grok("%{NOPE:x}")
    with pytest.raises(GrokError, match="NOT_A_PATTERN"):
        resolve("NOT_A_PATTERN")
    with pytest.raises(GrokError, match="cycle: A -> B -> A"):
        Grok("%{A}", {"A": "x%{B}", "B": "y%{A}"})
    with pytest.raises(GrokError, match="unknown type"):
        Grok("%{INT:x:long}")
    with pytest.raises(GrokError, match="invalid grok pattern"):
        Grok("%{INT:x}(")
    assert "COMBINEDAPACHELOG" in library() and "ALBACCESS" in library()


def test_every_library_pattern_compiles() -> None:
    for name in library():
        assert isinstance(Grok(f"%{{{name}}}").regex.pattern, str)


def test_grok_record_maps_fields() -> None:
    rec = grok_record(LOG4J, "LOG4J", received_ns=1, service="shop", source="file")
    assert rec.level is Level.ERROR and rec.message == "cart 42 not found" and rec.line == LOG4J
    assert rec.timestamp == 1705312806123000000
    assert rec.attributes == {"thread": "http-nio-8080-exec-3", "logger": "com.example.shop.CartService"}
    rec = grok_record(SYSLOG, "SYSLOGLINE", received_ns=1)
    assert (rec.host, rec.service, rec.attributes["pid"]) == ("web-1", "sshd", 4242)
    rec = grok_record(SYSLOG, "SYSLOGLINE", received_ns=1, host="collector", service="auth")
    assert rec.host == "collector" and rec.attributes["host.reported"] == "web-1"
    assert rec.attributes["service.reported"] == "sshd"
    rec = grok_record(ALB, "ALBACCESS", received_ns=1)
    assert rec.trace_id == "Root=1-65e6f0a2-0123456789abcdef01234567" and rec.attributes["sent_bytes"] == 1893
    rec = grok_record("not an access log line", "NGINXACCESS", received_ns=5, service="web")
    assert rec.attributes["grok_failure"] is True and rec.message == "not an access log line" and rec.service == "web"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["COMBINEDAPACHELOG", "NGINXACCESS", "NGINXERROR", "HTTPD_ERRORLOG",
                                               "ALBACCESS", "SYSLOGLINE", "JAVALOG", "SYSLOG5424LINE"]))
def test_fuzz_match_never_raises(text: str, name: str) -> None:
    result = resolve(name).match(text)
    assert result is None or isinstance(result, dict)
    rec = grok_record(text, name, received_ns=1)
    assert rec.line or rec.message == "" or "grok_failure" in rec.attributes


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([APACHE_COMBINED, NGINX_ACCESS, ALB, SYSLOG, LOG4J]), min_size=1, max_size=3),
       st.text(max_size=20))
def test_fuzz_mutated_lines(parts: list[str], noise: str) -> None:
    line = noise.join(parts)
    for name in ("COMBINEDAPACHELOG", "ALBACCESS", "SYSLOGLINE", "LOG4J"):
        result = resolve(name).match(line)
        assert result is None or isinstance(result, dict)


def test_grok_over_http(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data")
    try:
        with srv.client() as c:
            body = "\n".join([NGINX_ACCESS, NGINX_ACCESS.replace(" 502 ", " 200 "), "garbage line"]) + "\n"
            r = c.post("/api/v1/logs", params={"grok": "NGINXACCESS", "service": "edge"}, content=body,
                       headers={"content-type": "text/plain"})
            assert r.status_code == 200, r.text
            assert r.json()["accepted"] == 3
            assert c.get("/api/v1/count", params={"q": "service:edge AND status>=500"}).json()["count"] == 1
            assert c.get("/api/v1/count", params={"q": "service:edge AND bytes:157"}).json()["count"] == 2
            assert c.get("/api/v1/count", params={"q": "service:edge AND grok_failure:true"}).json()["count"] == 1
            pattern = "%{WORD:verb} order %{INT:order_id:int} in %{NUMBER:ms:float}ms"
            r = c.post("/api/v1/logs", params={"grok": pattern, "service": "custom"},
                       content="placed order 17 in 3.5ms\n", headers={"content-type": "text/plain"})
            assert r.status_code == 200, r.text
            assert c.get("/api/v1/count", params={"q": "order_id:17 AND ms>3"}).json()["count"] == 1
            r = c.post("/api/v1/logs", params={"grok": "NO_SUCH_PATTERN"}, content="x\n")
            assert r.status_code == 400 and "NO_SUCH_PATTERN" in r.json()["error"]
            r = c.post("/api/v1/logs", params={"grok": "%{NOPE:x}"}, content="x\n")
            assert r.status_code == 400 and "NOPE" in r.json()["error"]
    finally:
        stop_server(srv)
