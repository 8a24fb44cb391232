"""Online backup and restore of an embedded data directory.

A backup is a directory::

    DEST/
      manifest.json     format, LogLens version, created time, and per file: size, SHA-256, records
      meta.db
      shards/NNNNNNNN.db   one per day shard
      keys.db           API key hashes, when the directory has them

Each file is written with SQLite's online backup API from a connection that holds a read
transaction, so it is exactly one committed state of its source: ingest goes on in another process
(a running server holds the writer lock; a backup only reads) and nothing half-written is copied.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loglens import __version__

MANIFEST = "manifest.json"
FORMAT = "loglens-backup"
FORMAT_VERSION = 1
_SHARD_NAME = re.compile(r"^\d{8}\.db$")
#: Other SQLite files of the data directory, copied when present: API key hashes (loglens/keys.py).
EXTRA_FILES = ("keys.db", "alerts.db")

#: Called once per file done: (relative path, bytes written).
Progress = Callable[[str, int], None]


class BackupError(RuntimeError):
    """A backup could not be taken, or a restore was refused; the message says why."""


@dataclass(slots=True)
class PlannedFile:
    name: str  # relative to the data directory, with forward slashes
    source: Path
    size: int  # of the source file and its write-ahead log, for progress


def plan_backup(data_dir: Path) -> list[PlannedFile]:
    """Files to copy, in the order their snapshots are taken: shards oldest first, meta.db last."""
    if not (data_dir / "meta.db").is_file():
        raise BackupError(f"no LogLens data in {data_dir} (no meta.db)")
    shards_dir = data_dir / "shards"
    names = sorted(n for n in os.listdir(shards_dir) if _SHARD_NAME.match(n)) if shards_dir.is_dir() else []
    files = [PlannedFile(f"shards/{n}", shards_dir / n, 0) for n in names]
    files.extend(PlannedFile(n, data_dir / n, 0) for n in EXTRA_FILES if (data_dir / n).is_file())
    files.append(PlannedFile("meta.db", data_dir / "meta.db", 0))
    for f in files:
        f.size = sum(_size(Path(str(f.source) + suffix)) for suffix in ("", "-wal"))
    return files


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _open_snapshot(path: Path) -> sqlite3.Connection | None:
    """A connection holding a read transaction on ``path``: a fixed committed state of the file.

    ``mode=rw`` never creates a file: a shard that retention removed meanwhile is skipped (None).
    """
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=30)
    except sqlite3.OperationalError:
        if not path.exists():
            return None
        raise
    conn.execute("PRAGMA query_only=1")
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts at the first read
    return conn


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def backup(data_dir: str | os.PathLike[str], dest: str | os.PathLike[str], *,
           on_file: Progress | None = None, files: list[PlannedFile] | None = None) -> dict[str, Any]:
    """Copy ``data_dir`` into the new directory ``dest`` while ingest goes on; returns the manifest.

    Consistency across files. The writer commits a batch's dictionary entries and templates to
    ``meta.db`` first and its records to the day shards after, so a record never refers to an id that
    is not yet committed. The backup keeps that invariant by taking its snapshots in the same
    order: it first opens a read transaction on every shard (back to back, before copying anything),
    then on ``meta.db``, and copies ``meta.db`` last. Every record in a shard snapshot was committed
    before that snapshot began, and so were its dictionary ids and template, which are therefore in
    the later ``meta.db`` snapshot. (``meta.db`` may hold a few entries no copied record uses yet:
    harmless, as after a crash.) Shards are independent per UTC day and all their snapshots start
    within moments of each other; a batch whose records span two days is committed day by day, so a
    backup taken at the instant between those commits holds the first day's part only: the same
    state a crash at that instant leaves, and no record is ever partial.

    The copy is made under ``dest``'s name with ``.partial`` appended and renamed when complete, so
    an interrupted backup never looks like a finished one.
    """
    src = Path(data_dir)
    final = Path(dest)
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise BackupError(f"{final} already exists and is not empty: choose a new directory")
    work = final.with_name(final.name + ".partial")
    if work.exists():
        shutil.rmtree(work)
    (work / "shards").mkdir(parents=True)
    plan = files if files is not None else plan_backup(src)
    started = time.time()
    snapshots: list[tuple[PlannedFile, sqlite3.Connection]] = []
    try:
        for f in plan:  # shards first, meta.db last: see above
            conn = _open_snapshot(f.source)
            if conn is None:
                if f.name == "meta.db":
                    raise BackupError(f"{f.source} disappeared during the backup")
                continue
            snapshots.append((f, conn))
        entries: list[dict[str, Any]] = []
        for f, conn in snapshots:
            target = work / f.name
            _copy(conn, target)
            conn.close()
            records = _record_count(target) if f.name.startswith("shards/") else None
            size = target.stat().st_size
            entries.append({"path": f.name, "bytes": size, "sha256": sha256_file(target), "records": records})
            if on_file is not None:
                on_file(f.name, size)
    except BaseException:
        for _, conn in snapshots:
            conn.close()
        shutil.rmtree(work, ignore_errors=True)
        raise
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "loglens_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "created_unix": started,
        "finished_unix": time.time(),
        "records": sum(e["records"] or 0 for e in entries),
        "files": entries,
    }
    (work / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    if final.exists():
        final.rmdir()  # empty, checked above
    os.replace(work, final)
    return manifest


def _copy(source: sqlite3.Connection, target: Path) -> None:
    """One backup step for the whole file (pages=-1) inside the source's read transaction; the
    copy is switched to a rollback journal so it is one self-contained file."""
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        source.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()


def _record_count(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------- restore
def read_manifest(src: Path) -> dict[str, Any]:
    path = src / MANIFEST
    if not path.is_file():
        raise BackupError(f"{src} is not a LogLens backup (no {MANIFEST})")
    try:
        manifest: dict[str, Any] = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise BackupError(f"{path} is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), list):
        raise BackupError(f"{path} is not a LogLens backup manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise BackupError(f"backup format {manifest['format_version']} is newer than this LogLens reads "
                          f"({FORMAT_VERSION}): upgrade LogLens")
    return manifest


def _safe_entry(name: Any) -> str:
    if not isinstance(name, str) or not (name == "meta.db" or name in EXTRA_FILES or (
            name.startswith("shards/") and _SHARD_NAME.match(name[len("shards/"):]))):
        raise BackupError(f"unexpected file in the manifest: {name!r}")
    return name


def verify(src: str | os.PathLike[str], *, on_file: Progress | None = None) -> dict[str, Any]:
    """Check every file of the backup against the manifest's size and SHA-256; returns the manifest."""
    root = Path(src)
    manifest = read_manifest(root)
    names = set()
    for entry in manifest["files"]:
        name = _safe_entry(entry.get("path"))
        names.add(name)
        path = root / name
        if not path.is_file():
            raise BackupError(f"backup is incomplete: {name} is missing")
        if path.stat().st_size != entry.get("bytes") or sha256_file(path) != entry.get("sha256"):
            raise BackupError(f"backup is corrupt: {name} does not match its SHA-256 in the manifest")
        if on_file is not None:
            on_file(name, path.stat().st_size)
    if "meta.db" not in names:
        raise BackupError("backup is incomplete: the manifest lists no meta.db")
    return manifest


