"""Helpers shared by the LogLens benches: finding the CLI, measuring child processes, tables."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


class BenchError(RuntimeError):
    """A problem the user has to fix (missing tool, server that does not start...)."""


def die(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# --------------------------------------------------------------------------------------------------
# Tools


def find_loglens() -> str:
    """Path of the ``loglens`` console script: next to this Python first, then on PATH."""
    candidates = [Path(sys.executable).parent / "loglens"]
    on_path = shutil.which("loglens")
    if on_path:
        candidates.append(Path(on_path))
    for c in candidates:
        if c.exists() and os.access(c, os.X_OK):
            exe = str(c)
            break
    else:
        raise BenchError(
            "the `loglens` command is not installed. Install LogLens into this virtualenv first "
            "(`.venv/bin/pip install -e .`) and run the bench with `.venv/bin/python bench/...`."
        )
    try:
        res = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"`{exe} --help` failed to run: {e}") from e
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        raise BenchError(f"`{exe} --help` exited with {res.returncode}; LogLens is broken or not "
                         "installed:\n    " + "\n    ".join(tail))
    return exe


def find_rg() -> str | None:
    return shutil.which("rg")


RG_MISSING = ("ripgrep (`rg`) is not installed, so the peer column is empty. Install it with "
              "`apt-get install ripgrep` (or `cargo install ripgrep`) to compare against it.")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def dir_size(path: str | os.PathLike[str]) -> int:
    """Sum of the sizes of the files under ``path`` (what the store occupies)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def store_stats(loglens: str, data: str) -> dict[str, Any] | None:
    """``loglens stats --data DIR -o json`` as a dict, or None if that is not available."""
    try:
        res = subprocess.run([loglens, "stats", "--data", data, "-o", "json"], capture_output=True,
                             text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    out = res.stdout.strip()
    for candidate in (out, out.splitlines()[0] if out else ""):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def stats_records(stats: dict[str, Any] | None) -> int | None:
    if not stats:
        return None
    for key in ("records", "record_count", "count", "rows"):
        v = stats.get(key)
        if isinstance(v, int):
            return v
    return None


# --------------------------------------------------------------------------------------------------
# Measuring a child process: wall time and peak RSS


def _proc_status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children", encoding="ascii") as f:
                    kids = [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


@dataclass
class Child:
    """A child process whose peak RSS is tracked.

    Peak RSS is the largest of: the kernel's high-water mark of the process (``VmHWM``, polled),
    the peak of the summed resident memory of the process and its descendants (polled every
    50 ms), and ``ru_maxrss`` that ``wait4`` reports for the process when it ends.
    """

    args: Sequence[str]
    stdout: Any = subprocess.PIPE
    stderr: Any = subprocess.PIPE
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] = field(init=False)
    started: float = field(init=False, default=0.0)
    ended: float = field(init=False, default=0.0)
    returncode: int | None = field(init=False, default=None)
    _peak_kb: int = field(init=False, default=0)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _poller: threading.Thread | None = field(init=False, default=None)
    _out: bytes = field(init=False, default=b"")
    _err: bytes = field(init=False, default=b"")
    _readers: list[threading.Thread] = field(init=False, default_factory=list)

    def start(self) -> Child:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(list(self.args), stdout=self.stdout, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL, env=self.env)
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()
        # drain pipes in threads so a chatty child never blocks on a full pipe
        if self.stdout is subprocess.PIPE:
            self._readers.append(self._reader("_out", self.proc.stdout))
        if self.stderr is subprocess.PIPE:
            self._readers.append(self._reader("_err", self.proc.stderr))
        return self

    def _reader(self, attr: str, stream: Any) -> threading.Thread:
        def run() -> None:
            setattr(self, attr, stream.read())

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def _poll(self) -> None:
        pid = self.proc.pid
        while not self._stop.is_set():
            hwm = _proc_status_kb(pid, "VmHWM:")
            tree = _proc_status_kb(pid, "VmRSS:") + sum(_proc_status_kb(p, "VmRSS:")
                                                        for p in _descendants(pid))
            self._peak_kb = max(self._peak_kb, hwm, tree)
            self._stop.wait(0.05)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end (reaping it with wait4 to read its own ru_maxrss)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pid = self.proc.pid
        while True:
            wpid, status, usage = os.wait4(pid, os.WNOHANG)
            if wpid == pid:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(list(self.args), timeout or 0)
            time.sleep(0.02)
        self.ended = time.perf_counter()
        self._stop.set()
        self._peak_kb = max(self._peak_kb, usage.ru_maxrss)  # KiB on Linux
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode
        for t in self._readers:
            t.join(timeout=5)
        return self.returncode

    def stop(self, grace: float = 30.0) -> int:
        """SIGTERM (then SIGKILL after ``grace`` seconds) and wait."""
        if self.returncode is not None:
            return self.returncode
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            return self.wait()

    @property
    def alive(self) -> bool:
        """Still running (checked without reaping it, so wait4 still gets its rusage)."""
        if self.returncode is not None:
            return False
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def peak_rss_mb(self) -> float:
        return self._peak_kb / 1024

    @property
    def out(self) -> str:
        return self._out.decode(errors="replace")

    @property
    def err(self) -> str:
        return self._err.decode(errors="replace")


def run_child(args: Sequence[str], timeout: float | None = None) -> Child:
    c = Child(args).start()
    try:
        c.wait(timeout)
    except subprocess.TimeoutExpired:
        c.stop(5)
        raise
    return c


def tail(text: str, n: int = 8) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join("    " + ln for ln in lines[-n:])


# --------------------------------------------------------------------------------------------------
# The server


def _log_tail(path: str) -> str:
    return tail(Path(path).read_text(errors="replace"), 15)


@contextlib.contextmanager
def serve(loglens: str, data: str, log_path: str, args: list[str] | None = None,
          ready_timeout: float = 120.0) -> Iterator[tuple[Child, str]]:
    """Start ``loglens serve`` (with extra flags ``args``) on a free port; yield (child, base URL);
    stop it at the end."""
    import httpx

    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - closed in finally
    child = Child([loglens, "serve", "--data", data, "--host", "127.0.0.1", "--port", str(port), *(args or [])],
                  stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        child.start()
        deadline = time.monotonic() + ready_timeout
        with httpx.Client(base_url=base, timeout=5) as client:
            while True:
                if not child.alive:
                    log.flush()
                    child.wait()
                    raise BenchError(f"`loglens serve` exited with {child.returncode} before it was "
                                     f"ready; its log:\n{_log_tail(log_path)}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise BenchError(f"`loglens serve` was not ready after {ready_timeout:.0f}s "
                                     f"(GET /readyz); its log:\n{_log_tail(log_path)}")
                time.sleep(0.1)
        yield child, base
    finally:
        if child.returncode is None and hasattr(child, "proc"):
            child.stop()
        log.close()


# --------------------------------------------------------------------------------------------------
# Output


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_int(v: float | int | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def fmt_num(v: float | None, digits: int = 1) -> str:
    if v is None or v != v:  # None or NaN
        return "n/a"
    return f"{v:,.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def machine_note() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs, load {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}, Python "
            f"{sys.version.split()[0]}")
