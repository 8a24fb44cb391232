"""Notification payloads (Slack, Discord, generic webhook, email) and their delivery.

Every delivery to every target runs on its own thread with bounded retries and exponential backoff,
so a failed or slow target never holds up the others nor the evaluator.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
import orjson

from loglens import __version__
from loglens.alerts.rules import Rule, Target

log = logging.getLogger("loglens.alerts")

SIGNATURE_HEADER = "X-LogLens-Signature"
_FIRING_COLOURS = {"info": 0x3498DB, "warning": 0xF1C40F, "error": 0xE67E22, "critical": 0xE74C3C}
_RESOLVED_COLOUR = 0x2ECC71


@dataclass(slots=True)
class Notification:
    """One state change of one rule, as sent to every target of the rule."""

    rule: Rule
    change: str  # firing, resolved, repeat
    at_ns: int
    value: float | None
    summary: str  # e.g. "count 42 > 10 in the last 5m"
    link: str
    window_from: str
    window_to: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return "resolved" if self.change == "resolved" else "firing"

    @property
    def title(self) -> str:
        return f"[{self.state.upper()}] {self.rule.name}"

    def text(self) -> str:
        return f"{self.title} ({self.rule.severity}): {self.summary}"

    def as_dict(self) -> dict[str, Any]:
        r = self.rule
        return {
            "version": 1, "state": self.state, "change": self.change, "time_ns": self.at_ns,
            "rule": {"id": r.id, "name": r.name, "query": r.query, "condition": r.condition.text,
                     "window": r.spec.get("window"), "severity": r.severity},
            "value": self.value, "summary": self.summary, "link": self.link,
            "window": {"from": self.window_from, "to": self.window_to}, "details": self.details,
        }


# ---------------------------------------------------------------------------------------- payloads
def slack_payload(n: Notification) -> dict[str, Any]:
    r = n.rule
    emoji = ":white_check_mark:" if n.state == "resolved" else ":rotating_light:"
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{r.severity}"},
        {"type": "mrkdwn", "text": f"*Condition*\n`{r.condition.text}`"},
        {"type": "mrkdwn", "text": f"*Value*\n{_value(n.value)}"},
        {"type": "mrkdwn", "text": f"*Window*\n{n.window_from} → {n.window_to}"},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(f"{n.state.upper()}: {r.name}", 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"{emoji} {n.summary}", 3000)}, "fields": fields},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"Query: `{r.query or '*'}`", 3000)}},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open in LogLens"}, "url": n.link}]},
    ]
    patterns = n.details.get("patterns")
    if patterns:
        text = "\n".join(f"• `{p['template']}`" for p in patterns[:10])
        blocks.insert(2, {"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"*New patterns*\n{text}", 3000)}})
    return {"text": f"{emoji} {n.text()} <{n.link}|open in LogLens>", "blocks": blocks}


def discord_payload(n: Notification) -> dict[str, Any]:
    r = n.rule
    colour = _RESOLVED_COLOUR if n.state == "resolved" else _FIRING_COLOURS.get(r.severity, 0xE74C3C)
    description = n.summary
    patterns = n.details.get("patterns")
    if patterns:
        description += "\n" + "\n".join(f"• `{p['template']}`" for p in patterns[:10])
    embed = {
        "title": _cut(n.title, 256), "description": _cut(description, 4000), "url": n.link, "color": colour,
        "timestamp": n.window_to,
        "fields": [
            {"name": "Severity", "value": r.severity, "inline": True},
            {"name": "Condition", "value": _cut(r.condition.text, 1024), "inline": True},
            {"name": "Value", "value": _value(n.value), "inline": True},
            {"name": "Query", "value": _cut(f"`{r.query or '*'}`", 1024), "inline": False},
        ],
        "footer": {"text": f"LogLens {__version__}"},
    }
    return {"content": _cut(f"{n.text()}\n{n.link}", 2000), "embeds": [embed]}


def webhook_body(n: Notification) -> bytes:
    return orjson.dumps(n.as_dict())


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact body bytes with the target's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def email_message(n: Notification, target: Target) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[LogLens] {n.title}"
    msg["From"] = str(target.options.get("from") or f"loglens@{socket.gethostname()}")
    msg["To"] = ", ".join(target.recipients())
    r = n.rule
    lines = [n.text(), "", f"Rule:      {r.name}", f"Severity:  {r.severity}", f"Query:     {r.query or '*'}",
             f"Condition: {r.condition.text}", f"Value:     {_value(n.value)}",
             f"Window:    {n.window_from} to {n.window_to}"]
    for p in (n.details.get("patterns") or [])[:20]:
        lines.append(f"New pattern: {p['template']}")
    lines += ["", f"Open in LogLens: {n.link}"]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def _value(value: float | None) -> str:
    if value is None:
        return "n/a"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------- sending
class DeliveryError(Exception):
    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


def send(n: Notification, target: Target, timeout: float) -> None:
    """One attempt. Raises :class:`DeliveryError` (``retry`` False when retrying cannot help)."""
    if target.type == "email":
        _send_email(n, target, timeout)
        return
    headers = {"Content-Type": "application/json", "User-Agent": f"LogLens/{__version__}"}
    if target.type == "slack":
        body = orjson.dumps(slack_payload(n))
    elif target.type == "discord":
        body = orjson.dumps(discord_payload(n))
    else:
        body = webhook_body(n)
        secret = target.options.get("secret")
        if secret:
            headers[SIGNATURE_HEADER] = signature(str(secret), body)
    try:
        resp = httpx.post(str(target.options["url"]), content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if resp.status_code >= 300:
        # 429 and 5xx are worth retrying; any other answer says the request itself is wrong
        raise DeliveryError(f"HTTP {resp.status_code}: {resp.text[:200]}",
                            retry=resp.status_code == 429 or resp.status_code >= 500)


def _send_email(n: Notification, target: Target, timeout: float) -> None:
    o = target.options
    try:
        with smtplib.SMTP(str(o.get("smtp_host", "localhost")), int(o.get("smtp_port", 25)),
                          timeout=float(o.get("timeout", timeout))) as smtp:
            if o.get("starttls"):
                smtp.starttls()
            if o.get("username"):
                smtp.login(str(o["username"]), str(o.get("password", "")))
            smtp.send_message(email_message(n, target))
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {exc.smtp_code}", retry=exc.smtp_code < 500) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


Reporter = Callable[[int, int, str, int, str], None]  # history id, target index, outcome, attempts, error


class Dispatcher:
    """Delivers notifications: each target of each rule has its own worker thread and queue.

    Targets never wait for one another (a slow or failing target holds up only its own later
    notifications, which keeps firing → resolved in order for it). A delivery is tried ``attempts``
    times at most, waiting ``backoff``, ``2·backoff``, ``4·backoff``... (capped at ``max_backoff``)
    in between. A worker thread ends when its queue is empty.
    """

    def __init__(self, *, attempts: int = 5, backoff: float = 1.0, max_backoff: float = 60.0, timeout: float = 10.0,
                 on_attempt: Callable[[str, str], None] | None = None,
                 sender: Callable[[Notification, Target, float], None] = send) -> None:
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.on_attempt = on_attempt
        self.sender = sender
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queues: dict[tuple[str, int], deque[tuple[Notification, Target, int, Reporter]]] = {}

    def dispatch(self, n: Notification, history_id: int, report: Reporter) -> None:
        for index, target in enumerate(n.rule.targets):
            key = (n.rule.id, index)
            with self._lock:
                queue = self._queues.get(key)
                start = queue is None
                if queue is None:
                    queue = self._queues[key] = deque()
                queue.append((n, target, history_id, report))
            if start:
                threading.Thread(target=self._work, args=(key, index), daemon=True,
                                 name=f"loglens-alert-{target.type}").start()

    def _work(self, key: tuple[str, int], index: int) -> None:
        while True:
            with self._lock:
                queue = self._queues[key]
                if not queue:
                    del self._queues[key]
                    self._idle.notify_all()
                    return
                n, target, history_id, report = queue[0]
            try:
                self._deliver(n, index, target, history_id, report)
            finally:
                with self._lock:
                    queue.popleft()

    def _deliver(self, n: Notification, index: int, target: Target, history_id: int, report: Reporter) -> None:
        error = ""
        attempt = 0
        for attempt in range(1, self.attempts + 1):
            try:
                self.sender(n, target, self.timeout)
            except DeliveryError as exc:
                error = str(exc)
                self._count(target.type, "failed")
                log.warning("alert %r: delivery to %s failed (attempt %d/%d): %s", n.rule.name,
                            target.describe(), attempt, self.attempts, error)
                if not exc.retry or attempt == self.attempts:
                    break
                if self._stop.wait(min(self.max_backoff, self.backoff * 2 ** (attempt - 1))):
                    error += " (stopped before the next attempt)"
                    break
            except Exception as exc:  # a bug in a payload builder must not kill the worker silently
                error = f"{type(exc).__name__}: {exc}"
                self._count(target.type, "failed")
                log.exception("alert %r: delivery to %s failed", n.rule.name, target.describe())
                break
            else:
                self._count(target.type, "ok")
                _safe(report, history_id, index, "ok", attempt, "")
                return
        _safe(report, history_id, index, "failed", attempt, error)

    def _count(self, target: str, outcome: str) -> None:
        if self.on_attempt is not None:
            try:
                self.on_attempt(target, outcome)
            except Exception:
                log.exception("alert delivery metric failed")

    def pending(self) -> int:
        """Notifications queued or being delivered, over all targets."""
        with self._lock:
            return sum(len(q) for q in self._queues.values())

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait until every queue is empty (tests, shutdown); True when it is."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._queues:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, grace: float = 2.0) -> None:
        """Give deliveries under way ``grace`` seconds, then stop retrying."""
        self.wait(grace)
        self._stop.set()


def _safe(report: Reporter, *args: Any) -> None:
    try:
        report(*args)
    except Exception:
        log.exception("could not record an alert delivery")
