#!/usr/bin/env python3
"""Template-mining benchmark: LogLens against Drain3 on Loghub-2k, accuracy and speed.

Usage::

    .venv/bin/python bench/patterns.py [DATASET_DIR] [--stream-lines N] [--evaluator PATH]

DATASET_DIR (default ``../shared/datasets/loghub-2k`` relative to the repository root) holds one
``<System>/`` folder per system with ``<System>_2k.log`` (raw lines) and
``<System>_2k.log_structured.csv`` (the corrected ground truth: ``Content`` is the message,
``EventTemplate`` the template). For every system the bench prints GA, PA, FGA and FTA (computed
by the shared evaluator ``parse_accuracy.py``) for

* LogLens on messages (the ``Content`` column) and on raw lines (``--raw``: the header is found
  and cut off by ``loglens.parse.header`` with no per-system format), through the same
  ``mine_lines`` function that ``loglens patterns mine`` uses;
* Drain3 0.9.11 with its default configuration, on messages;
* Drain3 with the per-system settings of the Loghub benchmark (masking regexes, similarity
  threshold, tree depth), on messages;

then the averages, and lines/s of each on the concatenation of all systems' messages, on a
generated stream of 1M lines (the systems' lines sampled at random with their numbers and hex ids
re-drawn, with new lengths, so that few lines repeat) and on 100k events of generated application
logs (``bench/gen_logs.py``: hex request ids, UUIDs, ids in paths; the miner sees the messages that
``loglens.parse.parse_line`` gives), with the template count and the miner's ``evicted`` counter.
Drain3 is a bench-only dependency (``pip install -e .[bench]``); the evaluator needs pandas.
"""

from __future__ import annotations

import argparse
import csv
import gc
import importlib.util
import logging
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from loglens.patterns.masking import clear_caches  # noqa: E402
from loglens.patterns.mine import mine_lines, raw_message  # noqa: E402
from loglens.patterns.miner import TemplateMiner  # noqa: E402

# Per-system Drain settings of the Loghub benchmark (Zhu et al., "Tools and Benchmarks for
# Automated Log Parsing", ICSE-SEIP 2019): masking regexes, similarity threshold, tree depth.
LOGHUB_DRAIN: dict[str, dict[str, Any]] = {
    "HDFS": {"regex": [r"blk_-?\d+", r"(\d+\.){3}\d+(:\d+)?"], "st": 0.5, "depth": 4},
    "Hadoop": {"regex": [r"(\d+\.){3}\d+"], "st": 0.5, "depth": 4},
    "Spark": {"regex": [r"(\d+\.){3}\d+", r"\b[KGTM]?B\b", r"([\w-]+\.){2,}[\w-]+"], "st": 0.5, "depth": 4},
    "Zookeeper": {"regex": [r"(/|)(\d+\.){3}\d+(:\d+)?"], "st": 0.5, "depth": 4},
    "BGL": {"regex": [r"core\.\d+"], "st": 0.5, "depth": 4},
    "HPC": {"regex": [r"=\d+"], "st": 0.5, "depth": 4},
    "Thunderbird": {"regex": [r"(\d+\.){3}\d+"], "st": 0.5, "depth": 4},
    "Windows": {"regex": [r"0x.*?\s"], "st": 0.7, "depth": 5},
    "Linux": {"regex": [r"(\d+\.){3}\d+", r"\d{2}:\d{2}:\d{2}"], "st": 0.39, "depth": 6},
    "Android": {
        "regex": [r"(/[\w-]+)+", r"([\w-]+\.){2,}[\w-]+", r"\b(\-?\+?\d+)\b|\b0[Xx][a-fA-F\d]+\b|\b[a-fA-F\d]{4,}\b"],
        "st": 0.2,
        "depth": 6,
    },
    "HealthApp": {"regex": [], "st": 0.2, "depth": 4},
    "Apache": {"regex": [r"(\d+\.){3}\d+"], "st": 0.5, "depth": 4},
    "Proxifier": {
        "regex": [r"<\d+\ssec", r"([\w-]+\.)+[\w-]+(:\d+)?", r"\d{2}:\d{2}(:\d{2})*", r"[KGTM]B"],
        "st": 0.6,
        "depth": 3,
    },
    "OpenSSH": {"regex": [r"(\d+\.){3}\d+", r"([\w-]+\.){2,}[\w-]+"], "st": 0.6, "depth": 5},
    "OpenStack": {"regex": [r"((\d+\.){3}\d+,?)+", r"/.+?\s", r"\d+"], "st": 0.5, "depth": 5},
    "Mac": {"regex": [r"([\w-]+\.){2,}[\w-]+"], "st": 0.7, "depth": 6},
}