def integrity_check(path: Path) -> str:
    """SQLite's ``PRAGMA integrity_check``: ``ok`` or the first problems found."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("PRAGMA integrity_check(10)").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        conn.close()
    return "; ".join(str(r[0]) for r in rows)


@contextlib.contextmanager
def _held_empty(data_dir: Path) -> Iterator[None]:
    """Create (or accept an empty) data directory and hold its writer lock while restoring, so no
    server starts on it half-restored."""
    if data_dir.exists():
        if not data_dir.is_dir():
            raise BackupError(f"{data_dir} exists and is not a directory")
        if any(data_dir.iterdir()):
            raise BackupError(f"{data_dir} is not empty: restore only into an empty or new data directory")
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "LOCK", "a+") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"{data_dir} is in use by another LogLens process") from None
        yield


def restore(src: str | os.PathLike[str], data_dir: str | os.PathLike[str], *,
            on_verify: Progress | None = None, on_file: Progress | None = None) -> dict[str, Any]:
    """Restore the backup ``src`` into the empty (or new) ``data_dir``: checksums first, then a copy,
    then ``PRAGMA integrity_check`` on every restored file. On any failure the restored files are
    removed again and the directory is left empty."""
    root = Path(src)
    target = Path(data_dir)
    if target.exists() and target.is_dir() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: restore only into an empty or new data directory")
    manifest = verify(root, on_file=on_verify)
    with _held_empty(target):
        try:
            (target / "shards").mkdir()
            for entry in manifest["files"]:
                name = entry["path"]
                tmp = target / (name + ".restoring")
                shutil.copyfile(root / name, tmp)
                result = integrity_check(tmp)
                if result != "ok":
                    raise BackupError(f"{name} fails SQLite's integrity check: {result}")
                os.replace(tmp, target / name)
                if on_file is not None:
                    on_file(name, entry["bytes"])
        except BaseException:
            for child in list(target.iterdir()):  # LOCK too: the directory is left as empty as it came
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            raise
    return manifest
