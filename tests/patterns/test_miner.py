"""The streaming miner: grouping, generalisation with stable ids, restarts, the cap."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from loglens.model import Template
from loglens.patterns.miner import EVIDENCE, TemplateMiner, collapse_wildcards, merge_token


def texts(miner: TemplateMiner) -> set[str]:
    return {t.text for t in miner.templates()}


def test_masked_variables_group_at_once() -> None:
    m = TemplateMiner()
    a = m.add("Received block blk_-1 of size 67108864 from /10.250.10.6")
    b = m.add("Received block blk_-2 of size 3 from /10.250.14.224")
    assert a == b >= 1
    assert texts(m) == {"Received block <*> of size <*> from <*>"}
    t = m.get(a)
    assert t is not None and t.count == 2


def test_different_events_stay_apart() -> None:
    m = TemplateMiner()
    ids = {m.add("cupsd startup succeeded"), m.add("cupsd shutdown succeeded")}
    ids |= {m.add("Failed password for root from 1.2.3.4 port 22 ssh2")}
    ids |= {m.add("Failed none for root from 1.2.3.4 port 22 ssh2")}
    assert len(ids) == 4


def test_generalisation_keeps_the_id_and_records_the_alias() -> None:
    m = TemplateMiner()
    first = m.add("Invalid user webmaster from 1.2.3.4")
    # Two distinct names are not yet evidence that the position is a variable.
    m.add("Invalid user admin from 1.2.3.5")
    assert m.get(first) is not None and m.get(first).text == "Invalid user webmaster from <*>"  # type: ignore[union-attr]
    for name in ("test", "oracle", "guest"):
        assert m.add(f"Invalid user {name} from 1.2.3.6") == first
    template = m.get(first)
    assert template is not None
    assert template.text == "Invalid user <*> from <*>"
    assert "Invalid user webmaster from <*>" in template.aliases
    # The second name's own template was merged into the general one.
    assert texts(m) == {"Invalid user <*> from <*>"}
    assert m.merged == 1
    assert m.add("Invalid user admin from 1.2.3.5") == first
    assert m.resolve(first + 1) == first
    assert EVIDENCE >= 2


def test_young_template_generalises_where_masking_found_a_variable() -> None:
    m = TemplateMiner()
    a = m.add("reverse mapping checking getaddrinfo for ns.example.com [1.2.3.4] failed")
    b = m.add("reverse mapping checking getaddrinfo for 5.6.7.8 [5.6.7.8] failed")
    assert a == b
    t = m.get(a)
    assert t is not None and t.text == "reverse mapping checking getaddrinfo for <*> [<*>] failed"
    assert t.aliases == ["reverse mapping checking getaddrinfo for ns.example.com [<*>] failed"]


def test_key_value_generalises_the_value_only() -> None:
    m = TemplateMiner()
    ids = [m.add(f"session opened for user={u} by uid=0 and more words") for u in ("a", "bb", "ccc", "dd")]
    assert len({m.resolve(i) for i in ids}) == 1
    assert texts(m) == {"session opened for user=<*> by uid=<*> and more words"}


def test_variable_first_word_needs_more_evidence() -> None:
    m = TemplateMiner()
    programs = [f"prog{c}.exe" for c in "abcdefgh"]
    ids = [m.add(f"{p} - proxy.example.com:5070 open through proxy proxy.example.com:5070 HTTPS") for p in programs]
    assert len(set(ids[6:])) == 1
    assert "<*> - <*> open through proxy <*> HTTPS" in texts(m)
    # A short message keeps its first word.
    m2 = TemplateMiner()
    for d in ("cupsd", "sdpd", "hcid", "klogd", "syslogd", "portmap", "irqbalance"):
        m2.add(f"{d} startup succeeded")
    assert "<*> startup succeeded" not in texts(m2)


def test_drain_changes_then_load_keeps_ids() -> None:
    m = TemplateMiner()
    lines = [
        "Invalid user webmaster from 1.2.3.4",
        "Invalid user admin from 1.2.3.5",
        "Invalid user test from 1.2.3.6",
        "Accepted password for root from 1.2.3.4 port 22 ssh2",
        "PacketResponder 1 for block blk_38865049064139660 terminating",
    ]
    ids = [m.add(line, 1_000 + i) for i, line in enumerate(lines)]
    saved = {t.id: t for t in m.drain_changes()}
    assert m.drain_changes() == []
    assert {m.resolve(i) for i in ids} <= set(saved)
    restarted = TemplateMiner()
    restarted.load(saved.values())
    # The merged template stays merged; the live ones match the same messages with the same ids.
    assert {t.id for t in restarted.templates()} == {t.id for t in m.templates()}
    for line, tid in zip(lines, ids, strict=True):
        assert restarted.add(line) == m.resolve(tid)
    assert restarted.add("Invalid user nobody from 9.9.9.9") == m.resolve(ids[0])
    # New templates get new ids.
    new = restarted.add("something else entirely")
    assert new > max(saved)


def test_drain_changes_reports_counts_and_times() -> None:
    m = TemplateMiner()
    tid = m.add("job 1 done", 100)
    m.add("job 2 done", 50)
    m.add("job 3 done", 300)
    (t,) = m.drain_changes()
    assert (t.id, t.text, t.count, t.first_seen, t.last_seen) == (tid, "job <*> done", 3, 50, 300)
    m.add("job 4 done", 400)
    (t,) = m.drain_changes()
    assert (t.count, t.last_seen) == (4, 400)


def test_cap_evicts_least_recently_seen() -> None:
    m = TemplateMiner(max_templates=3)
    a = m.add("alpha event happened")
    b = m.add("beta event happened here")
    c = m.add("gamma event")
    m.add("alpha event happened")  # a is now more recent than b
    d = m.add("delta")
    assert m.evicted == 1
    live = {t.id for t in m.templates()}
    assert live == {a, c, d}
    assert m.get(b) is None
    e = m.add("beta event happened here")  # comes back with a new id
    assert e not in (a, b, c, d)
    assert m.evicted == 2
    assert len(m.templates()) == 3


def test_multiline_message_uses_first_line() -> None:
    m = TemplateMiner()
    trace_a = (
        "Unexpected exception causing shutdown while sock still open\n"
        "java.io.IOException: Broken pipe\n\tat sun.nio.ch.FileDispatcherImpl.write0(Native Method)"
    )
    trace_b = (
        "Unexpected exception causing shutdown while sock still open\n"
        "java.net.SocketException: Connection reset\n\tat java.net.SocketInputStream.read(Unknown Source)"
    )
    a = m.add(trace_a)
    assert m.add(trace_b) == a
    assert m.add("Unexpected exception causing shutdown while sock still open") == a
    assert texts(m) == {"Unexpected exception causing shutdown while sock still open"}
    assert m.add("\nsecond line is the first non-blank") == m.add("second line is the first non-blank")


def test_add_many_matches_add() -> None:
    lines = ["a 1", "a 2", "b x y z"]
    one = TemplateMiner()
    many = TemplateMiner()
    assert many.add_many(lines, [1, 2, 3]) == [one.add(x) for x in lines]
    assert many.add_many(lines, []) == [one.add(x) for x in lines]


def test_load_restores_counts_and_aliases() -> None:
    m = TemplateMiner()
    m.load([Template(id=7, text="disk <*> is full", count=5, first_seen=1, last_seen=2, aliases=["disk sda is full"])])
    assert m.add("disk /dev/sdb1 is full", 3) == 7
    t = m.get(7)
    assert t is not None and (t.count, t.aliases, t.last_seen) == (6, ["disk sda is full"], 3)
    assert m.add("other") == 8


def test_helpers() -> None:
    assert merge_token("user=root", "user=bob") == "user=<*>"
    assert merge_token("(yarn)", "(bob)") == "(<*>)"
    assert merge_token("abc", "xyz") == "<*>"
    assert collapse_wildcards(["delete", "<*>", "<*>", "<*>", "<*>", "<*>", "<*>", "now"]) == ["delete", "<*>", "now"]
    assert collapse_wildcards(["a", "<*>", "<*>", "<*>", "<*>", "<*>"]) == ["a", "<*>"]
    assert collapse_wildcards(["init", "<*>", "<*>", "<*>", "<*>"]) == ["init", "<*>", "<*>", "<*>", "<*>"]


def test_shape_caches_respect_kept_digits() -> None:
    m = TemplateMiner()
    a = m.add("Failed password for root from 1.2.3.4 port 22 ssh2")
    assert m.add("Failed password for root from 1.2.3.5 port 23 ssh2") == a  # same shape
    assert m.add("Failed password for root from 1.2.3.5 port 2345 ssh2") == a  # longer number
    b = m.add("Failed password for root from 1.2.3.5 port 23 ssh3")  # same shape, other name
    assert b != a
    t = m.get(b)
    assert t is not None and t.text.endswith("ssh3")
    # Dates: a year is part of the date-time, a longer number is not.
    c = m.add("timed out at Fri Jun 17 07:07:00 2005")
    assert m.add("timed out at Fri Jun 17 07:07:00 20051") != c
    assert m.add("timed out at Sat Jul 18 08:08:01 2006") == c


def test_load_over_the_cap_keeps_the_most_recent() -> None:
    saved = [Template(id=i, text=f"event number {i} kind", count=1, last_seen=i) for i in range(1, 11)]
    m = TemplateMiner(max_templates=4)
    m.load(saved)
    assert {t.id for t in m.templates()} == {7, 8, 9, 10}
    assert m.evicted == 0  # restoring is not evicting
    assert m.add("brand new message") == 11


def test_merged_template_resolves_and_counts_stay_per_id() -> None:
    m = TemplateMiner()
    ids = [m.add(f"Accepted password for {u} from 10.0.0.1 port 22 ssh2") for u in ("ann", "bob", "cid")]
    general = m.resolve(ids[1])
    assert general == ids[0] and m.get(ids[1]) is None
    t = m.get(general)
    assert t is not None and t.text == "Accepted password for <*> from <*> port <*> ssh2"
    assert t.count == 2  # ann and cid; bob's message keeps the merged id
    assert m.resolve(12345) == 0
    assert m.drain_merges() == [(ids[1], ids[0])]
    assert m.drain_merges() == []


def test_very_long_message_is_templated_by_its_start() -> None:
    m = TemplateMiner()
    a = m.add("payload " + "x" * 10_000 + " 1")
    b = m.add("payload " + "x" * 10_000 + " 2 and more")
    assert a == b
    t = m.get(a)
    assert t is not None and len(t.text) <= 4_000


def test_span_cache_places_like_masking_does() -> None:
    """Lines that differ in their hex ids, UUIDs and paths share a span-cache key; the cache must
    place them exactly as masking each line would (the same ids as a miner without it)."""
    lines = [
        "host-08 [req-02b4c0f174e75fdb] pool stats: active=24",
        "host-09 [req-ff05726dfaefb64c] pool stats: active=7",
        "host-10 [req-3e961e9dc03d679c] pool stats: active=11",
        "refund bf55cb8d-9f73-4e2c-81b0-f9687a76d31a processed for order 844129112",
        "refund 0e14bad8-57c3-41a5-9cb6-6def67709848 processed for order 12",
        '10.188.246.203:47810 - "POST /payments/0e14bad8-57c3-41a5-9cb6-6def67709848/capture HTTP/1.1" 403',
        '10.18.26.3:4781 - "POST /payments/ab14bad8-57c3-41a5-9cb6-6def67709848/capture HTTP/1.1" 200',
        '10.18.26.3:4781 - "POST /payments/ab14bad8-57c3-41a5-9cb6-6def67709848/capture HTTP/2.0" 200',
        "SSH-22ab [req-aa] x",
        "SSH-23cd [req-bb] x",
        "at Fri Jun 17 07:07:00 2005 job-1a2b done",
        "at Fri Jun 17 07:07:00 20051 job-3c4d done",
    ]
    m = TemplateMiner()
    plain = TemplateMiner()
    plain._span_place = lambda line, shape, short: plain._place(line, shape, short)[0]  # type: ignore[method-assign]
    for line in lines * 3:
        assert m.add(line) == plain.add(line), line
    assert [t.text for t in m.templates()] == [t.text for t in plain.templates()]
    assert m._span_cache  # the span cache was used


def test_lines_with_random_ids_do_not_fill_the_shape_caches() -> None:
    """A random hex id gives each line a shape no later line has: such lines are placed through
    the span cache without filling the shape caches (whose room is for shapes that come back),
    and get the ids a miner without that shortcut gives."""
    rng = random.Random(7)
    lines = [f"[req-{rng.getrandbits(64):016x}] user {rng.randrange(10**6)} logged in from {host}"
             for host in ("web-1", "web-2", "api-3") for _ in range(50)]
    lines += ["sha256 digest 12 ok", "sha256 digest 345 ok", "key aa3542a4 expired", "key 0e14bad8 expired"]
    m = TemplateMiner()
    plain = TemplateMiner()
    plain._span_place = lambda line, shape, short: plain._place(line, shape, short)[0]  # type: ignore[method-assign]
    for line in lines:
        assert m.add(line) == plain.add(line), line
    assert [t.text for t in m.templates()] == [t.text for t in plain.templates()]
    assert len(m._cache) < 10  # only lines that reached full masking were remembered by shape
    assert m.add("sha256 digest 6789 ok") == m.add("sha256 digest 1 ok")  # words with hex letters and digits


_PIECES = st.sampled_from([
    "job", "took", "at", "size", "of", "done", "T", "B", "KB", "GiB", "EB", "e", ":", ",", "-", "/", " ",
    "[", "]", "=", "10", "7", "07:07:00", "12:30", "2005", "3ccbdd45", "0e14bad8-57c3", "/var/log/app-2",
    "req-9f2a", "1.5", "93.0 B", "2.3 GiB", "10.0.0.1:8080", "Fri Jun 17 07:07:00 2005", "x86_64",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_PIECES, min_size=1, max_size=12).map(" ".join), min_size=1, max_size=12))
def test_span_cache_places_like_masking_does_for_any_line(lines: list[str]) -> None:
    """The span cache answers a line by its key alone (the date-time and size checks are made only
    when the key is new): over lines mixing ids, paths, numbers, times and sizes, it gives the ids
    of a miner without it."""
    # The same lines with longer numbers have the same keys (2005 and 20051 alike).
    longer = [re.sub(r"\d+", lambda found: found.group() + "1", line) for line in lines]
    m = TemplateMiner()
    plain = TemplateMiner()
    plain._span_place = lambda line, shape, short: plain._place(line, shape, short)[0]  # type: ignore[method-assign]
    for line in (lines + longer) * 2:
        assert m.add(line) == plain.add(line), line