METRICS = ("GA", "PA", "FGA", "FTA")


def load_evaluator(path: str | None, dataset_dir: Path) -> ModuleType:
    candidates = [Path(path)] if path else []
    candidates += [
        dataset_dir.parent.parent / "bench" / "parse_accuracy.py",
        REPO.parent / "shared" / "bench" / "parse_accuracy.py",
    ]
    for cand in candidates:
        if cand.is_file():
            spec = importlib.util.spec_from_file_location("parse_accuracy", cand)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    sys.exit(f"parse_accuracy.py not found (tried {', '.join(map(str, candidates))}); use --evaluator")


def read_system(sysdir: Path) -> tuple[list[str], list[str], list[str]]:
    """(LineIds, messages, raw lines) of one system, aligned on the ground truth's LineId."""
    name = sysdir.name
    with open(sysdir / f"{name}_2k.log_structured.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(sysdir / f"{name}_2k.log", encoding="utf-8", errors="replace", newline="\n") as f:
        raw = [line.rstrip("\n").rstrip("\r") for line in f]
    ids = [r["LineId"] for r in rows]
    messages = [r["Content"] for r in rows]
    raw_lines = [raw[int(i) - 1] if int(i) - 1 < len(raw) else "" for i in ids]
    return ids, messages, raw_lines


# -- parsers ------------------------------------------------------------------------------------


def drain3_miner(settings: dict[str, Any] | None) -> Any:
    from drain3 import TemplateMiner as Drain3Miner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.mask_prefix = "<"
    config.mask_suffix = ">"
    if settings is not None:
        config.drain_sim_th = settings["st"]
        config.drain_depth = settings["depth"]
        config.masking_instructions = [MaskingInstruction(rx, "*") for rx in settings["regex"]]
    return Drain3Miner(config=config)


def run_drain3(messages: list[str], settings: dict[str, Any] | None) -> list[str]:
    miner = drain3_miner(settings)
    ids = [miner.add_log_message(m)["cluster_id"] for m in messages]
    texts = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    return [texts[i] for i in ids]


def loglens_messages(messages: list[str]) -> list[str]:
    return mine_lines(messages)


def loglens_raw(lines: list[str]) -> list[str]:
    return mine_lines(lines, raw=True)


# -- stream -------------------------------------------------------------------------------------

# Numbers that are values (not the digit of a name such as ``ssh2`` or ``jk2_init``) and hex ids.
_NUMBER = re.compile(r"(?<![A-Za-z\d])\d+(?![A-Za-z\d])")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-f]*[a-f])(?=[a-f]*\d)[0-9a-f]{8,}\b")


def make_stream(pool: list[str], n: int, seed: int = 7, header: Callable[[str], int] | None = None) -> list[str]:
    """``n`` lines sampled from ``pool`` with numbers and hex ids re-drawn (longer numbers with
    new lengths too).

    With ``header`` (a function giving where a raw line's message starts), only the message part
    is changed: the headers stay valid timestamps, levels and components."""
    rnd = random.Random(seed)
    randrange = rnd.randrange

    def number(m: re.Match[str]) -> str:
        # Short numbers (time fields, small counts) keep their width; longer ones (ids, sizes,
        # durations) may gain or lose a digit.
        width = len(m.group())
        if width > 2:
            width += randrange(-1, 2)
        return str(randrange(10 ** (width - 1) if width > 1 else 0, 10**width))

    def hexa(m: re.Match[str]) -> str:
        text = m.group()
        head = "0x" if text.startswith("0x") else ""
        width = len(text) - len(head)
        return head + f"{rnd.getrandbits(4 * width):0{width}x}"

    out = []
    offsets = [header(line) for line in pool] if header else [0] * len(pool)
    randpos = rnd.randrange
    size = len(pool)
    for _ in range(n):
        i = randpos(size)
        line = pool[i]
        head, body = line[: offsets[i]], line[offsets[i] :]
        out.append(head + _NUMBER.sub(number, _HEX.sub(hexa, body)))
    return out


