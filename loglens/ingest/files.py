"""Tailed files: the ``[[sources]]`` of the TOML file given to ``loglens serve --config``.

Filebeat's useful semantics, on one polling thread (every 0.25 s; no inotify needed):

- ``paths`` are globs, re-scanned every ``scan_frequency`` seconds for new files; ``exclude_files``
  are regexes on the path. A file is known by its device and inode, so a rename does not make it
  new.
- ``start_at`` (``"beginning"`` or ``"end"``) applies to files found at start-up that the registry
  does not know; files that appear later are always read from their beginning (a file created by
  a rotation must not lose its first lines).
- Lines are joined into records by ``multiline = {pattern, negate, match}`` (Filebeat rules), or by
  the default :class:`~loglens.parse.MultilineJoiner` (stack traces). ``include_lines`` /
  ``exclude_lines`` (regex lists) then filter whole records. ``grok`` parses records with a grok
  pattern (see :mod:`loglens.parse.grok`). Each record carries ``log.file.path``, ``log.offset``
  (byte offset of its first line) and ``log.file.inode``.
- Rotation by rename: the old file is read by its open descriptor to its end, then closed after
  ``close_inactive`` seconds without new data; the new file at the path is picked up by the next
  scan. Copytruncate: a file whose size drops below what was read restarts at 0. A deleted file is
  read to its end, then let go; its registry entry is dropped ``clean_removed`` seconds later.
- ``.gz`` files are read once, entirely, and never tailed.
- Offsets are kept in ``<data>/files-registry.json`` (written atomically: temporary file and
  rename), per device and inode, and advance only once the pipeline has committed the records up
  to them. Before a batch is submitted its end is written as ``inflight``; after a crash (kill -9)
  between the store's commit and the registry's update, the records of that window are looked up
  in the store (``log.file.inode`` and ``log.offset``) and not sent again: a restart neither
  loses nor duplicates lines.
- A partial last line (no newline yet) waits for its end; a pending multi-line record is sent after
  ``multiline.timeout`` seconds without new lines. Lines longer than ``max_line_bytes`` (1 MiB) are
  cut (``stats["truncated_lines"]``). Reading is in chunks, and ``submit(block=True)`` makes the
  tailer wait when the write queue is full.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import json
import logging
import os
import re
import threading
import time
import tomllib
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from loglens.model import LogRecord
from loglens.parse import MultilineJoiner, parse_line

if TYPE_CHECKING:
    from loglens.config import Settings
    from loglens.parse.grok import Grok
    from loglens.pipeline import Pipeline

log = logging.getLogger(__name__)

SOURCE = "file"
REGISTRY_NAME = "files-registry.json"
POLL_SECONDS = 0.25
CHUNK = 256 << 10
#: Bytes read from one file per loop turn before the others get theirs.
TURN_BUDGET = 4 << 20
#: Records per submission.
MAX_BATCH = 5000

SOURCE_KEYS = frozenset((
    "paths", "exclude_files", "service", "host", "include_lines", "exclude_lines", "multiline", "grok",
    "start_at", "scan_frequency", "close_inactive", "clean_removed", "max_line_bytes", "enabled",
))  # fmt: skip
MULTILINE_KEYS = frozenset(("pattern", "negate", "match", "max_lines", "timeout"))
TOP_KEYS = frozenset(("sources", "grok_patterns", "alerts"))  # [[alerts]]: loglens/alerts/rules.py


class ConfigError(ValueError):
    """The configuration file is not valid; the message names the file, the source and the key."""


# ------------------------------------------------------------------------------------ configuration
@dataclass(slots=True)
class Multiline:
    pattern: re.Pattern[str]
    negate: bool = False
    match: str = "after"
    max_lines: int = 500
    timeout: float = 5.0


@dataclass(slots=True)
class SourceConfig:
    name: str
    paths: list[str]
    exclude_files: list[re.Pattern[str]] = field(default_factory=list)
    service: str = ""
    host: str = ""
    include_lines: list[re.Pattern[str]] = field(default_factory=list)
    exclude_lines: list[re.Pattern[str]] = field(default_factory=list)
    multiline: Multiline | None = None
    grok: Grok | None = None
    start_at: str = "beginning"
    scan_frequency: float = 2.0
    close_inactive: float = 5.0
    clean_removed: float = 60.0
    max_line_bytes: int = 1 << 20
    #: Timeout for a pending default-joiner record
    flush_timeout: float = 2.0


@dataclass(slots=True)
class FilesConfig:
    path: str
    sources: list[SourceConfig]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?")


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected seconds (a number or a string such as '5s'), got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(f"{where}: must not be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.fullmatch(value.strip())
        if m:
            n = float(m.group(1))
            return n * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2) or "s"]
    raise ConfigError(f"{where}: expected seconds (a number or a string such as '5s'), got {value!r}")


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{where}: expected a string or a list of strings, got {value!r}")


def _regexes(value: Any, where: str) -> list[re.Pattern[str]]:
    out = []
    for i, text in enumerate(_strings(value, where)):
        try:
            out.append(re.compile(text))
        except re.error as exc:
            raise ConfigError(f"{where}[{i}]: invalid regex {text!r}: {exc}") from None
    return out


def _source(index: int, raw: Any, file: str, patterns: dict[str, str]) -> SourceConfig:
    label = f"[[sources]] #{index}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: {label}: expected a table")
    if isinstance(raw.get("paths"), list) and raw["paths"] and isinstance(raw["paths"][0], str):
        label += f" ({raw['paths'][0]})"
    where = f"{file}: {label}"
    unknown = sorted(set(raw) - SOURCE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(SOURCE_KEYS))})")
    if "paths" not in raw:
        raise ConfigError(f"{where}: key 'paths' is required (a list of globs)")
    paths = _strings(raw["paths"], f"{where}: key 'paths'")
    if not paths:
        raise ConfigError(f"{where}: key 'paths': give at least one glob")
    src = SourceConfig(name=label, paths=[os.path.expanduser(p) for p in paths])
    if "exclude_files" in raw:
        src.exclude_files = _regexes(raw["exclude_files"], f"{where}: key 'exclude_files'")
    for key in ("service", "host"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise ConfigError(f"{where}: key {key!r}: expected a string, got {raw[key]!r}")
            setattr(src, key, raw[key])
    if "include_lines" in raw:
        src.include_lines = _regexes(raw["include_lines"], f"{where}: key 'include_lines'")
    if "exclude_lines" in raw:
        src.exclude_lines = _regexes(raw["exclude_lines"], f"{where}: key 'exclude_lines'")
    if "multiline" in raw:
        src.multiline = _multiline(raw["multiline"], f"{where}: key 'multiline'")
    if "grok" in raw:
        from loglens.parse.grok import Grok, GrokError, library

        text = raw["grok"]
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where}: key 'grok': expected a pattern name or a pattern, got {text!r}")
        name = text.strip()
        try:
            if re.fullmatch(r"[A-Z0-9_]+", name):
                if name not in library() and name not in patterns:
                    raise GrokError(f"unknown grok pattern {name!r}")
                src.grok = Grok(f"^%{{{name}}}", patterns)
            else:
                src.grok = Grok(text, patterns)
        except GrokError as exc:
            raise ConfigError(f"{where}: key 'grok': {exc}") from None
    if "start_at" in raw:
        if raw["start_at"] not in ("beginning", "end"):
            raise ConfigError(f"{where}: key 'start_at': expected \"beginning\" or \"end\", got {raw['start_at']!r}")
        src.start_at = raw["start_at"]
    for key in ("scan_frequency", "close_inactive", "clean_removed"):
        if key in raw:
            setattr(src, key, _seconds(raw[key], f"{where}: key {key!r}"))
    src.scan_frequency = max(src.scan_frequency, 0.1)
    if "max_line_bytes" in raw:
        v = raw["max_line_bytes"]
        if not isinstance(v, int) or isinstance(v, bool) or v < 16:
            raise ConfigError(f"{where}: key 'max_line_bytes': expected an integer of at least 16, got {v!r}")
        src.max_line_bytes = v
    if "enabled" in raw and not isinstance(raw["enabled"], bool):
        raise ConfigError(f"{where}: key 'enabled': expected true or false")
    return src


def _multiline(raw: Any, where: str) -> Multiline:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table such as {{ pattern = '^\\d{{4}}-', negate = true, "
                          f"match = \"after\" }}")
    unknown = sorted(set(raw) - MULTILINE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(MULTILINE_KEYS))})")
    if "pattern" not in raw:
        raise ConfigError(f"{where}: key 'pattern' is required")
    pattern = _regexes(raw["pattern"], f"{where}.pattern")
    if len(pattern) != 1:
        raise ConfigError(f"{where}.pattern: expected one regex")
    ml = Multiline(pattern[0])
    if "negate" in raw:
        if not isinstance(raw["negate"], bool):
            raise ConfigError(f"{where}.negate: expected true or false, got {raw['negate']!r}")
        ml.negate = raw["negate"]
    if "match" in raw:
        if raw["match"] not in ("after", "before"):
            raise ConfigError(f"{where}.match: expected \"after\" or \"before\", got {raw['match']!r}")
        ml.match = raw["match"]
    if "max_lines" in raw:
        v = raw["max_lines"]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{where}.max_lines: expected a positive integer, got {v!r}")
        ml.max_lines = v
    if "timeout" in raw:
        ml.timeout = _seconds(raw["timeout"], f"{where}.timeout")
    return ml


def load_config(path: str) -> FilesConfig:
    """Read and validate the TOML file; raises :class:`ConfigError` naming the file, source and key."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(TOP_KEYS))})")
    patterns: dict[str, str] = {}
    if "grok_patterns" in raw:
        table = raw["grok_patterns"]
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ConfigError(f"{path}: [grok_patterns]: expected NAME = \"pattern\" strings")
        bad = [k for k in table if not re.fullmatch(r"[A-Z0-9_]+", k)]
        if bad:
            raise ConfigError(f"{path}: [grok_patterns]: pattern name {bad[0]!r} must be UPPER_CASE")
        patterns = dict(table)
    sources_raw = raw.get("sources", [])
    if not isinstance(sources_raw, list):
        raise ConfigError(f"{path}: key 'sources': expected [[sources]] tables")
    sources = []
    for i, item in enumerate(sources_raw, 1):
        src = _source(i, item, path, patterns)
        if item.get("enabled", True):
            sources.append(src)
    return FilesConfig(path, sources)


