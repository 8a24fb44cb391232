"""Split the header (timestamp, level, pid, thread, host, component) off a plain-text log line.

No per-system format string is needed: the splitter reads a leading timestamp and then a short run
of header tokens in any order, and stops at the first token that does not look like header.

Tokens after the timestamp (each optional, any order):

* a level word (``INFO``, ``WARN``, ``info``, ``ERROR:``...) or a bracketed level (``[notice]``,
  Apache 2.4 ``[core:error]``);
* a number (pid: HDFS ``081109 203615 148 INFO``, Spring Boot ``INFO 12345 ---``);
* a bracketed thread (``[main]``, ``[IPC Server handler 5 on 8020]``, nested brackets allowed);
  Zookeeper-style ``[thread:Class@123]`` also gives the component; Apache 2.4 ``[pid 1:tid 2]``;
* separators ``-``, ``--``, ``---``, ``|``, ``:``;
* a host (only after a syslog or RFC 3339 ``T``+zone timestamp, and only when a ``tag:`` follows);
* a component: ``dfs.DataNode$PacketResponder:``, ``sshd[24200]:``, ``sshd(pam_unix)[19939]:``,
  ``kernel:``, ``syslogd 1.4.1:``, or a logger name followed by `` - `` / `` : ``
  (log4j ``c.e.Foo - msg``, Spring Boot ``o.s.b.App   : msg``). A ``name:`` component ends the
  header.

Number and thread tokens are provisional: they only count as header when a later header token
confirms them (so ``[client 1.2.3.4] File does not exist`` after an Apache level stays message).
A separator ends the header once a level has been seen.

Whole-line shapes recognised first: BGL (``- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11
2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO msg``: the epoch gives the UTC
time, the textual time only its fraction), glog/klog (``E0605 10:00:00.123456 1 main.go:10] msg``),
RFC 5424 (``<34>1 2003-10-11T22:14:15.003Z host app procid msgid - msg``), and a syslog ``<PRI>``
prefix (the level comes from the severity). A line may also start with a level (``[ERROR] x``,
``WARN  [main] c.e.Foo - x``), optionally followed by a timestamp.

Speed: the common layouts have one-regex fast paths, and the layout of the previous line is tried
first as a single compiled regex (timestamp + tail). These module-level caches only choose *which*
equivalent path runs, never the result (tests compare every path with the plain scanner), so they
are safe to share between threads under the GIL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loglens.model import Level
from loglens.parse.levels import normalize_level
from loglens.parse.timestamps import (
    KIND_HOSTY,
    TsFormat,
    _frac_ns,
    _leading,
    _match_at,
    _pick,
    _yearless,
    leading_ex,
    ts_from_groups,
)

__all__ = ["Header", "split_header"]


@dataclass(slots=True)
class Header:
    """What :func:`split_header` found. ``message_offset`` is where the message starts."""

    timestamp: int | None
    level: Level
    message_offset: int
    fields: dict[str, str] = field(default_factory=dict)


_T, _D, _I, _W, _E, _F = Level.TRACE, Level.DEBUG, Level.INFO, Level.WARN, Level.ERROR, Level.FATAL

# Level words accepted in header position (a trailing ':' is allowed).
_HEADER_LEVELS: dict[str, Level] = {
    "TRACE": _T, "DEBUG": _D, "INFO": _I, "NOTICE": _I, "WARN": _W, "WARNING": _W, "ERROR": _E,
    "ERR": _E, "SEVERE": _E, "FATAL": _F, "CRITICAL": _F, "CRIT": _F, "EMERG": _F, "ALERT": _F,
    "VERBOSE": _T, "FINE": _D, "FINER": _T, "FINEST": _T,
    "DBG": _D, "INF": _I, "WRN": _W, "FTL": _F, "VRB": _T, "TRC": _T, "CRT": _F,
    "trace": _T, "debug": _D, "info": _I, "notice": _I, "warn": _W, "warning": _W, "error": _E,
    "fatal": _F, "critical": _F,
    "Trace": _T, "Debug": _D, "Info": _I, "Information": _I, "Notice": _I, "Warn": _W,
    "Warning": _W, "Error": _E, "Fatal": _F, "Critical": _F,
}  # fmt: skip

_SYSLOG_SEVERITY = (_F, _F, _F, _E, _W, _I, _I, _D)

# A token: word, optional [pid], optional ':'; must end at whitespace or end of line.
_WORD = re.compile(r"([^\s\[\]]+)(?:\[(\d+)\])?(:?)(?=\s|$)")
_SEP = re.compile(r"(?:-{1,3}|\||:)(?=\s|$)")
_VERSION_TAG = re.compile(r"(\d[\w.]*):(?=\s|$)")
_ZK_TAIL = re.compile(r"[A-Za-z_$][\w$.]*@\d+")
_PID_TID = re.compile(r"(\d+)#(\d+)")
_APACHE_PID = re.compile(r"pid (\d+)(?::tid (\d+))?")

_BGL = re.compile(
    r"(\S+) (\d{9,10}) \d{4}\.\d\d\.\d\d (\S+) \d{4}-\d\d-\d\d-\d\d\.\d\d\.\d\d(?:\.(\d{1,9}))? \S+ "
    r"(\S+) (\S+) ([A-Z]+)(?: +|$)"
)
_GLOG = re.compile(r"([IWEF])(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))? +(\d+) ([^\s:\]]+:\d+)\] ?")
_GLOG_LEVEL = {"I": _I, "W": _W, "E": _E, "F": _F}
_PRI = re.compile(r"<(\d{1,3})>(1 )?")
_RFC5424_REST = re.compile(r" +(\S+) (\S+) (\S+) (\S+) (?:-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: |$)")
_LOGGERISH = re.compile(r"[\w$.\-/]+$")

_NO_HEADER_LEVEL = Level.UNKNOWN

# --- fast paths ---------------------------------------------------------------------------------
# Whole header tails of the common layouts, one regex each. Each gives exactly what the general
# token scanner (_scan) gives for the lines it accepts (a test checks this on many lines); lines
# where a regex or a guard fails go to the scanner. The layouts are mutually exclusive, so trying
# the previous line's layout first is only a shortcut. The layout that worked last is also
# compiled together with its timestamp format into one regex (see _layout), so a run of lines in
# the same format costs one regex match.
_THREAD_RE = r"\[((?:[^\[\]]++|\[[^\[\]]*+\])*+)\]"  # one level of nesting
_Tail = tuple[Level, dict[str, str]]


def _zk_split(thread: str) -> tuple[str, str] | None:
    """Zookeeper's ``[%t:%C{1}@%L]``: ("QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181",
    "FastLeaderElection") from "QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774"."""
    head, sep, tail = thread.rpartition(":")
    if not sep or "@" not in tail or _ZK_TAIL.fullmatch(tail) is None:
        return None
    return head, tail[: tail.rindex("@")]


def _thread_ok(thread: str | None) -> bool:
    return thread is None or (len(thread) <= 250 and not thread.startswith("pid "))


def _comp(comp: str, colon: str | None) -> str | None:
    """The component of a ``name:`` / ``name[pid]:`` token, or None when the scanner would not
    take it as one."""
    if colon is None:
        if comp[-1] != ":" or len(comp) < 2:
            return None
        comp = comp[:-1]
    if (comp[0].isupper() and not _is_component(comp)) or ("#" in comp and _PID_TID.fullmatch(comp) is not None):
        return None
    return comp


# Post-processing functions get the match groups; groups 0-2 are the timestamp's (key, fraction,
# zone), the tail's groups start at 3.

# [pid] LEVEL [thread] component:   (HDFS, Spark, Hadoop, log4j "%d %p [%t] %c: %m")
_TAIL_A = (
    r"[ \t]+(?:(\d+)[ \t]+)?([A-Za-z]+):?[ \t]+(?:\[([^\[\]]*+)\][ \t]+)?"
    r"([^\s\[\]]+)(?:\[(\d+)\](:))?(?=\s|$)[ \t]*"
)


def _post_a(g: tuple[Any, ...]) -> _Tail | None:
    level = _HEADER_LEVELS.get(g[4])
    if level is None:
        return None
    comp: str | None = _comp(g[6], g[8])
    if comp is None:
        return None
    thread = g[5]
    pid = g[7] or g[3]
    if thread is None:
        if pid is None:
            return level, {"component": comp}
        return level, {"pid": pid, "component": comp}
    if len(thread) > 250 or thread.startswith("pid "):
        return None
    if pid is None:
        return level, {"thread": thread.strip(), "component": comp}
    return level, {"pid": pid, "thread": thread.strip(), "component": comp}


# - LEVEL [thread] -   (Zookeeper, log4j "%d - %-5p [%t:%C{1}@%L] - %m")
_TAIL_B = r"[ \t]+-[ \t]+([A-Za-z]+):?[ \t]+" + _THREAD_RE + r"[ \t]+-(?=\s|$)[ \t]*"


def _post_b(g: tuple[Any, ...]) -> _Tail | None:
    level = _HEADER_LEVELS.get(g[3])
    thread = g[4]
    if level is None or len(thread) > 250 or thread.startswith("pid "):
        return None
    thread = thread.strip()
    zk = _zk_split(thread)
    if zk is None:
        return level, {"thread": thread}
    return level, {"thread": zk[0], "component": zk[1]}


# host program[pid]:   (syslog, after a syslog / RFC 3339 T+zone timestamp only)
_TAIL_C = r"[ \t]+([^\s\[\]:]+)[ \t]+([^\s\[\]]+)(?:\[(\d+)\](:))?(?=\s|$)[ \t]*"


def _post_c(g: tuple[Any, ...]) -> _Tail | None:
    host = g[3]
    cpid = g[5]
    if host in _HEADER_LEVELS or host in _SEP_WORDS or host.isdigit():
        return None
    if cpid is None and g[4].rstrip(":") in _HEADER_LEVELS:
        return None
    comp = _comp(g[4], g[6])
    if comp is None:
        return None
    if cpid is None:
        return _NO_HEADER_LEVEL, {"host": host, "component": comp}
    return _NO_HEADER_LEVEL, {"host": host, "pid": cpid, "component": comp}


# LEVEL pid --- [app] [thread] logger : (Spring Boot)
_TAIL_D = (
    r"[ \t]+([A-Za-z]+):?[ \t]+(\d+)[ \t]+---[ \t]+(?:\[([^\[\]]*+)\][ \t]*)?\[([^\[\]]*+)\][ \t]+"
    r"([\w$.\-/]+)[ \t]+:(?=\s|$)[ \t]*"
)


def _post_d(g: tuple[Any, ...]) -> _Tail | None:
    level = _HEADER_LEVELS.get(g[3])
    if level is None:
        return None
    thread = g[6]
    comp = g[7]
    if not (_thread_ok(g[5]) and _thread_ok(thread) and _is_component(comp)):
        return None
    return level, {"pid": g[4], "thread": thread.strip(), "component": comp}


# LEVEL or [level], then a plain first message word (Apache error log, "%d %p %m")
_TAIL_E = (
    r"[ \t]+(?:\[([A-Za-z]+)\]|([A-Za-z]+):?)[ \t]+"
    r"(?=([^\s\[\]\-|:<][^\s\[\]]*+)(?<!:)(?:[ \t]++(?!(?:-{1,3}|\||:)(?:\s|$))|[ \t]*$))"
)


def _post_e(g: tuple[Any, ...]) -> _Tail | None:
    first = g[5]
    if first.isdigit():
        return None
    blvl = g[3]
    if blvl is not None:
        level = _bracket_level(blvl)
        if level is _NO_HEADER_LEVEL:
            return None
        return level, {}
    wl = _HEADER_LEVELS.get(g[4])
    if wl is None:
        return None
    return wl, {}


_Post = Callable[[tuple[Any, ...]], "_Tail | None"]
# (tail regex source, post-processing, needs a host-capable timestamp, compiled tail, cache of
# post-processing results by tail groups: header tails repeat far more than timestamps do)
_FastPath = tuple[str, _Post, bool, re.Pattern[str], dict[tuple[Any, ...], Any]]
_FAST: tuple[_FastPath, ...] = tuple(
    (src, post, hosty, re.compile("()()()" + src), {})  # three empty groups stand for the timestamp's
    for src, post, hosty in (
        (_TAIL_A, _post_a, False),
        (_TAIL_E, _post_e, False),
        (_TAIL_C, _post_c, True),
        (_TAIL_B, _post_b, False),
        (_TAIL_D, _post_d, False),
    )
)
_SEP_WORDS = frozenset(("-", "--", "---", "|"))
FAST_PATHS = [True]  # tests switch this off to compare with the scanner
_last_fast: list[_FastPath | None] = [None]


def _fast(line: str, pos: int, hosty: bool) -> tuple[Level, int, dict[str, str], _FastPath] | None:
    last = _last_fast[0]
    for fp in (last, *_FAST) if last is not None else _FAST:
        if fp[2] and not hosty:
            continue
        m = fp[3].match(line, pos)
        if m is not None:
            res = fp[1](m.groups())
            if res is not None:
                _last_fast[0] = fp
                return res[0], m.end(), res[1], fp
    return None


# (combined regex, timestamp format, fast path); groups 1-3 are the timestamp's
_Layout = tuple[re.Pattern[str], TsFormat, _FastPath]
_LAYOUTS: dict[tuple[int, bool, int], _Layout] = {}
_layout: list[_Layout | None] = [None]  # the previous line's
# a whole-line shape (BGL) that matched the previous line: tried first; such lines have no leading
# timestamp, so no layout could match them and the order does not change any result
_special: list[Callable[[str], tuple[int | None, Level, int, dict[str, str]] | None] | None] = [None]
# the last layout seen with each timestamp format (and bracketing), for streams mixing formats
_LAYOUT_BY_FORMAT: dict[tuple[int, bool], _Layout] = {}


def _learn_layout(fmt: TsFormat, bracketed: bool, fp: _FastPath) -> None:
    key = (id(fmt), bracketed, id(fp))
    lay = _LAYOUTS.get(key)
    if lay is None:
        ts = "(?>" + fmt[0].pattern + ")"
        head = r"[ \t]*\[" + ts + r"\]" if bracketed else r"[ \t]*" + ts
        lay = (re.compile(head + fp[0]), fmt, fp)
        _LAYOUTS[key] = lay
    _layout[0] = lay
    _LAYOUT_BY_FORMAT[(id(fmt), bracketed)] = lay


_NO_TAIL = (_NO_HEADER_LEVEL, None)  # cached "post-processing refused these groups"


def _post_cached(fp: _FastPath, g: tuple[Any, ...]) -> _Tail | None:
    """``fp``'s post-processing of the tail groups ``g[3:]``, cached; the fields dict returned is a
    fresh copy the caller may keep."""
    cache = fp[4]
    key = g[3:]
    res = cache.get(key)
    if res is None:
        res = fp[1](g) or _NO_TAIL
        if len(cache) >= 4096:
            cache.clear()
        cache[key] = res
    if res[1] is None:
        return None
    return res[0], dict(res[1])


def _try_layout(lay: _Layout, line: str) -> tuple[int | None, Level, int, dict[str, str]] | None:
    m = lay[0].match(line)
    if m is not None:
        g = m.groups()
        ts = ts_from_groups(lay[1], g[0], g[1], g[2])
        if ts is not None:
            fp = lay[2]
            if not fp[2] or ts[1] == KIND_HOSTY:
                res = _post_cached(fp, g)
                if res is not None:
                    return ts[0], res[0], m.end(), res[1]
    return None


def _bracket_end(line: str, i: int, n: int) -> int:
    """Index just after the ``]`` matching the ``[`` at ``i``; -1 if unbalanced within 256 chars."""
    depth = 0
    limit = min(n, i + 256)
    j = i
    while j < limit:
        c = line[j]
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return -1


def _bracket_level(inner: str) -> Level:
    if len(inner) > 24 or not inner:
        return _NO_HEADER_LEVEL
    if ":" in inner:  # Apache 2.4 [module:level]
        inner = inner.rpartition(":")[2]
    if not inner.isalpha():
        return _NO_HEADER_LEVEL
    lv = _HEADER_LEVELS.get(inner)
    if lv is not None:
        return lv
    return normalize_level(inner)


def _is_component(word: str) -> bool:
    """Whether ``word`` (without its colon) plausibly names a logger/component/program rather
    than being the first word of a message such as ``Failed: ...``."""
    if not word[0].isupper():
        return True
    if any(c in word for c in ".$_/[(@#-0123456789"):
        return True
    return sum(1 for c in word if c.isupper()) >= 2 and not word.isupper()


def _scan(
    line: str, pos: int, fields: dict[str, str], level: Level, hosty: bool, seen_ts: bool
) -> tuple[Level, int, int | None]:
    """Read header tokens from ``pos``. Returns (level, message offset, ns of a timestamp found
    after a leading level or None)."""
    n = len(line)
    commit = pos
    pend_pid: str | None = None
    pend_thread: str | None = None
    pend_comp: str | None = None
    pend_thread2: str | None = None  # an earlier bracket (Spring Boot 3.2 "[app] [thread]")
    seen_level = level is not _NO_HEADER_LEVEL
    late_ts: int | None = None
    while True:
        i = pos
        while i < n and (line[i] == " " or line[i] == "\t"):
            i += 1
        if i >= n:
            break
        c = line[i]
        if c == "[":
            j = _bracket_end(line, i, n)
            if j < 0:
                break
            inner = line[i + 1 : j - 1]
            if not seen_level:
                lv = _bracket_level(inner)
                if lv is not _NO_HEADER_LEVEL:
                    level = lv
                    seen_level = True
                    commit = pos = j
                    if pend_pid is not None:
                        fields["pid"], pend_pid = pend_pid, None
                    if pend_thread is not None:
                        fields["thread"], pend_thread = pend_thread, None
                        pend_thread2 = None
                    if not seen_ts:
                        found = _match_at(line, _skip_blanks(line, pos, n), False)
                        if found is not None:
                            late_ts = found[0]
                            seen_ts = True
                            commit = pos = found[1]
                    continue
            if not seen_ts and not seen_level:
                break
            m = _APACHE_PID.match(inner)
            if m is not None:
                fields["pid"] = m.group(1)
                if m.group(2):
                    fields["thread"] = m.group(2)
                commit = pos = j
                continue
            if pend_thread is not None and pend_thread2 is not None:
                break  # a third unconfirmed bracket: message text
            if pend_thread is not None:
                pend_thread2 = pend_thread
            pend_thread = inner.strip()
            pos = j
            continue
        if c == "-" or c == "|" or c == ":":
            m = _SEP.match(line, i)
            if m is not None:
                if not seen_ts and not seen_level:
                    break
                sep = m.group()
                if pend_pid is not None:
                    fields["pid"], pend_pid = pend_pid, None
                if pend_thread is not None:
                    fields["thread"], pend_thread = pend_thread, None
                    pend_thread2 = None
                if pend_comp is not None:
                    fields["component"], pend_comp = pend_comp, None
                commit = pos = m.end()
                if seen_level and sep != "---" and sep != "--":
                    break
                continue
        m = _WORD.match(line, i)
        if m is None:
            break
        word, pid, colon = m.group(1, 2, 3)
        if not colon and word[-1] == ":":
            word = word[:-1]
            colon = ":"
            if not word:
                break
        if not seen_level and pid is None:
            wl = _HEADER_LEVELS.get(word)
            if wl is not None and (seen_ts or colon or word.isupper()):
                level = wl
                seen_level = True
                commit = pos = m.end()
                if pend_pid is not None:
                    fields["pid"], pend_pid = pend_pid, None
                if pend_thread is not None:
                    fields["thread"], pend_thread = pend_thread, None
                    pend_thread2 = None
                if not seen_ts:
                    found = _match_at(line, _skip_blanks(line, pos, n), False)
                    if found is not None:
                        late_ts = found[0]
                        seen_ts = True
                        commit = pos = found[1]
                continue
        if not seen_ts and not seen_level:
            break
        if colon:
            if pend_comp is not None or not _is_component(word):
                break
            if pid is not None:
                fields["pid"] = pid
            elif pend_pid is not None:
                fields["pid"] = pend_pid
            pend_pid = None
            if pend_thread is not None:
                fields["thread"], pend_thread = pend_thread, None
                pend_thread2 = None
            nginx = _PID_TID.fullmatch(word)
            if nginx is not None:  # nginx "1234#0:" is pid#tid
                fields["pid"], fields["thread"] = nginx.group(1), nginx.group(2)
            else:
                fields["component"] = word
            commit = m.end()
            break
        if pid is None and word.isdigit() and pend_pid is None and "pid" not in fields:
            pend_pid = word
            pos = m.end()
            continue
        nxt = _skip_blanks(line, m.end(), n)
        if hosty and not seen_level and "host" not in fields and pend_comp is None and pid is None:
            m2 = _WORD.match(line, nxt)
            if m2 is not None and (m2.group(3) or m2.group(1)[-1] == ":"):
                fields["host"] = word
                commit = pos = m.end()
                continue
            if m2 is not None and m2.group(2) is None:
                # "syslogd 1.4.1: restart." - a program name followed by a version
                m3 = _VERSION_TAG.match(line, _skip_blanks(line, m2.end(), n))
                if m3 is not None and "host" not in fields:
                    fields["host"] = word
                    fields["component"] = m2.group(1) + " " + m3.group(1)
                    commit = m3.end()
                    break
        if pend_comp is None and nxt < n and line[nxt] in "-:|" and _LOGGERISH.match(word):
            m4 = _SEP.match(line, nxt)
            if m4 is not None and m4.group() in ("-", ":") and _is_component(word):
                pend_comp = word
                pos = m.end()
                continue
        break
    if "thread" in fields and "component" not in fields:
        zk = _zk_split(fields["thread"])
        if zk is not None:
            fields["thread"], fields["component"] = zk
    return level, _skip_blanks(line, commit, n), late_ts


def _starts_with_level(line: str) -> bool:
    """Cheap test: could the first word be a header level (``ERROR``, ``Warning:``)?"""
    parts = line.split(None, 1)
    if not parts:
        return False
    word = parts[0]
    return word in _HEADER_LEVELS or (word[-1:] == ":" and word[:-1] in _HEADER_LEVELS)


def _skip_blanks(line: str, i: int, n: int) -> int:
    while i < n and (line[i] == " " or line[i] == "\t"):
        i += 1
    return i


def _bgl(line: str) -> tuple[int | None, Level, int, dict[str, str]] | None:
    m = _BGL.match(line)
    if m is None:
        return None
    _label, epoch, node, frac, _type, comp, lvl = m.groups()
    ns = int(epoch) * 1_000_000_000 + (_frac_ns(frac) if frac else 0)
    return ns, normalize_level(lvl), m.end(), {"node": node, "component": comp}


def _glog(line: str) -> Header | None:
    m = _GLOG.match(line)
    if m is None:
        return None
    mo, d, h, mi, s = (int(x) for x in m.group(2, 3, 4, 5, 6))
    secs = _yearless(mo, d, h, mi, s)
    if secs is None:
        return None
    ns = secs * 1_000_000_000 + _frac_ns(m.group(7))
    return Header(ns, _GLOG_LEVEL[m.group(1)], m.end(), {"thread": m.group(8), "component": m.group(9)})


def _with_pri(line: str) -> Header | None:
    m = _PRI.match(line)
    if m is None:
        return None
    pri = int(m.group(1))
    if pri > 191:
        return None
    level = _SYSLOG_SEVERITY[pri & 7]
    pos = m.end()
    found = _leading(line[pos:])
    if found is None:
        if m.group(2):  # RFC 5424 with a nil timestamp "-"
            return None
        return Header(None, level, _skip_blanks(line, pos, len(line)), {})
    ns, end, kind = found
    end += pos
    fields: dict[str, str] = {}
    if m.group(2):
        r = _RFC5424_REST.match(line, end)
        if r is not None:
            host, app, procid, _msgid = r.group(1, 2, 3, 4)
            if host != "-":
                fields["host"] = host
            if app != "-":
                fields["component"] = app
            if procid != "-":
                fields["pid"] = procid
            return Header(ns, level, r.end(), fields)
    lv, off, _ = _scan(line, end, fields, _NO_HEADER_LEVEL, kind == KIND_HOSTY, True)
    return Header(ns, level if lv is _NO_HEADER_LEVEL else lv, off, fields)


def split_header(line: str) -> Header:
    """Recognise the header of a plain-text log line; see the module docstring.

    A line without a recognisable header gives ``Header(None, UNKNOWN, 0, {})``. Only the first
    line of ``line`` is looked at. Never raises for str input.
    """
    if not isinstance(line, str):
        raise TypeError(f"line must be str, not {type(line).__name__}")
    ts, level, off, fields = split_fields(line)
    return Header(ts, level, off, fields)


def split_fields(line: str) -> tuple[int | None, Level, int, dict[str, str]]:
    """:func:`split_header` as a tuple (timestamp, level, message offset, fields); for the hot path."""
    nl = line.find("\n")
    if nl >= 0:
        line = line[:nl]
    try:
        special = _special[0]
        if special is not None and FAST_PATHS[0]:
            found = special(line)
            if found is not None:
                return found
        lay = _layout[0]
        if lay is not None and FAST_PATHS[0]:
            # the layout of the previous line, timestamp and tail in one regex
            m = lay[0].match(line)
            if m is not None:
                g = m.groups()
                ts = ts_from_groups(lay[1], g[0], g[1], g[2])
                if ts is not None:
                    fp = lay[2]
                    if not fp[2] or ts[1] == KIND_HOSTY:
                        cache = fp[4]
                        key = g[3:]
                        res = cache.get(key)
                        if res is None:
                            res = fp[1](g) or _NO_TAIL
                            if len(cache) >= 4096:
                                cache.clear()
                            cache[key] = res
                        if res[1] is not None:
                            return ts[0], res[0], m.end(), dict(res[1])
            # another format than the previous line's: the layout last seen with this one
            bracketed = line[:1] == "["
            fmt = _pick(line, 1 if bracketed else 0, True)
            if fmt is not None:
                other = _LAYOUT_BY_FORMAT.get((id(fmt), bracketed))
                if other is not None and other is not lay:
                    found = _try_layout(other, line)
                    if found is not None:
                        _layout[0] = other
                        return found
        return _split(line)
    except (ValueError, IndexError, KeyError, OverflowError, TypeError):
        return None, _NO_HEADER_LEVEL, 0, {}


def _split(line: str) -> tuple[int | None, Level, int, dict[str, str]]:
    found = leading_ex(line)
    if found is not None:
        ns, end, kind, fmt, bracketed = found
        hosty = kind == KIND_HOSTY
        _special[0] = None
        if FAST_PATHS[0]:
            fast = _fast(line, end, hosty)
            if fast is not None:
                _learn_layout(fmt, bracketed, fast[3])
                return ns, fast[0], fast[1], fast[2]
        fields: dict[str, str] = {}
        level, off, _ = _scan(line, end, fields, _NO_HEADER_LEVEL, hosty, True)
        return ns, level, off, fields
    c = line[:1]
    h: Header | None = None
    if c == "-" or "A" <= c <= "Z":
        if c in _GLOG_LEVEL and "0" <= line[1:2] <= "9":
            h = _glog(line)
        if h is None and (line[1:2] == " " or line[:12].find(" ") > 1):
            bgl = _bgl(line)
            if bgl is not None:
                _special[0] = _bgl  # lines without a leading timestamp never go to a layout
                return bgl
    elif c == "<":
        h = _with_pri(line)
    if h is not None:
        return h.timestamp, h.level, h.message_offset, h.fields
    if c == "[" or (("A" <= c <= "Z" or "a" <= c <= "z") and _starts_with_level(line)):
        # a line that starts with a level, perhaps followed by a timestamp
        fields = {}
        level, off, late_ts = _scan(line, 0, fields, _NO_HEADER_LEVEL, False, False)
        if level is not _NO_HEADER_LEVEL:
            return late_ts, level, off, fields
    return None, _NO_HEADER_LEVEL, 0, {}
