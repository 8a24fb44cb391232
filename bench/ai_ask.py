"""Ask accuracy: plain-English questions over the shared Loghub systems, answered without an LLM.

    .venv/bin/python bench/ai_ask.py            # prints a table and the exact-match rate
    .venv/bin/python bench/ai_ask.py -v         # also the query each question became

Each Loghub system (``../shared/datasets/loghub-2k/<System>/<System>_2k.log``) is loaded into one
temporary store with ``loglens ingest FILE --service <System>``. Every question's expected answer is
computed independently from the raw file with Python regular expressions (whole-token,
case-insensitive, as the query language matches), never through LogLens. A question counts as an
exact match when the operation's result equals the expectation: the count; the top value and its
count; the first/last occurrence's time to the second (month-day-time for syslog files, which carry
no year). ``bench/ai.py`` calls :func:`ask_accuracy`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import find_loglens

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "loghub-2k"
SYSTEMS = ("Apache", "BGL", "HDFS", "Hadoop", "Linux", "OpenSSH", "Spark", "Zookeeper")
#: A fixed "now" after every Loghub sample, so that "no time given" means all of it.
NOW = "2030-01-01T00:00:00Z"


# ------------------------------------------------------------------------------ raw-file truth
def lines(system: str) -> list[str]:
    return (DATASETS / system / f"{system}_2k.log").read_text(errors="replace").splitlines()


def has(text: str) -> Callable[[str], bool]:
    """Whole-token, case-insensitive, whitespace-tolerant match, like a query term or phrase."""
    body = r"\s+".join(re.escape(p) for p in text.split())
    left = r"(?<!\w)" if text[:1].isalnum() or text[:1] == "_" else ""
    right = r"(?!\w)" if text[-1:].isalnum() or text[-1:] == "_" else ""
    pattern = re.compile(left + body + right, re.IGNORECASE)
    return lambda line: pattern.search(line) is not None


_LEVEL_RE = {
    "Apache": re.compile(r"^\[[^\]]+\] \[(\w+)\]"),
    "HDFS": re.compile(r"^\d{6} \d{6} \d+ (\w+) "),
    "Hadoop": re.compile(r"^\S+ \S+ (\w+) "),
    "Spark": re.compile(r"^\S+ \S+ (\w+) "),
    "Zookeeper": re.compile(r"^\S+ \S+ - (\w+)\s"),
    "BGL": re.compile(r"^\S+ \S+ \S+ \S+ \S+ \S+ \S+ \S+ (\w+) "),
}
_LEVEL_NAMES = {"error": "ERROR", "warn": "WARN", "warning": "WARN", "notice": "INFO", "info": "INFO",
                "fatal": "FATAL", "severe": "ERROR", "debug": "DEBUG"}


def level(system: str, line: str) -> str | None:
    rx = _LEVEL_RE.get(system)
    m = rx.match(line) if rx else None
    return _LEVEL_NAMES.get(m.group(1).lower()) if m else None


def count(system: str, pred: Callable[[str], bool]) -> int:
    return sum(1 for line in lines(system) if pred(line))


def _stamp(system: str, line: str) -> str | None:
    """The line's time as compared: ``YYYY-MM-DD HH:MM:SS``, or ``MM-DD HH:MM:SS`` for syslog."""
    if system in ("Linux", "OpenSSH"):
        m = re.match(r"(\w{3})\s+(\d+) (\d\d:\d\d:\d\d)", line)
        return datetime.strptime(f"{m.group(1)} {m.group(2)}", "%b %d").strftime("%m-%d ") + m.group(3) if m else None
    if system == "Apache":
        m = re.match(r"\[\w{3} (\w{3} \d\d \d\d:\d\d:\d\d \d{4})\]", line)
        return datetime.strptime(m.group(1), "%b %d %H:%M:%S %Y").strftime("%Y-%m-%d %H:%M:%S") if m else None
    if system == "HDFS":
        m = re.match(r"(\d{6}) (\d{6})", line)
        return datetime.strptime(m.group(1) + m.group(2), "%y%m%d%H%M%S").strftime("%Y-%m-%d %H:%M:%S") if m else None
    if system == "Spark":
        m = re.match(r"(\d\d/\d\d/\d\d \d\d:\d\d:\d\d)", line)
        return datetime.strptime(m.group(1), "%y/%m/%d %H:%M:%S").strftime("%Y-%m-%d %H:%M:%S") if m else None
    m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", line)  # Hadoop, Zookeeper
    return m.group(1) if m else None