# ---------------------------------------------------------------------------------------- joining
class FilebeatJoiner:
    """Filebeat's ``multiline`` rules. ``negate=false, match=after``: a line matching ``pattern``
    is appended to the line before; ``negate=true, match=after``: a line NOT matching is appended;
    ``match=before``: a (non-)matching line is prepended to the next one."""

    __slots__ = ("_lines", "ml")

    def __init__(self, ml: Multiline) -> None:
        self.ml = ml
        self._lines: list[str] = []

    def pending(self) -> bool:
        return bool(self._lines)

    def _hit(self, line: str) -> bool:
        return (self.ml.pattern.search(line) is not None) != self.ml.negate

    def feed(self, line: str) -> tuple[list[str], bool]:
        """Add a line; return the completed records and whether the last of them ends with this line."""
        if self.ml.match == "after":
            if self._lines and self._hit(line) and len(self._lines) < self.ml.max_lines:
                self._lines.append(line)
                return [], False
            done = self.flush()
            self._lines = [line]
            return done, False
        # before: a hit line continues into the next line
        self._lines.append(line)
        if self._hit(line) and len(self._lines) < self.ml.max_lines:
            return [], False
        return self.flush(), True

    def flush(self) -> list[str]:
        if not self._lines:
            return []
        done = "\n".join(self._lines)
        self._lines = []
        return [done]


