"""Masking: each kind of variable becomes ``<*>``, constants stay."""

from __future__ import annotations

import pytest

from loglens.patterns.masking import RULES, compile_rules, mask, mask_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # numbers
        ("took 42 steps", "took <*> steps"),
        ("offset -7 ratio 3.14", "offset <*> ratio <*>"),
        # hex
        ("flags 0x1f at 0xDEADBEEF", "flags <*> at <*>"),
        ("zxid 0x100000010 session 14ed93111f20005", "zxid <*> session <*>"),
        # IPv4 with and without port, with a host/ prefix and a leading /
        ("from 173.234.31.186 port 22", "from <*> port <*>"),
        ("src: /10.250.19.102:54106 dest: /10.250.19.102:50010", "src: <*> dest: <*>"),
        ("at msra-sa-41/10.190.173.170:8030 ok", "at <*> ok"),
        ("[client 1.2.3.4] denied", "[client <*>] denied"),
        # IPv6
        ("peer fe80::1ff:fe23:4567:890a connected", "peer <*> connected"),
        ("peer 2001:db8:0:0:0:0:2:1 connected", "peer <*> connected"),
        # UUID
        ("[instance: 123e4567-e89b-12d3-a456-426614174000] spawned", "[instance: <*>] spawned"),
        # paths (Unix, with a digit, trailing colon kept)
        ("workerEnv.init() ok /etc/httpd/conf/workers2.properties", "workerEnv.init() ok <*>"),
        ("Error loading /bgl/apps/a.rts: invalid", "Error loading <*>: invalid"),
        ("user.dir=/", "user.dir=/"),
        ("Core: C:\\Windows\\winsxs\\amd64_x\\cbscore.dll", "Core: <*>"),
        ("open \\\\srv\\share\\a.txt: ok", "open <*>: ok"),
        # source positions keep the file name; protocol versions are constants
        ("[ib_sm_sweep.c:1455]: at Foo.java:123)", "[ib_sm_sweep.c:<*>]: at Foo.java:<*>)"),
        ("to github.com:443 ok", "to <*> ok"),
        ('"GET /v2/54fadb/servers/detail HTTP/1.1" status: 200 TLSv1.2', '"GET <*> HTTP/1.1" status: <*> TLSv1.2'),
        # URLs and e-mail addresses
        ("see http://wiki.apache.org/hadoop/NoRouteToHost.", "see <*>."),
        ("Connecting to driver: spark://Sched@10.10.34.11:48069", "Connecting to driver: <*>"),
        ("mail from alice@example.com rejected", "mail from <*> rejected"),
        # durations and sizes
        ("done in 12ms, retry after 1.5s", "done in <*>, retry after <*>"),
        ("took 12 ms", "took <*> ms"),
        ("size 10KB and 2.3 GiB", "size <*> and <*>"),
        ("(estimated size 93.0 B, free 317.1 KB)", "(estimated size <*>, free <*>)"),
        # block ids and other ids with digits
        ("Deleting block blk_-1608999687919862906 file x", "Deleting block <*> file x"),
        ("Block broadcast_0_piece0 stored", "Block <*> stored"),
        ("attempt_1445144423722_0020_m_000000_0 done", "<*> done"),
        # dates and times, also written over several tokens
        ("on 2015-10-18 at 18:01:47,978", "on <*> at <*>"),
        ("connection from 1.2.3.4 () at Fri Jun 17 07:07:00 2005", "connection from <*> () at <*>"),
        ("built on 06/10/2013 17:26 GMT", "built on <*>"),
        # key=value keeps the key; key:value too
        ("uid=0 euid=0 tty=NODEVssh", "uid=<*> euid=<*> tty=NODEVssh"),
        ("r24=0x0ffea4c8 LIFO batch:1", "r24=<*> LIFO batch:<*>"),
        # punctuation around a variable stays
        ("Running task 0.0 in stage 1.0 (TID 5).", "Running task <*> in stage <*> (TID <*>)."),
        ("Received disconnect from 1.2.3.4: 11: Bye Bye", "Received disconnect from <*>: <*>: Bye Bye"),
        ("10.251.30.85:50010:Got exception", "<*>:Got exception"),
        # a name before a number is kept
        ("generating core.2275", "generating core.<*>"),
        ("jetty-6.1.26 PS/2 Reader #1", "jetty-<*> PS/<*> Reader #<*>"),
        ("enable.........0", "enable.........<*>"),
        ("Event@7317849d", "Event@<*>"),
        # names holding a digit are constants
        ("password for root ssh2", "password for root ssh2"),
        ("jk2_init() Slf4jLogger log4j.properties", "jk2_init() Slf4jLogger log4j.properties"),
        ("L2 cache over IPv4", "L2 cache over IPv4"),
        ("in org.apache.hadoop.mapreduce.v2.api.Foo$Bar", "in org.apache.hadoop.mapreduce.v2.api.Foo$Bar"),
        ("user u0 and x1 logged in", "user <*> and <*> logged in"),
        # no variable at all
        ("Interrupting SendWorker", "Interrupting SendWorker"),
    ],
)
def test_mask(text: str, expected: str) -> None:
    assert mask(text) == expected
    assert mask_tokens(text) == expected.split()