def first(system: str, pred: Callable[[str], bool]) -> str | None:
    stamps = [s for line in lines(system) if pred(line) and (s := _stamp(system, line))]
    return min(stamps) if stamps else None


def last(system: str, pred: Callable[[str], bool]) -> str | None:
    stamps = [s for line in lines(system) if pred(line) and (s := _stamp(system, line))]
    return max(stamps) if stamps else None


def top_host(systems: tuple[str, ...], pred: Callable[[str], bool]) -> tuple[str, int] | None:
    hosts: Counter[str] = Counter()
    for system in systems:
        for line in lines(system):
            if pred(line):
                m = re.match(r"\w{3}\s+\d+ \d\d:\d\d:\d\d (\S+) ", line)
                if m:
                    hosts[m.group(1)] += 1
    return hosts.most_common(1)[0] if hosts else None


def top_service_by_level(minimum: tuple[str, ...]) -> tuple[str, int] | None:
    per: Counter[str] = Counter()
    for system in SYSTEMS:
        per[system] = sum(1 for line in lines(system) if level(system, line) in minimum)
    best = per.most_common(1)
    return best[0] if best and best[0][1] else None


@dataclass
class Question:
    text: str
    kind: str  # count | top | first | last
    expected: Callable[[], Any]
    system: str | None = None


def questions() -> list[Question]:
    q = Question
    errors = ("ERROR", "FATAL")
    return [
        # OpenSSH
        q("how many lines from OpenSSH mention 'Failed password'", "count",
          lambda: count("OpenSSH", has("Failed password"))),
        q("how many invalid user attempts in OpenSSH", "count", lambda: count("OpenSSH", has("invalid user"))),
        q("how many 'Received disconnect' in OpenSSH", "count", lambda: count("OpenSSH", has("Received disconnect"))),
        q("which hosts logged the most failed password attempts", "top",
          lambda: top_host(("Linux", "OpenSSH"), has("failed password"))),
        q("when did 'Connection closed' start in OpenSSH", "first", lambda: first("OpenSSH", has("Connection closed")),
          "OpenSSH"),
        q("when did 'POSSIBLE BREAK-IN ATTEMPT' last happen in OpenSSH", "last",
          lambda: last("OpenSSH", has("POSSIBLE BREAK-IN ATTEMPT")), "OpenSSH"),
        # Linux
        q("how many authentication failures in Linux", "count", lambda: count("Linux", has("authentication failure"))),
        q("how many 'check pass; user unknown' in Linux", "count",
          lambda: count("Linux", has("check pass; user unknown"))),
        q("how many lines from Linux mention sshd", "count", lambda: count("Linux", has("sshd"))),
        q("which host logged the most lines in Linux", "top", lambda: top_host(("Linux",), lambda _: True)),
        # Apache
        q("how many errors in Apache", "count", lambda: count("Apache", lambda x: level("Apache", x) in errors)),
        q("how many 'workerEnv in error state' in Apache", "count",
          lambda: count("Apache", has("workerEnv in error state"))),
        q("when did 'jk2_init() Found child' start in Apache", "first",
          lambda: first("Apache", has("jk2_init() Found child")), "Apache"),
        q("how many errors in Apache on 2005-12-04", "count",
          lambda: count("Apache", lambda x: level("Apache", x) in errors and "Dec 04" in x[:12] and "2005]" in x[:30])),
        # HDFS
        q("how many warnings in HDFS", "count", lambda: count("HDFS", lambda x: level("HDFS", x) == "WARN")),
        q("how many lines mention PacketResponder in HDFS", "count", lambda: count("HDFS", has("PacketResponder"))),
        q("how many 'Received block' in HDFS", "count", lambda: count("HDFS", has("Received block"))),
        q("when did 'Verification succeeded' first appear in HDFS", "first",
          lambda: first("HDFS", has("Verification succeeded")), "HDFS"),
        # Hadoop
        q("how many warnings in Hadoop", "count", lambda: count("Hadoop", lambda x: level("Hadoop", x) == "WARN")),
        q("how many errors in Hadoop", "count", lambda: count("Hadoop", lambda x: level("Hadoop", x) in errors)),
        q("how many 'Retrying connect to server' in Hadoop", "count",
          lambda: count("Hadoop", has("Retrying connect to server"))),
        q("when did 'Address change detected' start in Hadoop", "first",
          lambda: first("Hadoop", has("Address change detected")), "Hadoop"),
        # Spark
        q("how many errors in Spark", "count", lambda: count("Spark", lambda x: level("Spark", x) in errors)),
        q("how many 'Finished task' lines in Spark", "count", lambda: count("Spark", has("Finished task"))),
        q("when did 'Registered signal handlers' start in Spark", "first",
          lambda: first("Spark", has("Registered signal handlers")), "Spark"),
        # Zookeeper
        q("how many warnings in Zookeeper", "count",
          lambda: count("Zookeeper", lambda x: level("Zookeeper", x) == "WARN")),
        q("how many errors in Zookeeper", "count",
          lambda: count("Zookeeper", lambda x: level("Zookeeper", x) in errors)),
        q("how many 'Connection broken for id' in Zookeeper", "count",
          lambda: count("Zookeeper", has("Connection broken for id"))),
        # BGL
        q("how many 'instruction cache parity error corrected' in BGL", "count",
          lambda: count("BGL", has("instruction cache parity error corrected"))),
        q("how many fatal lines in BGL", "count", lambda: count("BGL", lambda x: level("BGL", x) == "FATAL")),
        # across systems
        q("which services logged the most warnings", "top", lambda: top_service_by_level(("WARN",))),
        q("how many lines mention 'Connection refused'", "count",
          lambda: sum(count(s, has("Connection refused")) for s in SYSTEMS)),
    ]


