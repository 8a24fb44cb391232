"""API keys: created and revoked by the CLI, checked by the server on every request.

Keys live in ``keys.db`` (SQLite, WAL) in the data directory, apart from the store's files, so
``loglens keys`` works while a server holds the store's lock. Only a SHA-256 hash of each key is
stored. A key is ``ll_`` followed by 32 random bytes (256 bits, URL-safe base64): with that much
entropy nobody can search the key space, so a fast unsalted hash is as good as a slow password
hash here (those exist to slow the guessing of *low*-entropy passwords) and keeps each request's
check to a microsecond. The hash is compared with :func:`hmac.compare_digest`.

A running server notices a create or revoke at its next request: SQLite's ``data_version`` tells
it another connection committed, and it reloads the (small) table.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: What a key may do. ``admin`` includes the other two.
SCOPES = ("ingest", "read", "admin")
KEY_PREFIX = "ll_"
FILE_NAME = "keys.db"
#: ``last_used`` is written to disk at most this often per key (it is kept exact in memory).
LAST_USED_WRITE_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    last_used REAL,
    revoked REAL
);
"""


@dataclass(slots=True)
class ApiKey:
    id: str
    name: str
    scope: str
    hash: str
    created: float
    last_used: float | None = None
    revoked: float | None = None

    def allows(self, scope: str) -> bool:
        return self.scope == "admin" or self.scope == scope


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore:
    """The ``api_keys`` table of one data directory."""

    def __init__(self, data_dir: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(data_dir) / FILE_NAME
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None
        self._keys: list[ApiKey] = []
        self._written: dict[str, float] = {}
        if create or self.path.exists():
            self._open()

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
            self._conn = conn
        return self._conn

    # ------------------------------------------------------------------ management (the CLI)
    def create(self, scope: str, name: str = "") -> tuple[ApiKey, str]:
        """A new key: its record and the key itself, which is shown once and never stored."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
        key = new_key()
        record = ApiKey(id=secrets.token_hex(4), name=name, scope=scope, hash=hash_key(key), created=time.time())
        with self._lock:
            self._open().execute(
                "INSERT INTO api_keys (id, name, scope, hash, created) VALUES (?, ?, ?, ?, ?)",
                (record.id, record.name, record.scope, record.hash, record.created),
            )
        return record, key

    def all(self, *, include_revoked: bool = False) -> list[ApiKey]:
        with self._lock:
            if self._conn is None and not self.path.exists():
                return []
            return [k for k in self._load() if include_revoked or k.revoked is None]

    def revoke(self, key_or_id: str) -> ApiKey | None:
        """Revoke by id or by the key itself; the revoked record, or None when nothing matched."""
        digest = hash_key(key_or_id)
        with self._lock:
            if self._conn is None and not self.path.exists():
                return None
            conn = self._open()
            row = conn.execute("SELECT id FROM api_keys WHERE (id = ? OR hash = ?) AND revoked IS NULL",
                               (key_or_id, digest)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE api_keys SET revoked = ? WHERE id = ?", (time.time(), row[0]))
            return next(k for k in self._load() if k.id == row[0])

    def _load(self) -> list[ApiKey]:
        rows = self._open().execute(
            "SELECT id, name, scope, hash, created, last_used, revoked FROM api_keys ORDER BY created"
        ).fetchall()
        return [ApiKey(*row) for row in rows]

    # ------------------------------------------------------------------ checking (the server)
    def active(self) -> list[ApiKey]:
        """The keys not revoked, reloaded whenever another process changed the table."""
        with self._lock:
            if self._conn is None:
                if not self.path.exists():
                    return []
                self._open()
            assert self._conn is not None
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                last_used = {k.id: k.last_used for k in self._keys}
                self._keys = [k for k in self._load() if k.revoked is None]
                for k in self._keys:  # keep what this process saw but has not written yet
                    seen = last_used.get(k.id)
                    if seen and (k.last_used is None or seen > k.last_used):
                        k.last_used = seen
                self._version = version
            return self._keys

    def verify(self, presented: str) -> ApiKey | None:
        """The active key equal to ``presented``, compared in constant time over every key."""
        digest = hash_key(presented)
        found: ApiKey | None = None
        for key in self.active():
            # no early exit: the time taken does not depend on which key (if any) matched
            if hmac.compare_digest(digest, key.hash):
                found = key
        if found is not None:
            self._touch(found)
        return found

    def _touch(self, key: ApiKey) -> None:
        now = time.time()
        key.last_used = now
        if now - self._written.get(key.id, 0.0) < LAST_USED_WRITE_SECONDS:
            return
        self._written[key.id] = now
        with self._lock, contextlib.suppress(sqlite3.Error):  # a busy table costs a timestamp, no more
            assert self._conn is not None
            self._conn.execute("PRAGMA busy_timeout = 100")  # never hold up a request for long
            try:
                self._conn.execute("UPDATE api_keys SET last_used = ? WHERE id = ?", (now, key.id))
            finally:
                self._conn.execute("PRAGMA busy_timeout = 10000")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
