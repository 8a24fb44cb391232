"""Header-splitting accuracy on the loghub-2k samples.

For each system, the share of lines whose message (``line[message_offset:]`` from
:func:`loglens.parse.split_header`) equals the ``Content`` column of the structured CSV, after
whitespace normalisation. Reads ``../shared/datasets/loghub-2k`` (or the directory given as the
first argument). Run: ``.venv/bin/python bench/header_accuracy.py [-v]``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from loglens.parse import header as header_module
from loglens.parse import split_header

SYSTEMS = ("HDFS", "Hadoop", "Spark", "Zookeeper", "BGL", "Linux", "Apache", "OpenSSH")
DEFAULT_ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "loghub-2k"


def _norm(text: str) -> str:
    return " ".join(text.split())


def _slow(line: str) -> header_module.Header:
    header_module.FAST_PATHS[0] = False
    try:
        return split_header(line)
    finally:
        header_module.FAST_PATHS[0] = True


def check(root: Path, system: str, verbose: bool = False) -> tuple[int, int, int]:
    """(matching lines, total lines, lines where the fast paths disagree with the scanner)."""
    folder = root / system
    with open(folder / f"{system}_2k.log", encoding="utf-8", errors="replace", newline="") as fh:
        lines = fh.read().split("\n")
    with open(folder / f"{system}_2k.log_structured.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    good = 0
    shown = 0
    differ = 0
    for row, line in zip(rows, lines, strict=False):
        line = line.rstrip("\r")
        header = split_header(line)
        slow = _slow(line)
        if slow != header:
            differ += 1
            if verbose:
                print(f"  {system} FAST/SLOW DIFFER: {line[:120]!r}\n    {header}\n    {slow}")
        if _norm(line[header.message_offset :]) == _norm(row["Content"]):
            good += 1
        elif verbose and shown < 5:
            shown += 1
            print(f"  {system} MISS: {line[:150]!r}\n    got: {line[header.message_offset :][:100]!r}")
    return good, len(rows), differ


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    root = Path(args[0]) if args else DEFAULT_ROOT
    if not root.is_dir():
        print(f"no loghub-2k data at {root}", file=sys.stderr)
        return 1
    worst = 100.0
    for system in SYSTEMS:
        good, total, differ = check(root, system, verbose)
        pct = 100.0 * good / total if total else 0.0
        worst = min(worst, pct)
        note = f"  ({differ} lines where fast paths != scanner)" if differ else ""
        print(f"{system:10s} {good:5d}/{total:<5d} {pct:6.2f}%{note}")
    print(f"{'worst':10s} {worst:6.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
