"""Alert state in ``<data>/alerts.db``: rules made over the API, each rule's current state, the
history of state changes with their deliveries, and silences. Apart from the store's files."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rules (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rule_state (
    rule_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    since INTEGER NOT NULL,
    last_eval INTEGER NOT NULL,
    last_value REAL,
    notified INTEGER NOT NULL DEFAULT 0,  -- a firing notification went out for this episode
    last_notified INTEGER NOT NULL DEFAULT 0,
    seen TEXT NOT NULL DEFAULT '[]',  -- new pattern: template ids already announced
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id TEXT NOT NULL,
    rule_name TEXT NOT NULL,
    change TEXT NOT NULL,   -- firing, resolved, repeat
    time INTEGER NOT NULL,
    value REAL,
    details TEXT NOT NULL,
    silenced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS history_rule ON history (rule_id, id);
CREATE TABLE IF NOT EXISTS deliveries (
    history_id INTEGER NOT NULL,
    target_index INTEGER NOT NULL,
    target TEXT NOT NULL,   -- kind:host, never a secret
    outcome TEXT NOT NULL,  -- pending, ok, failed
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    updated INTEGER NOT NULL,
    PRIMARY KEY (history_id, target_index)
);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL DEFAULT '',
    matcher TEXT NOT NULL DEFAULT '{}',
    until INTEGER NOT NULL,
    created INTEGER NOT NULL,
    comment TEXT NOT NULL DEFAULT ''
);
"""

#: History entries kept (the oldest are removed beyond this).
MAX_HISTORY = 100_000


@dataclass(slots=True)
class RuleState:
    rule_id: str
    state: str = "ok"  # ok, firing, unavailable, error
    since: int = 0
    last_eval: int = 0
    last_value: float | None = None
    notified: bool = False
    last_notified: int = 0
    seen: list[int] = field(default_factory=list)
    last_error: str = ""


@dataclass(slots=True)
class Silence:
    id: int
    rule: str
    matcher: dict[str, str]
    until: int
    created: int
    comment: str


class AlertDB:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        path.chmod(0o600)  # webhook URLs and secrets of API rules live here

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        with self._lock:
            cur = self._conn.execute(sql, params)
            return int(cur.lastrowid or 0) if sql.lstrip().upper().startswith("INSERT") else cur.rowcount

    # ------------------------------------------------------------------ API rules
    def rules(self) -> list[tuple[str, dict[str, Any]]]:
        return [(r[0], orjson.loads(r[1])) for r in self._all("SELECT id, spec FROM rules ORDER BY created, id")]

    def add_rule(self, rule_id: str, spec: dict[str, Any]) -> None:
        self._run("INSERT INTO rules (id, spec, created) VALUES (?, ?, ?)",
                  (rule_id, orjson.dumps(spec).decode(), time.time_ns()))

    def delete_rule(self, rule_id: str) -> bool:
        with self._lock:
            n = self._conn.execute("DELETE FROM rules WHERE id = ?", (rule_id,)).rowcount
            self._conn.execute("DELETE FROM rule_state WHERE rule_id = ?", (rule_id,))
        return n > 0

    # ------------------------------------------------------------------ state
    def states(self) -> dict[str, RuleState]:
        rows = self._all("SELECT rule_id, state, since, last_eval, last_value, notified, last_notified, seen,"
                         " last_error FROM rule_state")
        return {r[0]: RuleState(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], orjson.loads(r[7]), r[8])
                for r in rows}

    def save_state(self, s: RuleState) -> None:
        self._run("INSERT OR REPLACE INTO rule_state (rule_id, state, since, last_eval, last_value, notified,"
                  " last_notified, seen, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (s.rule_id, s.state, s.since, s.last_eval, s.last_value, int(s.notified), s.last_notified,
                   orjson.dumps(s.seen).decode(), s.last_error))

    # ------------------------------------------------------------------ history
    def add_history(self, rule_id: str, rule_name: str, change: str, at: int, value: float | None,
                    details: dict[str, Any], silenced: bool, targets: list[str]) -> int:
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO history (rule_id, rule_name, change, time, value, details, silenced)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (rule_id, rule_name, change, at, value, orjson.dumps(details).decode(), int(silenced)))
            hid = int(cur.lastrowid or 0)
            now = time.time_ns()
            self._conn.executemany(
                "INSERT INTO deliveries (history_id, target_index, target, outcome, updated) VALUES (?, ?, ?, ?, ?)",
                [(hid, i, t, "pending", now) for i, t in enumerate(targets)])
            if hid % 1000 == 0:  # keep the newest MAX_HISTORY entries
                self._conn.execute("DELETE FROM history WHERE id <= ?", (hid - MAX_HISTORY,))
                self._conn.execute("DELETE FROM deliveries WHERE history_id <= ?", (hid - MAX_HISTORY,))
        return hid

    def update_delivery(self, history_id: int, index: int, outcome: str, attempts: int, error: str) -> None:
        self._run("UPDATE deliveries SET outcome = ?, attempts = ?, error = ?, updated = ?"
                  " WHERE history_id = ? AND target_index = ?",
                  (outcome, attempts, error[:500], time.time_ns(), history_id, index))

    def history(self, rule_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, params = ("WHERE rule_id = ?", (rule_id,)) if rule_id else ("", ())
        rows = self._all(f"SELECT id, rule_id, rule_name, change, time, value, details, silenced FROM history "
                         f"{where} ORDER BY id DESC LIMIT ?", (*params, limit))
        if not rows:
            return []
        ids = [r[0] for r in rows]
        marks = ",".join("?" * len(ids))
        deliveries: dict[int, list[dict[str, Any]]] = {}
        for d in self._all(f"SELECT history_id, target_index, target, outcome, attempts, error, updated"
                           f" FROM deliveries WHERE history_id IN ({marks}) ORDER BY history_id, target_index",
                           tuple(ids)):
            deliveries.setdefault(d[0], []).append(
                {"target": d[2], "index": d[1], "outcome": d[3], "attempts": d[4], "error": d[5] or None,
                 "updated_ns": d[6]})
        return [{"id": r[0], "rule_id": r[1], "rule": r[2], "change": r[3], "time_ns": r[4], "value": r[5],
                 "details": orjson.loads(r[6]), "silenced": bool(r[7]), "deliveries": deliveries.get(r[0], [])}
                for r in rows]

    # ------------------------------------------------------------------ silences
    def add_silence(self, rule: str, matcher: dict[str, str], until: int, comment: str) -> int:
        return self._run("INSERT INTO silences (rule, matcher, until, created, comment) VALUES (?, ?, ?, ?, ?)",
                         (rule, orjson.dumps(matcher).decode(), until, time.time_ns(), comment))

    def silences(self, active_at: int | None = None) -> list[Silence]:
        sql = "SELECT id, rule, matcher, until, created, comment FROM silences"
        params: tuple[Any, ...] = ()
        if active_at is not None:
            sql += " WHERE until > ?"
            params = (active_at,)
        return [Silence(r[0], r[1], orjson.loads(r[2]), r[3], r[4], r[5]) for r in self._all(sql + " ORDER BY id",
                                                                                             params)]

    def delete_silence(self, silence_id: int) -> bool:
        return self._run("DELETE FROM silences WHERE id = ?", (silence_id,)) > 0
