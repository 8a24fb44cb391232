"""``/api/v1/alerts``: rules, history and silences. GET routes need a read key, the others admin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from loglens.alerts.evaluator import AlertService, RuleConflict
from loglens.alerts.rules import RuleError
from loglens.alerts.state import Silence
from loglens.query.engine import format_ts
from loglens.query.timerange import parse_duration, parse_time


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _silence(s: Silence) -> dict[str, Any]:
    return {"id": s.id, "rule": s.rule or None, "matcher": s.matcher, "until": format_ts(s.until),
            "created": format_ts(s.created), "comment": s.comment}


def alerts_router(service: Callable[[], AlertService]) -> APIRouter:
    router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

    @router.get("", summary="Alert rules with their current state")
    def list_rules() -> dict[str, Any]:
        return {"alerts": service().status()}

    @router.post("", status_code=201, summary="Add an alert rule (JSON, the keys of an [[alerts]] table)")
    def add_rule(spec: Any = Body(...)) -> Any:
        try:
            rule = service().add_rule(spec)
        except RuleError as exc:
            return _error(400, str(exc))
        except RuleConflict as exc:
            return _error(409, str(exc))
        return JSONResponse(rule.public(), status_code=201)

    @router.get("/history", summary="State changes (firing, repeat, resolved) with their deliveries, newest first")
    def history(rule: str | None = None, limit: int = 100) -> Any:
        if not 1 <= limit <= 10_000:
            return _error(400, "limit must be between 1 and 10000")
        svc = service()
        rule_id = rule
        if rule is not None:
            found = next((r for r in svc.rules() if rule in (r.id, r.name)), None)
            rule_id = found.id if found else rule
        entries = svc.db.history(rule_id, limit)
        for e in entries:
            e["time"] = format_ts(e["time_ns"])
            for d in e["deliveries"]:
                d["updated"] = format_ts(d.pop("updated_ns"))
        return {"history": entries}

    @router.get("/silences", summary="Silences (active ones unless all=true)")
    def silences(all: bool = False) -> dict[str, Any]:
        svc = service()
        return {"silences": [_silence(s) for s in svc.db.silences(None if all else svc.clock())]}

    @router.post("/silences", status_code=201,
                 summary="Silence a rule (id or name) or the rules a matcher selects, until a time")
    def add_silence(body: dict[str, Any] = Body(...)) -> Any:
        svc = service()
        rule = body.get("rule") or ""
        matcher = body.get("matcher") or {}
        if not isinstance(rule, str) or not isinstance(matcher, dict):
            return _error(400, "rule is a rule id or name; matcher an object of field: glob")
        now = svc.clock()
        try:
            if body.get("until") not in (None, ""):
                until = parse_time(body["until"], now_ns=now)
            elif body.get("for"):
                until = now + parse_duration(str(body["for"]))
            else:
                return _error(400, "until (a time: RFC 3339, epoch, now+2h) or for (a duration: 2h) is required")
        except ValueError as exc:
            return _error(400, str(exc))
        if until is None or until <= now:
            return _error(400, "until is in the past")
        try:
            silence = svc.add_silence(rule, {str(k): str(v) for k, v in matcher.items()}, until,
                                      str(body.get("comment", "")))
        except ValueError as exc:
            return _error(400, str(exc))
        return JSONResponse(_silence(silence), status_code=201)

    @router.delete("/silences/{silence_id}", summary="End a silence")
    def delete_silence(silence_id: int) -> Any:
        if not service().db.delete_silence(silence_id):
            return _error(404, f"no silence {silence_id}")
        return {"deleted": silence_id}

    @router.get("/{rule_id}", summary="One alert rule with its state")
    def get_rule(rule_id: str) -> Any:
        for item in service().status():
            if item["id"] == rule_id:
                return item
        return _error(404, f"no alert rule {rule_id}")

    @router.delete("/{rule_id}", summary="Remove an alert rule made over the API")
    def delete_rule(rule_id: str) -> Any:
        try:
            if not service().delete_rule(rule_id):
                return _error(404, f"no alert rule {rule_id}")
        except RuleConflict as exc:
            return _error(409, str(exc))
        return {"deleted": rule_id}

    return router
