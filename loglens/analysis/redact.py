"""Redaction of secrets and personal data from any text that leaves the process (LLM prompts).

Redacted: bearer tokens and ``Authorization`` values, ``sk-...`` style API keys, AWS access key ids
and secret keys, JWTs, ``password=``/``token=``/``secret=``/``api_key=`` style assignments (also
``: `` and JSON ``"key": "value"``), private key blocks, and e-mail addresses; IPv4/IPv6 addresses
when asked. Each is replaced by a marker such as ``[REDACTED:token]`` so the text keeps its shape.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

_KEY_NAMES = (r"pass(?:word|wd)?|pwd|secret|token|access[_-]?token|refresh[_-]?token|api[_-]?key|apikey"
              r"|client[_-]?secret|auth|authorization|private[_-]?key|session[_-]?id|cookie")

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), "[REDACTED:key]"),
    (re.compile(r"(?i)\b(bearer|basic|apikey|token)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [REDACTED:token]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[REDACTED:jwt]"),
    (re.compile(r"\b(?:sk|pk|rk)-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_]{16,}"), "[REDACTED:api_key]"),
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA)[A-Z0-9]{16}\b"), "[REDACTED:aws_key]"),
    (re.compile(r"\b(?:ghp|gho|ghs|ghu|glpat|xox[abpr])[-_][A-Za-z0-9_-]{10,}"), "[REDACTED:token]"),
    (re.compile(r"(?i)(aws_secret_access_key|secret_access_key)(\s*[=:]\s*)[\"']?[A-Za-z0-9/+=]{30,}[\"']?"),
     r"\1\2[REDACTED:secret]"),
    # JSON: "password": "hunter2"
    (re.compile(r"(?i)(\"(?:" + _KEY_NAMES + r")\"\s*:\s*)\"(?:[^\"\\]|\\.)*\""), r'\1"[REDACTED:secret]"'),
    # key=value, key: value (value up to whitespace, comma, semicolon, quote or &)
    (re.compile(r"(?i)\b((?:[\w.-]*[_.-])?(?:" + _KEY_NAMES + r"))(\s*[=:]\s*)(?!\[REDACTED)[\"']?[^\s,;&\"'}]+[\"']?"),
     r"\1\2[REDACTED:secret]"),
    (re.compile(r"(?i)\b[A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{2,}\b"), "[REDACTED:email]"),
    # URL credentials: scheme://user:pass@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^/\s@]+@"), r"\1:[REDACTED:secret]@"),
]
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.]*\d)")
_IPV6_CANDIDATE = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?(?![\w:])")


def _ipv6(m: re.Match[str]) -> str:
    try:
        ipaddress.IPv6Address(m.group(0).split("%")[0])
    except ValueError:
        return m.group(0)
    return "[REDACTED:ip]"


def redact(text: str, *, ips: bool = False) -> str:
    """``text`` with secrets and e-mail addresses (and IP addresses if ``ips``) replaced by markers."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    if ips:
        text = _IPV4.sub("[REDACTED:ip]", text)
        text = _IPV6_CANDIDATE.sub(_ipv6, text)
    return text


def redact_value(value: Any, *, ips: bool = False) -> Any:
    """Redact every string inside a JSON-like value (dicts, lists)."""
    if isinstance(value, str):
        return redact(value, ips=ips)
    if isinstance(value, dict):
        return {k: redact_value(v, ips=ips) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, ips=ips) for v in value]
    return value


def redact_all(texts: Iterable[str], *, ips: bool = False) -> list[str]:
    return [redact(t, ips=ips) for t in texts]
