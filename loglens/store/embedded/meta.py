"""The catalogue beside the time shards: keyword dictionaries, templates, attribute names."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson

from loglens.model import Template

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dict (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    aliases TEXT
);
CREATE TABLE IF NOT EXISTS attribute_names (name TEXT PRIMARY KEY) WITHOUT ROWID;
-- a template folded into a more general one: its records are shown under the general id
CREATE TABLE IF NOT EXISTS template_merges (old INTEGER PRIMARY KEY, new INTEGER NOT NULL);
"""

KEYWORD_KINDS = ("service", "host", "source")
#: Attribute names we remember for field checking and completion; beyond this we stop learning.
MAX_ATTRIBUTE_NAMES = 10_000


def connect(path: Path, *, synchronous: str = "NORMAL") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


class Catalog:
    """Dictionaries value <-> small int per keyword field, the template table and attribute names.

    One process writes (it holds the data directory's lock); readers call ``refresh`` when they
    meet an id they do not know yet.
    """

    def __init__(self, path: Path, *, writable: bool, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.writable = writable
        self._lock = threading.Lock()
        self._conn = connect(path, synchronous=synchronous)
        if writable:
            self._conn.executescript(_SCHEMA)
        self.ids: dict[str, dict[str, int]] = {k: {"": 0} for k in KEYWORD_KINDS}
        self.names: dict[str, list[str]] = {k: [""] for k in KEYWORD_KINDS}
        self.attribute_names: set[str] = set()
        self.merges: dict[int, int] = {}
        self.refresh()

    def refresh(self) -> None:
        with self._lock:
            try:
                rows = self._conn.execute("SELECT kind, value, id FROM dict").fetchall()
                attrs = self._conn.execute("SELECT name FROM attribute_names").fetchall()
                merges = self._conn.execute("SELECT old, new FROM template_merges").fetchall()
            except sqlite3.OperationalError:  # a reader before the first writer created the schema
                return
            for kind, value, ident in rows:
                self.ids[kind][value] = ident
                names = self.names[kind]
                while len(names) <= ident:
                    names.append("")
                names[ident] = value
            self.attribute_names.update(name for (name,) in attrs)
            self.merges.update(merges)

    def name(self, kind: str, ident: int) -> str:
        names = self.names[kind]
        if ident < len(names):
            return names[ident]
        if ident >= len(names):
            self.refresh()
            names = self.names[kind]
            if ident >= len(names):
                return f"#{ident}"
        return names[ident]

    def intern(self, kind: str, value: str) -> int:
        """The id of ``value``, creating it (committed before any record refers to it)."""
        ident = self.ids[kind].get(value)
        if ident is not None:
            return ident
        with self._lock:
            ident = len(self.names[kind])
            self._conn.execute("INSERT INTO dict (kind, value, id) VALUES (?, ?, ?)", (kind, value, ident))
            self.names[kind].append(value)
            self.ids[kind][value] = ident
        return ident

    def lookup(self, kind: str, value: str, match: str) -> list[int]:
        """Ids of the values equal to (or, for ``prefix``, starting with) ``value``, case-insensitively."""
        self.refresh()
        wanted = value.lower()
        if match == "prefix":
            return [i for v, i in self.ids[kind].items() if v.lower().startswith(wanted)]
        return [i for v, i in self.ids[kind].items() if v.lower() == wanted]

    def learn_attributes(self, names: set[str]) -> None:
        new = names - self.attribute_names
        if not new or len(self.attribute_names) >= MAX_ATTRIBUTE_NAMES:
            return
        with self._lock:
            self._conn.executemany(
                "INSERT OR IGNORE INTO attribute_names (name) VALUES (?)", [(n,) for n in new]
            )
            self.attribute_names |= new

    def save_templates(self, templates: list[Template]) -> None:
        if not templates:
            return
        with self._lock:
            self._conn.executemany(
                "INSERT INTO templates (id, text, count, first_seen, last_seen, aliases)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET text = excluded.text,"
                " count = excluded.count, first_seen = excluded.first_seen,"
                " last_seen = excluded.last_seen, aliases = excluded.aliases",
                [
                    (t.id, t.text, t.count, t.first_seen, t.last_seen, orjson.dumps(t.aliases).decode())
                    for t in templates
                ],
            )

    def save_merges(self, merges: list[tuple[int, int]]) -> None:
        if not merges:
            return
        with self._lock:
            self._conn.executemany("INSERT OR REPLACE INTO template_merges (old, new) VALUES (?, ?)", merges)
            self.merges.update(merges)

    def resolve(self, template_id: int) -> int:
        """The live template holding ``template_id``'s records (itself unless it was merged)."""
        merges = self.merges
        seen = 0
        while template_id in merges and seen < 64:  # a chain of merges; the bound guards a cycle
            template_id = merges[template_id]
            seen += 1
        return template_id

    def aliases_of(self, template_id: int) -> list[int]:
        """``template_id`` and every id merged into it."""
        return [template_id, *(old for old in self.merges if self.resolve(old) == template_id)]

    def load_templates(self) -> list[Template]:
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT id, text, count, first_seen, last_seen, aliases FROM templates"
                ).fetchall()
            except sqlite3.OperationalError:
                return []
        return [
            Template(id=r[0], text=r[1], count=r[2], first_seen=r[3], last_seen=r[4],
                     aliases=orjson.loads(r[5]) if r[5] else [])
            for r in rows
        ]

    def begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()