def app_logs(n: int) -> tuple[list[str], list[str]]:
    """Raw lines and messages (what the ingest pipeline gives the miner: ``parse_line(...).message``)
    of ``n`` events of realistic application logs from ``bench/gen_logs.py`` (hex request ids,
    UUIDs, ids in paths, IP:port...)."""
    sys.path.insert(0, str(REPO / "bench"))
    from gen_logs import iter_chunks

    from loglens.parse import parse_line

    raw = [line for chunk in iter_chunks(n) for line in chunk.splitlines()]
    return raw, [parse_line(line, received_ns=1).message for line in raw]


def timed(fn: Callable[[list[str]], Any], lines: list[str]) -> tuple[float, Any]:
    clear_caches()  # start cold: the accuracy runs filled the token caches
    gc.collect()
    start = time.perf_counter()
    result = fn(lines)
    return time.perf_counter() - start, result


# -- main ---------------------------------------------------------------------------------------


def fmt(value: float) -> str:
    return f"{value:.3f}" if value == value else "  -  "


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset_dir", nargs="?", default=str(REPO.parent / "shared" / "datasets" / "loghub-2k"))
    ap.add_argument("--stream-lines", type=int, default=1_000_000, help="size of the generated stream")
    ap.add_argument(
        "--app-lines", type=int, default=100_000, help="events of generated application logs (bench/gen_logs.py)"
    )
    ap.add_argument("--evaluator", help="path of parse_accuracy.py")
    ap.add_argument("--no-drain3", action="store_true", help="LogLens only")
    args = ap.parse_args(argv)
    logging.getLogger("drain3").setLevel(logging.ERROR)
    dataset_dir = Path(args.dataset_dir)
    evaluator = load_evaluator(args.evaluator, dataset_dir)
    import pandas as pd

    systems = sorted(d for d in dataset_dir.iterdir() if d.is_dir() and (d / f"{d.name}_2k.log").is_file())
    if not systems:
        sys.exit(f"no <System>/<System>_2k.log under {dataset_dir}")
    have_drain3 = not args.no_drain3 and importlib.util.find_spec("drain3") is not None
    parsers: list[tuple[str, str]] = [("LogLens", "msg"), ("LogLens --raw", "raw")]
    if have_drain3:
        parsers += [("Drain3 default", "d3"), ("Drain3 Loghub", "d3l")]

    rows: dict[str, list[dict[str, float]]] = {p: [] for p, _ in parsers}
    all_messages: list[str] = []
    all_raw: list[str] = []
    per_system: list[tuple[str, list[str], list[str]]] = []
    print(f"Loghub-2k accuracy ({dataset_dir}), corrected ground truth, one default configuration", flush=True)
    print()
    print("| system | parser | " + " | ".join(METRICS) + " | groups |")
    print("|---|---|" + "---:|" * (len(METRICS) + 1))
    for sysdir in systems:
        name = sysdir.name
        gt = evaluator.read_csv(str(sysdir / f"{name}_2k.log_structured.csv"))
        ids, messages, raw_lines = read_system(sysdir)
        all_messages += messages
        all_raw += raw_lines
        per_system.append((name, messages, raw_lines))
        for label, kind in parsers:
            if kind == "msg":
                templates = loglens_messages(messages)
            elif kind == "raw":
                templates = loglens_raw(raw_lines)
            elif kind == "d3":
                templates = run_drain3(messages, None)
            else:
                settings = LOGHUB_DRAIN.get(name, {"regex": [], "st": 0.4, "depth": 4})
                templates = run_drain3(messages, settings)
            pred = pd.DataFrame({"LineId": ids, "EventTemplate": templates})
            res = evaluator.evaluate(gt, pred)
            rows[label].append({m: float(res[m]) for m in (*METRICS, "pred_groups")})
            cells = " | ".join(fmt(res[m]) for m in METRICS)
            print(f"| {name} | {label} | {cells} | {res['pred_groups']} |", flush=True)
    for label, _ in parsers:
        avg = {m: sum(r[m] for r in rows[label]) / len(rows[label]) for m in METRICS}
        cells = " | ".join(f"**{fmt(avg[m])}**" for m in METRICS)
        print(f"| **Average** | {label} | {cells} | |")
    msg_ga = sum(r["GA"] for r in rows["LogLens"]) / len(rows["LogLens"])
    raw_ga = sum(r["GA"] for r in rows["LogLens --raw"]) / len(rows["LogLens --raw"])
    print()
    print(f"LogLens GA on raw lines minus GA on messages: {raw_ga - msg_ga:+.3f}")

    # -- speed --------------------------------------------------------------------------------
    print()
    print("Throughput (one process, same run, caches cold)")
    print()
    print("| input | parser | lines | seconds | lines/s | templates | evicted | merged |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")

    def streaming_loglens(lines: list[str]) -> TemplateMiner:
        miner = TemplateMiner()
        miner.add_many(lines, [])
        return miner

    def streaming_loglens_raw(lines: list[str]) -> TemplateMiner:
        miner = TemplateMiner()
        add = miner.add
        for line in lines:
            add(raw_message(line))
        return miner

    def streaming_drain3(lines: list[str]) -> Any:
        miner = drain3_miner(None)
        add = miner.add_log_message
        for line in lines:
            add(line)
        return miner

    def report(inp: str, label: str, n: int, seconds: float, miner: TemplateMiner | int | None) -> None:
        if isinstance(miner, TemplateMiner):
            counts = f"{len(miner.templates())} | {miner.evicted} | {miner.merged}"
        else:
            counts = f"{miner if miner is not None else '-'} | - | -"
        print(f"| {inp} | {label} | {n:,} | {seconds:.2f} | {n / seconds:,.0f} | {counts} |", flush=True)

    def measure(inp: str, messages: list[str], raw_lines: list[str]) -> None:
        seconds, miner = timed(streaming_loglens, messages)
        report(inp, "LogLens", len(messages), seconds, miner)
        seconds, miner = timed(streaming_loglens_raw, raw_lines)
        report(inp, "LogLens --raw", len(raw_lines), seconds, miner)
        seconds, _ = timed(lambda lines: [raw_message(line) for line in lines], raw_lines)
        report(inp, "(header split only)", len(raw_lines), seconds, None)
        if have_drain3:
            seconds, d3 = timed(streaming_drain3, messages)
            report(inp, "Drain3 default", len(messages), seconds, len(d3.drain.clusters))

    measure(f"concatenation ({len(systems)} sys)", all_messages, all_raw)
    if have_drain3:
        total = 0.0
        for name, messages, _ in per_system:
            settings = LOGHUB_DRAIN.get(name, {"regex": [], "st": 0.4, "depth": 4})
            seconds, _ = timed(lambda ms, s=settings: run_drain3(ms, s), messages)
            total += seconds
        report(f"concatenation ({len(systems)} sys)", "Drain3 Loghub", len(all_messages), total, None)
    if args.stream_lines > 0:
        n = args.stream_lines
        stream_msg = make_stream(all_messages, n)
        stream_raw = make_stream(all_raw, n, header=lambda line: len(line) - len(raw_message(line)))
        measure(f"stream of {n:,} lines", stream_msg, stream_raw)
    if args.app_lines > 0:
        app_raw, app_msg = app_logs(args.app_lines)
        measure(f"generated app logs ({len(app_raw):,} lines)", app_msg, app_raw)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
