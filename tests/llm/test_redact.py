from __future__ import annotations

import pytest

from loglens.analysis.redact import redact, redact_value


@pytest.mark.parametrize(("text", "secret"), [
    ("Authorization: Bearer abcdefghijklmnop123", "abcdefghijklmnop123"),
    ("using key sk-proj-abcdefghijklmnopqrstuv12", "sk-proj-abcdefghijklmnopqrstuv12"),
    ("AKIAIOSFODNN7EXAMPLE login", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P", "eyJhbGci"),
    ("login password=hunter2 ok", "hunter2"),
    ("GET /cb?code=1&token=abc123&x=1", "abc123"),
    ('{"password": "s3cret", "user": "bob"}', "s3cret"),
    ("db_password: topsecret", "topsecret"),
    ("mail bob.smith@example.com now", "bob.smith@example.com"),
    ("postgres://app:pa55w0rd@db:5432/x", "pa55w0rd"),
    ("token ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
])
def test_secrets_are_redacted(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_text_keeps_its_shape() -> None:
    assert redact("Failed password for root from 1.2.3.4 port 22 ssh2") == \
        "Failed password for root from 1.2.3.4 port 22 ssh2"
    assert redact("user=bob password=x1 ok") == "user=bob password=[REDACTED:secret] ok"


def test_ips_optional() -> None:
    assert "1.2.3.4" in redact("from 1.2.3.4 port 22")
    out = redact("from 1.2.3.4 port 22 and fe80::1:2 and 2001:db8::7", ips=True)
    assert "1.2.3.4" not in out and "2001:db8::7" not in out and "port 22" in out
    assert redact("version 1.2.3 of app", ips=True) == "version 1.2.3 of app"


def test_nested_values() -> None:
    assert redact_value({"a": ["x@y.io", 3], "b": "ok"}) == {"a": ["[REDACTED:email]", 3], "b": "ok"}
