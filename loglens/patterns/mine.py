"""``loglens patterns mine FILE``: the template of every line of a file, as CSV or NDJSON.

This is the interface of the accuracy benchmark: one log line per input line, output
``LineId,EventTemplate`` (LineId is the 1-based line number). Nothing is stored.

Mining runs in two passes over the file's messages: the streaming :class:`TemplateMiner` places
every line, then each line is reported with the final text of the template it ended in (a
template generalised or merged after a line was placed is what that line is reported with), so
that every line of one group gets the same template.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections.abc import Iterable, Iterator
from typing import TextIO

import orjson

from loglens.patterns.miner import TemplateMiner

FORMATS = ("csv", "json")


def _open_lines(path: str) -> Iterator[str]:
    """Lines of ``path`` (``-`` is stdin; ``.gz`` is decompressed), without their line ends.

    Bytes that are not UTF-8 are replaced; a ``\\r`` before the ``\\n`` is dropped."""
    if path == "-":
        stream: io.TextIOBase | TextIO = io.TextIOWrapper(
            sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n"
        )
    elif path.endswith(".gz"):
        raw_stream = gzip.open(path, "rb")  # noqa: SIM115 - closed with the wrapper
        stream = io.TextIOWrapper(raw_stream, encoding="utf-8", errors="replace", newline="\n")
    else:
        stream = open(path, encoding="utf-8", errors="replace", newline="\n")  # noqa: SIM115
    try:
        for line in stream:
            yield line.rstrip("\n").rstrip("\r")
    finally:
        if path != "-":
            stream.close()


def raw_message(line: str) -> str:
    """The message part of a raw log line: its header (timestamp, level, pid, component...) cut
    off by :func:`loglens.parse.header.split_header`, with no per-system format."""
    from loglens.parse.header import split_header

    try:
        return line[split_header(line).message_offset :]
    except Exception:  # a header the splitter chokes on must not lose the line
        return line


def mine_lines(lines: Iterable[str], *, raw: bool = False) -> list[str]:
    """The template text of each line, in order (``raw``: the lines still have headers)."""
    miner = TemplateMiner(max_templates=1_000_000)
    add = miner.add
    ids = [add(raw_message(line)) for line in lines] if raw else [add(line) for line in lines]
    texts: dict[int, str] = {}
    for tid in set(ids):
        template = miner.get(miner.resolve(tid))
        texts[tid] = template.text if template is not None else ""
    return [texts[tid] for tid in ids]


def mine_file(path: str, *, raw: bool, fmt: str, out: TextIO) -> None:
    """Print the template of every line of ``path`` to ``out``.

    ``fmt="csv"``: a header ``LineId,EventTemplate`` then one row per line (standard CSV
    quoting); ``fmt="json"``: one ``{"LineId": n, "EventTemplate": "..."}`` object per line.
    ``raw=True`` when the lines still have their headers (timestamp, level, component...).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    templates = mine_lines(_open_lines(path), raw=raw)
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("LineId", "EventTemplate"))
        writer.writerows((i, t) for i, t in enumerate(templates, 1))
    else:
        write = out.write
        for i, t in enumerate(templates, 1):
            write(orjson.dumps({"LineId": i, "EventTemplate": t}).decode())
            write("\n")