def test_mask_tokens_is_digit_value_independent() -> None:
    # The shape cache must not leak one token's kept digits into another's.
    assert mask_tokens("ssh2 ssh3") == ["ssh2", "ssh3"]
    assert mask_tokens("blk_123 blk_456") == ["<*>", "<*>"]


def test_rules_are_documented_and_compile() -> None:
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))
    for kind in ("number", "hex", "ipv4", "ipv6", "uuid", "path", "url", "email", "quantity", "block", "datetime"):
        assert kind in names
    assert all(r.description for r in RULES)
    compile_rules(RULES)


def test_phrase_hints_are_necessary() -> None:
    # The hints only skip the phrases when they cannot match.
    from loglens.patterns.masking import DATETIME_HINT, DATETIME_PHRASE, SIZE_HINT, SIZE_PHRASE, clock_hint

    for text in (
        "at Fri Jun 17 07:07:00 2005 ok",
        "2015-10-18 18:01:47,978 INFO x",
        "at 18:01:47,978 ok",
        "Jun 17, 2005 7:07:00 PM",
        "06/10/2013 17:26 GMT",
    ):
        assert DATETIME_PHRASE.search(text) is not None
        assert DATETIME_HINT(text) is not None
        assert clock_hint(text)
    assert DATETIME_HINT("from 10.0.0.1:8080 at 12:3") is None
    assert not clock_hint("from 10.0.0.1:8080 ok")
    assert SIZE_PHRASE.search("freed 2.3 GiB") is not None and SIZE_HINT("freed 2.3 GiB") is not None
    assert SIZE_HINT("ORDER BY id") is None


def test_variable_spans_mask_alike() -> None:
    """Tokens that differ only in their variable spans have one key and mask alike; a key is only
    trusted when what precedes the spans is a word (``spans_safe``)."""
    import random

    from loglens.patterns.masking import _PATTERN, HAS_DIGIT, SPAN_MARK, VARIABLE_SPAN, span_key, spans_safe

    rnd = random.Random(7)
    pieces = [
        "req-", "host-", "SSH-", "HTTP/", "ab", "x", "-", "--", "/", ".", "..", ":", "@", "#", "=", "_", "$",
        "[", "]", "(", ")", ",", "'", "<", "Foo", ".java:", "http://", "ms", "KB", "Dec", "e", "f", "a-", "B", "C:",
    ]  # fmt: skip
    alphabets = ["0123456789abcdef", "0123456789", "abcdef", "0123456789abcdefghijklmnopqrstuvwxyzABCDEF"]

    def token() -> str:
        out = []
        for _ in range(rnd.randint(1, 5)):
            if rnd.random() < 0.5:
                out.append(rnd.choice(pieces))
            else:
                alphabet = rnd.choice(alphabets)
                out.append("".join(rnd.choice(alphabet) for _ in range(rnd.choice([1, 2, 4, 8, 16]))))
        return "".join(out)

    by_key: dict[bytes, dict[str, str]] = {}
    for _ in range(40_000):
        t = token()
        parts = VARIABLE_SPAN.split(" " + t)
        if len(parts) > 1 and SPAN_MARK not in t and spans_safe(parts):
            by_key.setdefault(span_key(parts), {}).setdefault(_PATTERN.sub("<*>", t), t)
    shared = [masks for masks in by_key.values() if any(HAS_DIGIT(m) is None for m in masks)]
    assert len(shared) > 1000
    assert all(len(masks) == 1 for masks in shared), [m for m in shared if len(m) > 1][:3]


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("[req-3ccbdd456097198b]", "[req-<*>]"),
        ("[req-ff05726dfaefb64c]", "[<*>]"),
        ("bf55cb8d-9f73-4e2c-81b0-f9687a76d31a", "<*>"),
        ("/payments/5235f9cd-ab8d-4f91-b61a-741e9d2d56a6/capture", "<*>"),
        ("SSH-22ab", "SSH-22ab"),  # a protocol version is kept: the prefix is not trusted
        ("abc--12x3", "abc-<*>"),
        ("host-08", "host-<*>"),
    ],
)
def test_span_tokens(token: str, expected: str) -> None:
    from loglens.patterns.masking import clear_caches

    clear_caches()
    for _ in range(2):  # computed, then from the caches
        assert mask_tokens(token) == [expected]
        assert mask(token) == expected