class DefaultJoiner:
    """:class:`MultilineJoiner` with the same interface as :class:`FilebeatJoiner`."""

    __slots__ = ("_j",)

    def __init__(self) -> None:
        self._j = MultilineJoiner()

    def pending(self) -> bool:
        return self._j.pending()

    def feed(self, line: str) -> tuple[list[str], bool]:
        return self._j.feed(line), False

    def flush(self) -> list[str]:
        return self._j.flush()


# -------------------------------------------------------------------------------------- file state
Key = tuple[int, int]  # (device, inode)


@dataclass
class _Inflight:
    end: int
    future: Future[int] | None
    generation: int


@dataclass
class _Tail:
    key: Key
    path: str
    src: SourceConfig
    stream: IO[bytes]
    gz: bool
    read_pos: int  # offset after the bytes read so far
    committed: int  # offset up to which the store holds everything
    joiner: FilebeatJoiner | DefaultJoiner
    buffer: bytearray = field(default_factory=bytearray)
    truncating: bool = False  # a line over the cap: bytes are dropped until its newline
    consumed: int = 0  # offset after the last complete line processed
    pending_start: int = 0  # offset of the first line of the pending record
    last_data: float = field(default_factory=time.monotonic)
    detached_since: float | None = None  # no longer at any globbed path (renamed away or deleted)
    inflight: deque[_Inflight] = field(default_factory=deque)
    generation: int = 0
    skip_through: int = -1  # records starting at or before this offset are already stored
    eof: bool = False  # .gz: read to its end
    closing: bool = False
    failed_until: float = 0.0


