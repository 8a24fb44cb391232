"""Masking: replace the variable parts of a log message with ``<*>`` before template mining.

The rules are data (:data:`RULES`): each has a name, a regular expression, a description of what
it recognises and an action (mask it, keep it as a constant, or keep a constant prefix). They are
compiled into one regular expression (:func:`compile_rules`) applied to each *piece* of a token: a
maximal run of characters other than whitespace and the delimiters ``()[]{}<>,;="'|`` (so that
``key=value`` keeps ``key=`` and ``(TID 12)`` keeps its parentheses). Two line-level rules come
first because they span several tokens: :data:`DATETIME_PHRASE` (``Fri Jun 17 07:07:00 2005``,
``2015-10-18 18:01:47,978``) and :data:`SIZE_PHRASE` (``2.3 GiB``).

Conventions follow the Loghub "corrected" ground truth (Khan et al., ICSE 2022), which is how most
people write templates by hand:

* a variable is replaced as a whole piece: ``blk_-1608999687919862906``, ``/10.250.19.102:50010``,
  ``attempt_1445144423722_0020_m_000000_0``, ``0x1f``, ``12ms``, ``R02-M1-N0-C:J12-U11`` are each
  one ``<*>``; a size with its unit is one (``2.3 GiB``); a duration keeps its unit as a word when
  a space separates them (``12 ms`` -> ``<*> ms``);
* punctuation around a variable stays: ``(TID 12).`` -> ``(TID <*>).``, ``from 1.2.3.4: 11: Bye``
  -> ``from <*>: <*>: Bye``, ``[1.2.3.4]`` -> ``[<*>]``, ``10.0.0.1:50010:Got`` -> ``<*>:Got``;
* constant prefixes stay: ``uid=0`` -> ``uid=<*>``, ``batch:1`` -> ``batch:<*>``, ``core.2275`` ->
  ``core.<*>``, ``jetty-6.1.26`` -> ``jetty-<*>``, ``Reader #1`` -> ``Reader #<*>``,
  ``enable......0`` -> ``enable......<*>``, ``Event@7317849d`` -> ``Event@<*>``,
  ``Foo.java:123`` -> ``Foo.java:<*>``; the key of ``r24=0x0f`` stays even with its digit;
* names holding a digit stay constant when they look like names: ``ssh2``, ``jk2_init``,
  ``Slf4jLogger``, ``log4j.properties``, ``IPv4`` (two letters, one digit, maybe more letters),
  ``L2`` (a capital and a digit), protocol versions (``HTTP/1.1``, ``TLSv1.2``). Anything else
  holding a digit is a variable.

Recognised kinds (see :data:`RULES`): URLs, e-mail addresses, UUIDs, IPv4/IPv6 addresses with
ports, MAC addresses, Unix and Windows paths, hexadecimal numbers, Hadoop block ids, dates and
times, durations and sizes, numbers, and any other digit-holding piece. Rules marked
``compiled=False`` only document a kind that the final ``digits`` rule already masks in full.

:func:`mask` masks a text; :func:`mask_tokens` gives the masked tokens, much faster, with bounded
caches keyed by token, by token *shape* (digits replaced by ``0``) and by the token without its
variable spans (:data:`VARIABLE_SPAN`: ``[req-3ccbdd456097198b]`` and ``[req-3e961e9dc03d679c]``
have one key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WILDCARD = "<*>"

# Characters that end a piece of a token: a variable never extends over them.
_DELIM = r"\s()\[\]{}<>,;=\"'|"
_PIECE = rf"[^{_DELIM}]"
_END = rf"(?![^{_DELIM}])"  # at the end of a piece
# A character of a variable: a ":" only when a number, a hex digit or letters then a digit follow
# (10.0.0.1:8080, fe80::1, R62-M1-Nf-C:J03-U11), so that ``10.0.0.1:50010:Got`` gives
# ``<*>:Got``; a "." only when no other "." follows (``enable......0`` gives ``enable......<*>``).
_VCHAR = rf"(?:[^{_DELIM}:.]|\.(?!\.)|:(?=[0-9A-Fa-f:]|[A-Za-z]+\d))"
# The end of a variable: the end of the piece, after which only "." or ":" may follow (they
# stay: ``from 10.0.0.1: 11: Bye`` gives ``from <*>: <*>: Bye``), or a ":" then a letter, or "..".
_VEND = rf"(?=[.:]*{_END}|:[A-Za-z]|\.\.)"
# The rest of a variable after its first digit.
_VREST = rf"(?:{_VCHAR}*[^{_DELIM}.:])?{_VEND}"


# Source file extensions: ``main.go:10`` is a source position, ``github.com:443`` is not.
_SOURCE_EXTENSIONS = (
    "c", "h", "cc", "cpp", "cxx", "hpp", "hh", "go", "py", "java", "kt", "scala", "groovy", "js", "mjs",
    "ts", "jsx", "tsx", "rb", "rs", "cs", "php", "m", "mm", "swift", "pl", "pm", "lua", "erl", "ex", "exs",
    "jsp", "sh", "sql",
)  # fmt: skip
_PROTOCOLS = ("HTTP", "HTTPS", "RTSP", "SIP", "SSH", "TLSv", "TLS", "SSLv", "SSL", "SMTP", "IMAP", "AMQP")


@dataclass(frozen=True, slots=True)
class Rule:
    """One masking rule, tried at the start of each piece of a token.

    ``action`` says what a match becomes: ``"mask"``: ``<*>``; ``"keep"``: the match is a constant
    and no later rule may mask it; ``"keep_prefix"``: a piece made of a constant ``prefix`` (a
    regular expression) then ``pattern`` becomes the prefix then ``<*>``; ``after`` is a fixed-width
    expression that matches the end of such a prefix (``re`` look-behinds need a fixed width).
    ``compiled=False`` marks a rule whose every match is one token piece holding
    a digit: the final ``digits`` rule masks exactly the same text, so the rule documents the kind
    (and is tested) but is left out of the combined expression, which keeps masking fast.
    """

    name: str
    pattern: str
    description: str
    action: str = "mask"
    compiled: bool = True
    prefix: str = ""
    after: str = ""


RULES: tuple[Rule, ...] = (
    Rule("url", r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>]*[^\s\"'<>.,;:)\]]", "scheme://anything"),
    Rule("email", rf"[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+{_END}", "user@host.domain"),
    Rule(
        "uuid",
        rf"[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}{_END}",
        "8-4-4-4-12 hex digits",
        compiled=False,
    ),
    Rule(
        "ipv6",
        rf"/?\[?(?=[0-9a-fA-F:]*\d)(?:(?:[0-9a-fA-F]{{1,4}}:){{7}}[0-9a-fA-F]{{1,4}}"
        rf"|(?:[0-9a-fA-F]{{1,4}}:){{0,6}}[0-9a-fA-F]{{0,4}}::(?:[0-9a-fA-F]{{1,4}}:){{0,6}}[0-9a-fA-F]{{0,4}})"
        rf"(?:%\w+)?\]?(?::\d+)?{_END}",
        "IPv6 address: eight groups or :: shorthand, optional %zone, [addr]:port",
        compiled=False,
    ),
    Rule(
        "ipv4",
        rf"{_PIECE}*?/?\d{{1,3}}\.\d{{1,3}}\.\d{{1,3}}\.\d{{1,3}}(?::\d+)?{_END}",
        "IPv4 address, optional :port, optional host/ prefix (host/10.0.0.1:8080)",
        compiled=False,
    ),
    Rule("mac", rf"(?:[0-9a-fA-F]{{2}}:){{5}}[0-9a-fA-F]{{2}}{_END}", "MAC address", compiled=False),
    Rule(
        "path",
        rf"(?:[A-Za-z]:)?\.{{0,2}}/(?=[^{_DELIM}]*[/\w])[^{_DELIM}]*?(?:[^{_DELIM}.:]|/){_VEND}",
        "file path: /etc/hosts, ./a/b, C:/x, /default-rack (not a lone /); a trailing . or : stays",
    ),
    Rule(
        "windows_path",
        rf"(?:[A-Za-z]:|\\\\[^{_DELIM}\\]+)\\[^{_DELIM}]*?[^{_DELIM}.:]{_VEND}",
        "Windows path: C:\\Windows\\system32\\x.dll, \\\\server\\share\\f",
    ),
    Rule(
        "hex",
        rf"(?:0[xX][0-9a-fA-F]+|(?=[a-fA-F]*\d)[0-9a-fA-F]{{8,}}){_END}",
        "0x1f, deadbeef01 (8+ hex digits with a digit)",
        compiled=False,
    ),
    Rule("block", rf"blk_-?\d+{_END}", "HDFS block id blk_-123", compiled=False),
    Rule(
        "datetime",
        rf"\d{{2,4}}[-/.]\d{{1,2}}[-/.]\d{{1,4}}(?:[T\-_.]\d{{1,2}}[:.]\d{{2}}(?:[:.]\d{{2}})?(?:[.,]\d+)?)?"
        rf"(?:Z|[+\-]\d{{2}}:?\d{{2}})?{_END}",
        "dates and date-times: 2015-10-18, 17/06/09, 2005-06-03-15.42.50.675872, 2024-01-15T10:00:00Z",
        compiled=False,
    ),
    Rule("time", rf"\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?:[.,]\d+)?{_END}", "times: 18:01:47.978", compiled=False),
    Rule(
        "quantity",
        rf"[-+]?\d+(?:\.\d+)?(?:[numµ]?s|sec|secs|min|mins|h|ms|us|ns|[KMGTP]i?B|[kKMGT]|B|bytes?|%){_END}",
        "durations and sizes with a glued unit: 12ms, 1.5s, 10KB, 2GiB, 95%",
        compiled=False,
    ),
    Rule("number", rf"[-+]?\d+(?:[.,]\d+)*{_END}", "integers and decimals: 42, -7, 3.14", compiled=False),
    Rule(
        "named",
        rf"-?\d{_VREST}",
        "name, separator, then a number: core.2275 -> core.<*>, jetty-6.1.26 -> jetty-<*>, PS/2 -> PS/<*>,"
        " batch:1 -> batch:<*>",
        action="keep_prefix",
        prefix=r"[A-Za-z]{2,}[.\-/#:]",
        after=r"[A-Za-z][.\-/#:]",
    ),
    Rule(
        "name_digit",
        rf"(?:[A-Za-z][A-Za-z_$]*[A-Za-z]\d[A-Za-z_$]*|[A-Z]\d"
        rf"|(?:[A-Za-z][A-Za-z_$]*[.\-])+[A-Za-z][A-Za-z_$]*\d[A-Za-z_$]*(?:[.\-][A-Za-z][A-Za-z_$]*)*"
        rf"|[A-Za-z][A-Za-z_$]*\d[A-Za-z_$]*(?:[.\-][A-Za-z][A-Za-z_$]*)+)[.:]*{_END}",
        "names holding one digit: after two letters (ssh2, jk2_init, Slf4jLogger, HttpServer2$Filter),"
        " a capital and a digit (L2, C1), or inside a dotted or dashed name (log4j.properties,"
        " org.apache.hadoop.mapreduce.v2.api.Foo): kept; u0 or x1 alone is a variable",
        action="keep",
    ),
    Rule(
        "protocol",
        rf"(?:{'|'.join(_PROTOCOLS)})[/\-]?\d(?:\.\d)?[.:]*{_END}",
        "protocol versions are constants: HTTP/1.1, TLSv1.2, SSH-2.0",
        action="keep",
    ),
    Rule(
        "source_line",
        rf"\d+{_VEND}",
        "a line number after a source file name: main.go:10 -> main.go:<*>, (Foo.java:123) -> (Foo.java:<*>)",
        action="keep_prefix",
        prefix=rf"[A-Za-z_][\w\-$]*\.(?:{'|'.join(_SOURCE_EXTENSIONS)}):",
        after=r"[A-Za-z]:",
    ),
    Rule(
        "key",
        r"[A-Za-z_][\w.\-]*(?==)",
        "the key of key=value (r24=0x0f keeps r24=): kept as it is",
        action="keep",
    ),
    Rule(
        "numbered",
        rf"\d{_VREST}",
        "a number after #: Reader #1 -> Reader #<*>",
        action="keep_prefix",
        prefix="#",
        after="#",
    ),
    Rule(
        "object",
        rf"[0-9a-fA-F]*\d{_VREST}",
        "an object's identity after its class name: Foo$Bar@7317849d -> Foo$Bar@<*>",
        action="keep_prefix",
        prefix=r"[A-Za-z_$][\w.$]*@",
        after=r"[\w$]@",
    ),
    Rule(
        "dotted",
        rf"\d{_VREST}",
        "a value after a run of dots: enable.........0 -> enable.........<*>",
        action="keep_prefix",
        prefix=rf"{_PIECE}*?\.\.",
        after=r"\.\.",
    ),
    Rule("digits", rf"{_VCHAR}*?\d{_VREST}", "any other piece of a token holding a digit"),
)


def compile_rules(rules: tuple[Rule, ...]) -> re.Pattern[str]:
    """One regular expression for all compiled ``rules``: ``expr.sub("<*>", text)`` masks ``text``.

    Every alternative starts at the start of a piece (or, for ``keep_prefix`` rules, right after
    their prefix); ``keep`` rules and the prefixes become negative look-aheads at the start of the
    piece. The replacement is a constant, so the substitution runs in C with no Python call per
    match.
    """
    exclude: list[str] = []
    parts: list[str] = []
    tails: list[str] = []
    for rule in rules:
        if re.compile(rule.pattern).groups:
            raise ValueError(f"rule {rule.name}: use (?:...), not groups")
        if not rule.compiled:
            continue
        if rule.action == "keep":
            exclude.append(rule.pattern)
        elif rule.action == "keep_prefix":
            if not rule.prefix or not rule.after:
                raise ValueError(f"rule {rule.name}: keep_prefix needs prefix and after")
            exclude.append(rule.prefix + rule.pattern)
            # Not inside a protocol version, which a keep rule protects at the piece start only.
            guard = "".join(f"(?<!{p}/)(?<!{p}-)" for p in _PROTOCOLS)
            tails.append(rf"(?<={rule.after}){guard}{rule.pattern}")
        elif rule.action == "mask":
            parts.append(rule.pattern)
        else:
            raise ValueError(f"rule {rule.name}: unknown action {rule.action!r}")
    # Only pieces holding a digit, "/", "@" or "\\" can be variables: the look-ahead rejects the others
    # at their first character.
    head = rf"(?<![^{_DELIM}])(?=[^{_DELIM}]*[\d/@\\])"
    if exclude:
        head += "(?!" + "|".join(exclude) + ")"
    alternatives = [head + "(?:" + "|".join(parts) + ")", *tails]
    return re.compile("|".join(alternatives))


_PATTERN = compile_rules(RULES)
_HAS_VARIABLE = re.compile(r"[\d/@\\]").search


def mask(text: str) -> str:
    """Return ``text`` with every variable part replaced by ``<*>`` (see the module docstring)."""
    if _HAS_VARIABLE(text) is None:
        return text
    text = mask_phrases(text)
    return _PATTERN.sub(WILDCARD, text)


_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?"
#: Dates and times written over several tokens are one variable: ``Fri Jun 17 07:07:00 2005``,
#: ``Jun 17, 2005 7:07:00 PM``, ``2015-10-18 18:01:47,978``, ``06/10/2013 17:26 GMT``, and a time
#: alone when a comma separates its fraction (``18:01:47,978``: the comma would split it). Applied to
#: the whole line before it is split into tokens (only when the line holds a time).
DATETIME_PHRASE = re.compile(
    rf"(?<![\w:.])(?:{_DAY} +)?"
    rf"(?:{_MONTH} +\d{{1,2}}(?:st|nd|rd|th)?,? +(?:\d{{4}} +)?|\d{{1,2}} +{_MONTH} +\d{{4}} +"
    rf"|\d{{1,4}}[-/.]\d{{1,2}}[-/.]\d{{1,4}}[ T]+)"
    r"\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?: ?[AP]M)?"
    r"(?: +(?:UTC|GMT|[ECMP][SD]T|CES?T|Z|[+\-]\d{2}:?\d{2}))?(?: +\d{4})?(?![\w:])"
    r"|(?<![\w:.])\d{1,2}:\d{2}:\d{2},\d+(?![\w:])"  # a time with a comma before its fraction
)
#: Does the text hold a digit, ``:`` and two digits (``\d:\d\d``)? Written to start with the ``:`` so
#: that the regular expression engine jumps from one ``:`` to the next.
TIME_HINT = re.compile(r":(?<=\d:)\d\d").search
#: A necessary condition for :data:`DATETIME_PHRASE`: an hour after a space or a ``T``
#: (``[ T]\d{1,2}:\d{2}``) or a time with a comma before its fraction; much cheaper to rule out.
DATETIME_HINT = re.compile(r":(?:(?<=[ T]\d:)|(?<=[ T]\d\d:)|(?<=\d:)(?=\d\d:\d\d,))\d\d").search
#: A size written as a number, a space and a unit (``93.0 B``, ``2.3 GiB``) is one variable;
#: glued sizes (``10KB``) are one token already. Durations keep their unit as a word (``12 ms``).
SIZE_PHRASE = re.compile(r"(?<![\w.])\d+(?:\.\d+)? (?:[KMGTPE]i?B|B)(?!\w)")
#: A necessary condition for :data:`SIZE_PHRASE` (a digit, a space, a unit), cheaper to rule out.
SIZE_HINT = re.compile(r" (?<=\d )(?:[KMGTPE]i?B|B)(?!\w)").search
#: A weaker condition for it that does not look at the number: a space then a unit.
SIZE_UNIT = re.compile(r" (?:[KMGTPE]i?)?B(?!\w)").search
_CLOCK_AFTER_SPACE = re.compile(r"[ T]\d+:\d").search
_CLOCK_WITH_COMMA = re.compile(r":(?<=\d:)\d+:\d+,").search


def clock_hint(text: str) -> bool:
    r"""A necessary condition for :data:`DATETIME_PHRASE` that does not depend on how many digits
    each number has (``[ T]\d+:\d`` or ``\d:\d+:\d+,``): when it fails for a text, it fails for
    every text whose digits runs are of other lengths. ``10.0.0.1:8080`` does not meet it."""
    return TIME_HINT(text) is not None and (_CLOCK_AFTER_SPACE(text) is not None or _CLOCK_WITH_COMMA(text) is not None)


def mask_phrases(text: str) -> str:
    """Replace the variables that span several tokens (:data:`DATETIME_PHRASE`,
    :data:`SIZE_PHRASE`) by ``<*>``; the cheap hints skip the phrases when they cannot match."""
    if DATETIME_HINT(text) is not None:
        text = DATETIME_PHRASE.sub(WILDCARD, text)
    if "B" in text and SIZE_HINT(text) is not None:
        text = SIZE_PHRASE.sub(WILDCARD, text)
    return text


_TOKEN_CACHE: dict[str, str] = {}
_SHAPE_CACHE: dict[bytes, str] = {}
#: :func:`shape` of a text: its UTF-8 bytes with every digit replaced by ``0``. No rule depends on
#: which digit it sees, so texts of one shape mask alike except where a kept name holds a digit
#: (``ssh2``): a masked text without digits is valid for every text of its shape.
ZERO_DIGITS = bytes.maketrans(b"123456789", b"000000000")


def shape(text: str) -> bytes:
    """The text's UTF-8 bytes with every digit replaced by ``0`` (``bytes.translate`` is much
    faster than ``str.translate``)."""
    return text.encode("utf-8", "surrogatepass").translate(ZERO_DIGITS)


HAS_DIGIT = re.compile(r"\d").search
#: ``DIGIT_RUNS(b"00", shape(text))``: the shape with every run of two or more digits shortened
#: to two: the token rules only tell one digit from several (``ssh2``, ``L2``). Matching runs of
#: three or more gives the same bytes as ``00+`` at less than half the cost (a run of two would be
#: replaced by itself, and shapes are full of them).
DIGIT_RUNS = re.compile(rb"000+").sub
#: Finds hex letters between two digits in a :func:`shape` (``3ccbdd456097198b``, a UUID): a line
#: with a random id has a shape of its own, which no later line shares. Words rarely have one
#: (``sha256``, ``amd64`` and ``utf8`` do not).
RANDOM_ID = re.compile(rb"0[a-fA-F]+0").search
# A token that starts with a digit and holds only word characters, "-", single "." and ":" before
# a hex digit: the ``digits`` rule masks all of it (checked first, it is much cheaper).
_NUMERIC_TOKEN = re.compile(r"[-+]?\d[\w\-]*(?:\.[\w\-]+|:[0-9a-fA-F][\w\-]*)*\Z").match
_TOKEN_CACHE_LIMIT = 100_000
_CACHEABLE_TOKEN = 200  # longer tokens are masked without caching


#: A *variable span*: the end of a token piece (a maximal run of characters other than the
#: delimiters) that the rules mask whole whatever its characters, so that texts that differ only
#: there mask alike (``[req-3ccbdd456097198b]``, a UUID, ``18ms``, a path). Matched in
#: ``" " + text`` (a piece then always follows a character); the group keeps the character before
#: the span and, for a path or a number, its first character, which tell the kinds apart:
#:
#: * a path piece: ``/`` after a delimiter, then a word character, then word characters, ``-``,
#:   ``/`` and single ``.`` (the ``path`` rule masks it whole; ``..`` would be for ``dotted``);
#: * a piece that starts with a digit, then letters, digits and ``-`` (the ``digits`` rule);
#: * after a ``-``: a digit, letters and ``-``, a second digit, then letters, digits and ``-``
#:   (with two digits no name rule keeps it: ``ssh2``); what precedes it in the piece decides
#:   between ``<*>`` and ``host-<*>`` and is part of the key (see :func:`spans_safe`);
#: * after a delimiter or ``-``: hexadecimal letters, a digit before any ``-``, and a second digit
#:   (``ff05726dfaefb64c``, ``bf55cb8d-9f73-4e2c-81b0-f9687a76d31a``): the ``named`` rule needs a
#:   digit after its ``-``, so the whole piece is ``<*>``.
#:
#: A span is never followed by ``=`` (the ``key`` rule).
VARIABLE_SPAN = re.compile(
    rf"([\-{_DELIM}](?=[0-9a-fA-F/])(?:/|\d)?)(?:"
    rf"(?<=[{_DELIM}]/)[A-Za-z0-9_](?:[A-Za-z0-9_\-/]|\.(?=[A-Za-z0-9_\-/]))*+"
    rf"|(?<=[{_DELIM}]\d)[A-Za-z0-9\-]*+"
    rf"|(?<=-\d)[A-Za-z\-]*\d[A-Za-z0-9\-]*+"
    rf"|[a-fA-F]++\d[A-Za-z\-]*\d[A-Za-z0-9\-]*+"
    rf")(?![^{_DELIM}])(?!=)"  # possessive: a shorter span would not end at the end of its piece
)
# What may precede a span after ``-`` in its piece for the masking not to depend on the span:
# letters in ``-``-separated words (``host-``, ``http-nio-``), not ending with a protocol name and
# ``-`` (whose digit the ``named`` rule leaves alone: ``SSH-2``).
_SAFE_PREFIX = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*\Z").match
_LAST_PIECE = re.compile(rf"[^{_DELIM}]*\Z").search
_PROTOCOL_NAMES = tuple(_PROTOCOLS)
#: Joins the parts of ``VARIABLE_SPAN.split`` into a key; texts that hold it are not keyed.
SPAN_MARK = "\x1f"
_CANONICAL_CACHE: dict[bytes, str] = {}


def spans_safe(parts: list[str]) -> bool:
    """Are the variable spans of ``VARIABLE_SPAN.split(" " + text)`` that follow a ``-`` preceded in
    their pieces only by words, so that every text with the same key masks alike?"""
    for i in range(1, len(parts), 2):
        if parts[i][0] != "-":
            continue  # after a delimiter: the span is the whole piece
        found = _LAST_PIECE(parts[i - 1])
        prefix = found.group() if found is not None else ""
        if _SAFE_PREFIX(prefix) is None or prefix.endswith(_PROTOCOL_NAMES):
            return False
    return True


def span_key(parts: list[str]) -> bytes:
    """The key of a text from ``VARIABLE_SPAN.split(" " + text)``: the text without its variable
    spans, digits as ``0`` and runs of digits shortened to ``00``."""
    return DIGIT_RUNS(b"00", SPAN_MARK.join(parts).encode("utf-8", "surrogatepass").translate(ZERO_DIGITS))


def clear_caches() -> None:
    """Forget the token caches of :func:`mask_tokens` (benchmarks start cold with it)."""
    _TOKEN_CACHE.clear()
    _SHAPE_CACHE.clear()
    _CANONICAL_CACHE.clear()


def _mask_token(token: str) -> str:
    """Mask one token that is not in the exact-token cache."""
    if token.isdigit():
        return WILDCARD
    if len(token) > _CACHEABLE_TOKEN:  # rare; not worth the caches' memory
        return _PATTERN.sub(WILDCARD, token) if _HAS_VARIABLE(token) is not None else token
    if _HAS_VARIABLE(token) is None:  # a word: remember it
        if len(_TOKEN_CACHE) >= _TOKEN_CACHE_LIMIT:
            _TOKEN_CACHE.clear()
        _TOKEN_CACHE[token] = token
        return token
    token_shape = token.encode("utf-8", "surrogatepass").translate(ZERO_DIGITS)
    masked = _SHAPE_CACHE.get(token_shape)
    if masked is None:
        # Runs of two or more digits all look alike to the rules (only single digits matter:
        # ``ssh2``, ``L2``), so numbers of a new length reuse the work done for the others.
        short = DIGIT_RUNS(b"00", token_shape)
        masked = _SHAPE_CACHE.get(short)
        if masked is None:
            # Hexadecimal ids, UUIDs and paths make a new shape each time: their variable spans
            # are replaced by a mark (keeping the first character, which tells their kind).
            parts = VARIABLE_SPAN.split(" " + token)
            key = b""
            if len(parts) > 1 and SPAN_MARK not in token:
                key = span_key(parts)
                masked = _CANONICAL_CACHE.get(key)
                if masked is not None:
                    return masked
            masked = WILDCARD if _NUMERIC_TOKEN(token) is not None else _PATTERN.sub(WILDCARD, token)
            if HAS_DIGIT(masked) is not None:  # a name holding a digit was kept (ssh2)
                if len(_TOKEN_CACHE) >= _TOKEN_CACHE_LIMIT:
                    _TOKEN_CACHE.clear()
                _TOKEN_CACHE[token] = masked
                return masked
            if key and spans_safe(parts):
                if len(_CANONICAL_CACHE) >= _TOKEN_CACHE_LIMIT:
                    _CANONICAL_CACHE.clear()
                _CANONICAL_CACHE[key] = masked
            if len(_SHAPE_CACHE) >= _TOKEN_CACHE_LIMIT:
                _SHAPE_CACHE.clear()
            _SHAPE_CACHE[short] = masked
        _SHAPE_CACHE[token_shape] = masked
    return masked


def mask_tokens(text: str) -> list[str]:
    """``mask(text).split()``, faster: the tokens of ``text``, each masked.

    Masking never crosses whitespace, so tokens are masked one by one, with two bounded caches:
    one by exact token (words repeat, and so do names that keep a digit, ``ssh2``) and one by the
    token's *shape*, its digits all replaced by ``0`` (no rule depends on which digit it sees, so
    ``blk_-1608999687919862906`` and ``blk_-6952295868487656571`` mask alike). Pure numbers take a
    fast path; only new shapes go through the regular expression.
    """
    text = mask_phrases(text)
    get = _TOKEN_CACHE.get
    return [get(token) or _mask_token(token) for token in text.split()]


def is_variable_token(token: str) -> bool:
    """True when a whole token is a variable by itself (after masking it would be ``<*>``)."""
    return mask(token) == WILDCARD
