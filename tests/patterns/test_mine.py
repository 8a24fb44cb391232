"""``mine_file``: the exact CSV / NDJSON output the accuracy benchmark reads."""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from pathlib import Path

import pytest

from loglens.patterns.mine import mine_file, mine_lines

LINES = [
    "PacketResponder 1 for block blk_38865049064139660 terminating",
    'Registered signal handlers for [TERM, HUP, INT] "quoted"',
    "PacketResponder 0 for block blk_-6952295868487656571 terminating",
    "",
    "Changing view acls to: yarn,curi",
]


def write(tmp_path: Path, lines: list[str], name: str = "in.log") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_exact(tmp_path: Path) -> None:
    out = io.StringIO()
    mine_file(str(write(tmp_path, LINES)), raw=False, fmt="csv", out=out)
    assert out.getvalue() == (
        "LineId,EventTemplate\n"
        "1,PacketResponder <*> for block <*> terminating\n"
        '2,"Registered signal handlers for [TERM, HUP, INT] ""quoted"""\n'
        "3,PacketResponder <*> for block <*> terminating\n"
        "4,\n"
        '5,"Changing view acls to: yarn,curi"\n'
    )
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["LineId"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[1]["EventTemplate"] == 'Registered signal handlers for [TERM, HUP, INT] "quoted"'


def test_json(tmp_path: Path) -> None:
    out = io.StringIO()
    mine_file(str(write(tmp_path, LINES[:3])), raw=False, fmt="json", out=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows[0] == {"LineId": 1, "EventTemplate": "PacketResponder <*> for block <*> terminating"}
    assert [r["LineId"] for r in rows] == [1, 2, 3]


def test_gzip_crlf_and_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "in.log.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"job 1 done\r\njob 2 done\r\nbad \xff byte\n")
    out = io.StringIO()
    mine_file(str(path), raw=False, fmt="csv", out=out)
    assert out.getvalue() == "LineId,EventTemplate\n1,job <*> done\n2,job <*> done\n3,bad \ufffd byte\n"


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BytesIO(b"a 1\na 2\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", fake)
    out = io.StringIO()
    mine_file("-", raw=False, fmt="csv", out=out)
    assert out.getvalue() == "LineId,EventTemplate\n1,a <*>\n2,a <*>\n"


def test_raw_lines_cut_the_header(tmp_path: Path) -> None:
    raw = [
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_1 terminating",
        "081109 203807 222 INFO dfs.DataNode$PacketResponder: PacketResponder 0 for block blk_-2 terminating",
        "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Executing with tokens:",
        "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
    ]
    templates = mine_lines(raw, raw=True)
    assert templates[0] == templates[1] == "PacketResponder <*> for block <*> terminating"
    assert templates[2] == "Executing with tokens:"
    assert templates[3] == "Invalid user webmaster from <*>"


def test_lines_reported_with_their_final_template() -> None:
    lines = [f"Invalid user {u} from 10.0.0.{i}" for i, u in enumerate(["ann", "bob", "cid", "dan"])]
    assert mine_lines(lines) == ["Invalid user <*> from <*>"] * 4


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        mine_file(str(write(tmp_path, ["x"])), raw=False, fmt="xml", out=io.StringIO())