def _gz_path(path: str) -> bool:
    return path.endswith(".gz")


class FileTailer:
    """The ``[[sources]]`` receiver: one polling thread for every configured source."""

    def __init__(self, config: FilesConfig, pipeline: Pipeline, data_dir: str, *, durability: str = "normal",
                 poll: float = POLL_SECONDS) -> None:
        self.config = config
        self.pipeline = pipeline
        self.poll = poll
        self.fsync = durability == "full"
        self.registry_path = os.path.join(data_dir, REGISTRY_NAME)
        self.stats: dict[str, int] = {
            "files_opened": 0, "files_closed": 0, "lines": 0, "records": 0, "bytes": 0, "filtered": 0,
            "truncated_lines": 0, "truncations": 0, "rotations": 0, "gz_files": 0, "errors": 0,
            "duplicates_skipped": 0,
        }
        self._tails: dict[Key, _Tail] = {}
        self._index = {id(src): i for i, src in enumerate(config.sources)}
        #: Registry entries of files not open now: key -> entry (with "seen" = time last found)
        self._known: dict[Key, dict[str, Any]] = self._load_registry()
        self._last_scan: dict[int, float] = {}
        self._first_scan = True
        self._dirty = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loglens-files", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- registry
    def _load_registry(self) -> dict[Key, dict[str, Any]]:
        try:
            with open(self.registry_path, "rb") as f:
                raw = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("files: cannot read %s (%s); starting without it", self.registry_path, exc)
            return {}
        out: dict[Key, dict[str, Any]] = {}
        now = time.monotonic()
        for entry in raw.get("files", []) if isinstance(raw, dict) else []:
            try:
                key = (int(entry["device"]), int(entry["inode"]))
                entry["offset"] = int(entry["offset"])
                entry["inflight"] = int(entry.get("inflight", entry["offset"]))
            except (KeyError, TypeError, ValueError):
                continue
            entry["seen"] = now
            out[key] = entry
        return out

    def _entry(self, tail: _Tail) -> dict[str, Any]:
        inflight = max([i.end for i in tail.inflight if i.generation == tail.generation] + [tail.committed])
        return {"device": tail.key[0], "inode": tail.key[1], "path": tail.path, "offset": tail.committed,
                "source": self._index.get(id(tail.src), -1),
                "inflight": inflight, "gz": tail.gz, "done": tail.gz and tail.eof and not tail.inflight
                and not tail.buffer and not tail.joiner.pending()}

    def _write_registry(self) -> None:
        files = [self._entry(t) for t in self._tails.values()]
        files += [{k: v for k, v in e.items() if k != "seen"} for key, e in self._known.items()
                  if key not in self._tails]
        data = json.dumps({"version": 1, "files": files}, indent=None).encode()
        tmp = self.registry_path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, self.registry_path)
            self._dirty = False
        except OSError as exc:
            self.stats["errors"] += 1
            log.error("files: cannot write %s: %s", self.registry_path, exc)

    # ---------------------------------------------------------------- loop
    def _run(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                self._scan_due()
                busy = self._turn()
                self._settle()
                if self._dirty:
                    self._write_registry()
            except Exception:  # the tailer must keep going
                self.stats["errors"] += 1
                log.exception("files: tailer error")
            if not busy:
                self._stop.wait(self.poll)
        # shutdown: wait a little for what was submitted, then record it
        deadline = time.monotonic() + 10
        while any(t.inflight for t in self._tails.values()) and time.monotonic() < deadline:
            self._settle()
            time.sleep(0.02)
        self._settle()
        self._write_registry()
        for tail in self._tails.values():
            with contextlib.suppress(OSError):
                tail.stream.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    # ---------------------------------------------------------------- discovery
    def _scan_due(self) -> None:
        now = time.monotonic()
        due = [s for i, s in enumerate(self.config.sources)
               if now - self._last_scan.get(i, -1e9) >= s.scan_frequency]
        if not due:
            return
        for i, s in enumerate(self.config.sources):
            if s in due:
                self._last_scan[i] = now
        self._scan(due, now)
        self._first_scan = False

    def _glob(self, src: SourceConfig) -> Iterator[str]:
        for pattern in src.paths:
            for path in sorted(glob.glob(pattern, recursive=True)):
                if any(rx.search(path) for rx in src.exclude_files):
                    continue
                yield path

    def _scan(self, sources: list[SourceConfig], now: float) -> None:
        found: dict[Key, tuple[str, SourceConfig, os.stat_result]] = {}
        for src in sources:
            for path in self._glob(src):
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if not os.path.isfile(path):
                    continue
                found.setdefault((st.st_dev, st.st_ino), (path, src, st))
        # open files: follow renames, notice files gone from every path
        due = {id(s) for s in sources}
        for key, tail in self._tails.items():
            if id(tail.src) not in due:
                continue
            if key in found:
                path = found[key][0]
                if path != tail.path:
                    log.info("files: %s was renamed to %s", tail.path, path)
                    tail.path = path
                    self._dirty = True
                tail.detached_since = None
            elif tail.detached_since is None:
                tail.detached_since = now
                self.stats["rotations"] += 1
                log.info("files: %s was renamed away or deleted; reading it to its end", tail.path)
        for key, (path, src, st) in found.items():
            if key in self._tails:
                continue
            entry = self._known.get(key)
            if entry is not None:
                entry["seen"] = now
                if entry.get("done"):
                    continue
            self._open(key, path, src, st, entry)
        # registry entries of files that are nowhere: drop after the grace period
        for key, entry in list(self._known.items()):
            if key in self._tails or key in found:
                continue
            index = entry.get("source", -1)
            if 0 <= index < len(self.config.sources) and id(self.config.sources[index]) not in due:
                continue
            grace = self.config.sources[index].clean_removed if 0 <= index < len(self.config.sources) else 60.0
            if now - entry.get("seen", now) > grace:
                del self._known[key]
                self._dirty = True

    def _open(self, key: Key, path: str, src: SourceConfig, st: os.stat_result, entry: dict[str, Any] | None) -> None:
        gz = _gz_path(path)
        try:
            raw = open(path, "rb")  # noqa: SIM115 - kept open while tailing
        except OSError as exc:
            self.stats["errors"] += 1
            log.warning("files: cannot open %s: %s", path, exc)
            return
        try:  # the path may have been replaced between the stat and the open
            fst = os.fstat(raw.fileno())
            if (fst.st_dev, fst.st_ino) != key:
                raw.close()
                return
        except OSError:
            raw.close()
            return
        stream: IO[bytes] = raw
        skip_through = -1
        if entry is not None:
            offset = int(entry["offset"])
            if not gz and offset > fst.st_size:  # truncated while we were away
                offset = 0
            elif int(entry.get("inflight", offset)) > offset:
                skip_through = self._stored_through(key, offset)
        elif self._first_scan and src.start_at == "end" and not gz:
            offset = fst.st_size
        else:
            offset = 0
        if gz:
            stream = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
            self.stats["gz_files"] += 1
        try:
            if gz:
                remaining = offset
                while remaining > 0:
                    got = stream.read(min(remaining, CHUNK))
                    if not got:
                        break
                    remaining -= len(got)
            else:
                stream.seek(offset)
        except (OSError, EOFError, zlib.error) as exc:
            self.stats["errors"] += 1
            log.warning("files: cannot read %s: %s", path, exc)
            stream.close()
            return
        joiner: FilebeatJoiner | DefaultJoiner = FilebeatJoiner(src.multiline) if src.multiline else DefaultJoiner()
        tail = _Tail(key, path, src, stream, gz, offset, offset, joiner, consumed=offset, pending_start=offset,
                     skip_through=skip_through)
        self._tails[key] = tail
        self._known.pop(key, None)
        self._dirty = True
        self.stats["files_opened"] += 1
        log.info("files: reading %s from offset %d", path, offset)

    def _stored_through(self, key: Key, offset: int) -> int:
        """After a crash: the largest ``log.offset`` already stored for this file at or past
        ``offset`` (records submitted and committed, but not yet in the registry); -1 if none."""
        from loglens.query.engine import QueryEngine
        from loglens.query.errors import QueryError

        engine = QueryEngine(self.pipeline.store)
        q = f"log.file.inode:{key[1]} AND log.offset>={offset}"
        best = -1
        cursor: str | None = None
        try:
            while True:
                page = engine.search(q, limit=10_000, cursor=cursor)
                for rec in page.records:
                    value = rec.attributes.get("log.offset")
                    if isinstance(value, int) and value > best:
                        best = value
                if page.next_cursor is None:
                    break
                cursor = str(page.next_cursor)
        except QueryError:  # the attributes are not known yet: nothing was stored
            return -1
        except Exception:
            log.exception("files: could not look up stored records")
            return -1
        if best >= 0:
            log.info("files: records up to offset %d of inode %d were already stored", best, key[1])
        return best

    # ---------------------------------------------------------------- reading
    def _turn(self) -> bool:
        """Read what is new in every open file, submit it; True when a file had more to read."""
        batches: list[tuple[_Tail, list[LogRecord], int]] = []
        more = False
        now = time.monotonic()
        for tail in list(self._tails.values()):
            if tail.closing or now < tail.failed_until:
                continue
            try:
                records, full = self._read(tail, now)
            except (OSError, EOFError, zlib.error) as exc:
                self.stats["errors"] += 1
                log.warning("files: error reading %s: %s; letting it go", tail.path, exc)
                records, full = [], False
                tail.eof = True
                tail.buffer.clear()
                tail.closing = True
            except Exception:  # a bug: what this turn read is dropped and read again later
                self.stats["errors"] += 1
                log.exception("files: error processing %s", tail.path)
                self._reset_to(tail, self._handed_out(tail))
                tail.failed_until = now + 1.0
                continue
            more = more or full
            safe = self._safe_offset(tail)
            last = self._handed_out(tail)
            if records or safe > last:
                batches.append((tail, records, safe))
            self._maybe_close(tail, now)
        if not batches:
            return more
        for tail, _records, end in batches:  # what is about to be sent, in case we die mid-way
            tail.inflight.append(_Inflight(end, None, tail.generation))
        if any(records for _, records, _ in batches):
            self._write_registry()
        for tail, records, _end in batches:
            entry = tail.inflight[-1]
            if records:
                for i in range(0, len(records), MAX_BATCH):
                    part = records[i:i + MAX_BATCH]
                    entry.future = self.pipeline.submit(part, service=tail.src.service, host=tail.src.host,
                                                        source=SOURCE, block=True)
                self.stats["records"] += len(records)
        return more

    @staticmethod
    def _handed_out(tail: _Tail) -> int:
        """The offset up to which records were submitted (or committed)."""
        if tail.inflight and tail.inflight[-1].generation == tail.generation:
            return tail.inflight[-1].end
        return tail.committed

    @staticmethod
    def _safe_offset(tail: _Tail) -> int:
        return tail.pending_start if tail.joiner.pending() else tail.consumed

    def _read(self, tail: _Tail, now: float) -> tuple[list[LogRecord], bool]:
        src = tail.src
        records: list[LogRecord] = []
        if not tail.gz:
            size = os.fstat(tail.stream.fileno()).st_size
            if size < tail.read_pos:
                self._truncated(tail, records)
        budget = TURN_BUDGET
        got_any = False
        full = False
        while not tail.eof:
            if budget <= 0 or len(records) >= MAX_BATCH * 4:
                full = True
                break
            chunk = tail.stream.read(CHUNK)
            if not chunk:
                if tail.gz:
                    tail.eof = True
                break
            got_any = True
            budget -= len(chunk)
            self.stats["bytes"] += len(chunk)
            self._feed_bytes(tail, chunk, records)
        if got_any:
            tail.last_data = now
        idle = now - tail.last_data
        if tail.eof or (tail.detached_since is not None and idle >= src.close_inactive):
            # nothing more will come: the partial last line and the pending record are complete
            if tail.buffer:
                self._line(tail, bytes(tail.buffer), tail.read_pos, records)
                tail.buffer.clear()
            self._emit(tail, tail.joiner.flush(), tail.consumed, records)
        elif tail.joiner.pending():
            timeout = src.multiline.timeout if src.multiline else src.flush_timeout
            if idle >= timeout:
                self._emit(tail, tail.joiner.flush(), tail.consumed, records)
        return records, full

    def _truncated(self, tail: _Tail, records: list[LogRecord]) -> None:
        log.info("files: %s was truncated; reading it again from the start", tail.path)
        self.stats["truncations"] += 1
        # the complete lines read before the truncation still make their record
        self._emit(tail, tail.joiner.flush(), tail.consumed, records)
        tail.stream.seek(0)
        tail.buffer.clear()
        tail.truncating = False
        tail.read_pos = tail.consumed = tail.pending_start = 0
        tail.skip_through = -1
        # what was read before belongs to the old content: its commits no longer move the offset
        if records:
            rest, records[:] = list(records), []
            tail.inflight.append(_Inflight(0, self.pipeline.submit(rest, service=tail.src.service,
                                                                   host=tail.src.host, source=SOURCE, block=True),
                                           tail.generation))
            self.stats["records"] += len(rest)
        tail.generation += 1
        tail.committed = 0
        self._dirty = True

    def _feed_bytes(self, tail: _Tail, chunk: bytes, records: list[LogRecord]) -> None:
        cap = tail.src.max_line_bytes
        start = 0
        base = tail.read_pos
        tail.read_pos += len(chunk)
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                rest = chunk[start:]
                if tail.truncating:
                    return
                room = cap - len(tail.buffer)
                if len(rest) > room:
                    tail.buffer += rest[:room]
                    tail.truncating = True
                    self.stats["truncated_lines"] += 1
                else:
                    tail.buffer += rest
                return
            piece = chunk[start:nl]
            end = base + nl + 1
            if tail.truncating:
                line = bytes(tail.buffer)
                tail.truncating = False
            elif tail.buffer:
                room = cap - len(tail.buffer)
                if len(piece) > room:
                    self.stats["truncated_lines"] += 1
                line = bytes(tail.buffer) + piece[:max(room, 0)]
            else:
                if len(piece) > cap:
                    self.stats["truncated_lines"] += 1
                    piece = piece[:cap]
                line = piece
            tail.buffer.clear()
            self._line(tail, line, end, records)
            start = nl + 1

    def _line(self, tail: _Tail, raw: bytes, end: int, records: list[LogRecord]) -> None:
        """One complete line, ending at file offset ``end``."""
        self.stats["lines"] += 1
        start = tail.consumed
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        was_pending = tail.joiner.pending()
        done, includes_line = tail.joiner.feed(text)
        if done:
            self._emit(tail, done, end if includes_line else start, records)
            if not includes_line and tail.joiner.pending():
                tail.pending_start = start
        elif not was_pending and tail.joiner.pending():
            tail.pending_start = start
        tail.consumed = end

    def _emit(self, tail: _Tail, texts: list[str], end: int, records: list[LogRecord]) -> None:
        """Completed records; the last of them ends at ``end`` and began at ``tail.pending_start``."""
        src = tail.src
        for text in texts:
            offset = tail.pending_start
            if offset <= tail.skip_through:
                self.stats["duplicates_skipped"] += 1
                continue
            if src.include_lines and not any(rx.search(text) for rx in src.include_lines):
                self.stats["filtered"] += 1
                continue
            if src.exclude_lines and any(rx.search(text) for rx in src.exclude_lines):
                self.stats["filtered"] += 1
                continue
            received = time.time_ns()
            if src.grok is not None:
                from loglens.parse.grok import grok_record

                rec = grok_record(text, src.grok, received_ns=received, service=src.service, host=src.host,
                                  source=SOURCE)
            else:
                rec = parse_line(text, received_ns=received, service=src.service, host=src.host, source=SOURCE)
            rec.attributes["log.file.path"] = tail.path
            rec.attributes["log.offset"] = offset
            rec.attributes["log.file.inode"] = tail.key[1]
            records.append(rec)
        tail.pending_start = end

    # ---------------------------------------------------------------- commits and closing
    def _settle(self) -> None:
        """Advance committed offsets over the submissions the pipeline has committed, in order."""
        now = time.monotonic()
        for tail in list(self._tails.values()):
            while tail.inflight:
                head = tail.inflight[0]
                if head.future is not None:
                    if not head.future.done():
                        break
                    exc = head.future.exception()
                    if exc is not None:
                        self._rewind(tail, exc, now)
                        break
                tail.inflight.popleft()
                if head.generation == tail.generation and head.end > tail.committed:
                    tail.committed = head.end
                    self._dirty = True
            if tail.closing and not tail.inflight:
                self._release(tail)

    def _rewind(self, tail: _Tail, exc: BaseException, now: float) -> None:
        """The pipeline failed a batch: once the later ones are settled, read again from the last
        committed offset, skipping what the store holds."""
        self.stats["errors"] += 1
        log.error("files: storing lines of %s failed (%s); retrying from offset %d", tail.path, exc, tail.committed)
        for entry in tail.inflight:
            if entry.future is not None:
                with contextlib.suppress(Exception):
                    entry.future.result(timeout=60)
        tail.inflight.clear()
        tail.generation += 1
        self._reset_to(tail, tail.committed)
        tail.skip_through = self._stored_through(tail.key, tail.committed)
        tail.failed_until = now + 1.0

    def _reset_to(self, tail: _Tail, offset: int) -> None:
        tail.buffer.clear()
        tail.truncating = False
        tail.joiner.flush()
        tail.closing = False
        tail.eof = False
        try:
            tail.stream.seek(offset)
        except (OSError, EOFError, zlib.error):
            tail.closing = True
            return
        tail.read_pos = tail.consumed = tail.pending_start = offset

    def _maybe_close(self, tail: _Tail, now: float) -> None:
        if tail.closing:
            return
        if tail.buffer or tail.joiner.pending():
            return
        if (tail.gz and tail.eof) or (tail.detached_since is not None
                                      and now - tail.last_data >= tail.src.close_inactive):
            tail.closing = True

    def _release(self, tail: _Tail) -> None:
        entry = self._entry(tail)
        entry["seen"] = time.monotonic() if tail.detached_since is None else tail.detached_since
        if tail.gz:
            entry["done"] = True
        with contextlib.suppress(OSError):
            tail.stream.close()
        del self._tails[tail.key]
        self._known[tail.key] = entry
        self._dirty = True
        self.stats["files_closed"] += 1
        log.info("files: done with %s", tail.path)


def start(settings: Settings, pipeline: Pipeline) -> FileTailer:
    config = load_config(settings.config)
    os.makedirs(settings.data, exist_ok=True)
    tailer = FileTailer(config, pipeline, settings.data, durability=settings.durability)
    log.info("files: tailing %d source(s) from %s", len(config.sources), settings.config)
    return tailer


__all__ = [
    "ConfigError",
    "DefaultJoiner",
    "FileTailer",
    "FilebeatJoiner",
    "FilesConfig",
    "SourceConfig",
    "load_config",
    "start",
]