# ------------------------------------------------------------------------------ running
def _got(kind: str, answer: dict[str, Any]) -> Any:
    result = answer.get("result")
    if not isinstance(result, dict):
        return None
    if kind == "count":
        return result.get("count")
    if kind == "top":
        values = result.get("values") or []
        return (values[0]["value"], values[0]["count"]) if values else None
    key = "first_seen" if kind == "first" else "last_seen"
    ts = result.get(key)
    return ts[:19].replace("T", " ") if ts else None


def _normalise(kind: str, system: str | None, value: Any) -> Any:
    if kind in ("first", "last") and isinstance(value, str) and system in ("Linux", "OpenSSH"):
        return value[5:] if len(value) == 19 else value
    return value


def load(data: str) -> float:
    loglens = find_loglens()
    started = time.perf_counter()
    for system in SYSTEMS:
        path = DATASETS / system / f"{system}_2k.log"
        subprocess.run([loglens, "ingest", str(path), "--service", system, "--data", data], check=True,
                       capture_output=True)
    return time.perf_counter() - started


def ask_accuracy(verbose: bool = False) -> dict[str, Any]:
    """Load the Loghub systems, ask every question without an LLM, print a table; the summary."""
    from loglens.analysis.ask import ask
    from loglens.query.engine import QueryEngine
    from loglens.query.timerange import parse_time
    from loglens.store import open_store

    if not DATASETS.exists():
        print(f"ask: {DATASETS} not found, skipped")
        return {"questions": 0, "exact": 0, "rate": None}
    now = parse_time(NOW)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        elapsed = load(tmp)
        store = open_store(tmp)
        engine = QueryEngine(store)
        try:
            for question in questions():
                expected = _normalise(question.kind, question.system, question.expected())
                started = time.perf_counter()
                answer = ask(engine, question.text, now=now)
                ms = (time.perf_counter() - started) * 1000
                got = _normalise(question.kind, question.system, _got(question.kind, answer))
                rows.append((question.text, answer.get("operation") or "-", answer.get("query") or "",
                             expected, got, got == expected, ms))
        finally:
            store.close()
    exact = sum(1 for r in rows if r[5])
    width = max(len(r[0]) for r in rows)
    print(f"ask accuracy over Loghub-2k ({len(SYSTEMS)} systems loaded in {elapsed:.1f} s), no LLM, now={NOW}\n")
    print(f"{'question'.ljust(width)}  {'op':9}  {'expected':>28}  {'got':>28}  ok   ms")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 28}  {'-' * 28}  ---  ----")
    for text, op, query, expected, got, ok, ms in rows:
        print(f"{text.ljust(width)}  {op:9}  {expected!s:>28}  {got!s:>28}  {'yes' if ok else 'NO '}  {ms:4.0f}")
        if verbose or not ok:
            print(f"{'':{width}}  query: {query}")
    rate = exact / len(rows) if rows else 0.0
    print(f"\nexact match: {exact}/{len(rows)} = {rate:.0%}")
    return {"questions": len(rows), "exact": exact, "rate": round(rate, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true", help="show the query of every question")
    args = ap.parse_args()
    ask_accuracy(verbose=args.verbose)


if __name__ == "__main__":
    main()
