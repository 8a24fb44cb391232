"""Streaming template miner: every message gets a stable template id as it arrives.

How a message is placed:

1. Only its first line is used (a stack trace is templated by the line that says what happened;
   the frames below it are not part of the event kind).
2. A cache keyed on the line's shape (its digits replaced by ``0``: lines that differ only in
   their numbers share it), then on that shape with runs of digits shortened to ``00`` (numbers
   of another length), then on the shape again for templates that keep a digit (``ssh2``: the
   line must have the same text there), then on the line with its variable spans cut out (hex
   request ids, UUIDs, paths, numbers: :data:`~loglens.patterns.masking.VARIABLE_SPAN`, which the
   shape keeps), then on the masked line (:func:`~loglens.patterns.masking.mask_tokens`), answers
   most lines with a few dictionary look-ups.
3. Otherwise the masked tokens are compared with the templates that have the same number of
   tokens and the same first token (Drain's observation: the length and the leading word of a
   message say a lot about its kind). A template that agrees on all positions (``<*>`` accepts
   anything) takes the message.
4. A template that differs in a few literal positions (:func:`max_differences`) is a candidate:
   those words may be variables (user names, host names...) or the words that tell two events
   apart (``Failed password`` / ``Failed none``, ``startup`` / ``shutdown``). The miner waits for
   evidence: the message starts its own template, and once :data:`EVIDENCE` distinct values were
   seen at the same positions with the rest of the message identical, those positions become
   ``<*>`` in the oldest of these templates (it keeps its id; its old text goes to its aliases),
   and the other templates that it now covers are merged into it (their texts become aliases too,
   and ``merged`` counts them; :meth:`TemplateMiner.resolve` maps a merged id to the live one).
   At most :data:`MAX_NEW_VARIABLES` positions become variables at once. The first word of a
   message needs more evidence (:data:`FIRST_WORD_EVIDENCE`) and a longer message around it.
   When the message differs only where masking found variables (the template was made from
   ``for user root``, the message is ``for user 42``) and the template has seen fewer than
   :data:`EVIDENCE` messages, it is generalised at once.
5. A run of :data:`LIST_RUN` or more ``<*>`` tokens counts as one (:func:`collapse_wildcards`): lists of
   ids of varying length are one variable.

Memory is bounded: at most ``max_templates`` templates (a message is templated by its first
:data:`MAX_LINE` characters); when a new one would exceed that, the least recently seen template
is dropped (``evicted`` counts them). The caches are bounded too.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable

from loglens.model import Template
from loglens.patterns.masking import (
    DIGIT_RUNS,
    HAS_DIGIT,
    RANDOM_ID,
    SIZE_UNIT,
    SPAN_MARK,
    TIME_HINT,
    VARIABLE_SPAN,
    WILDCARD,
    ZERO_DIGITS,
    clock_hint,
    mask_tokens,
    spans_safe,
)

_CACHE_LIMIT = 50_000  # entries per cache
_CACHEABLE = 512  # longer lines are not cached (memory: the caches are keyed by the line)
#: Only the first this many characters of a message are templated.
MAX_LINE = 4_000
_PENDING_LIMIT = 100_000

#: Distinct values that must be seen at a position before it becomes a variable.
EVIDENCE = 3
#: Distinct values needed before the first word of a message becomes a variable, and how many
#: literal words the message must have for that.
FIRST_WORD_EVIDENCE = 6
FIRST_WORD_MIN_LITERALS = 5
#: At most this many literal positions become variables at once (more differing words in one
#: place are different phrases: ``file <*>: Bad file descriptor`` / ``file <*>: Permission denied``).
MAX_NEW_VARIABLES = 2


def first_line(message: str) -> str:
    """The part of a (possibly multi-line) message that is templated: its first non-blank line."""
    if "\n" in message:
        for line in message.split("\n"):
            if line.strip():
                return line
        return ""
    return message


def max_differences(k: int) -> int:
    """How many literal positions may differ between a message and a template to be compared,
    for a message with ``k`` positions that are not already ``<*>``.

    Very short messages must match exactly; longer ones tolerate about a third of their words
    being variables that masking could not recognise.
    """
    if k <= 2:
        return 0
    return max(1, (k * 3) // 10)


#: A run of this many ``<*>`` tokens or more is one variable (see :func:`collapse_wildcards`).
LIST_RUN = 5


def collapse_wildcards(tokens: list[str]) -> list[str]:
    """Replace each run of :data:`LIST_RUN` or more ``<*>`` tokens by one: a long list of ids of
    varying length (``delete blk_1 blk_2 blk_3 blk_4 blk_5``) is one variable, while short runs
    are usually fixed fields (``onExtend:<*> <*> <*> <*>``)."""
    if tokens.count(WILDCARD) < LIST_RUN:
        return tokens
    out: list[str] = []
    run = 0
    for token in tokens:
        if token == WILDCARD:
            run += 1
            if run >= LIST_RUN:
                if run == LIST_RUN:
                    del out[-(LIST_RUN - 2) :]
                continue
        else:
            run = 0
        out.append(token)
    return out


# A kept common prefix must end, and a kept common suffix start, with one of these: a
# variable's delimiters, not the connectors inside a name (``.``, ``-``, ``_``: ``chrome.exe`` and
# ``qq.exe`` give ``<*>``, not ``<*>.exe``).
_PREFIX_END = frozenset("=:([{<,;\"'/@#")
_SUFFIX_START = frozenset(")]}>,;:=\"'")


def merge_token(a: str, b: str) -> str:
    """The generalisation of two different tokens at the same position.

    Keeps a common prefix that ends with a delimiter and a common suffix that starts with one:
    ``user=root``/``user=bob`` -> ``user=<*>``, ``(yarn)``/``(bob)`` -> ``(<*>)``; otherwise ``<*>``.
    """
    if a == b:
        return a
    if a == WILDCARD or b == WILDCARD:
        return WILDCARD
    limit = min(len(a), len(b))
    i = 0
    while i < limit and a[i] == b[i]:
        i += 1
    prefix = a[:i]
    while prefix and (prefix[-1] not in _PREFIX_END or prefix.endswith(("<", "<*"))):
        prefix = prefix[:-1]
    j = 0
    rest = limit - len(prefix)
    while j < rest and a[-1 - j] == b[-1 - j]:
        j += 1
    suffix = a[len(a) - j :] if j else ""
    while suffix and (suffix[0] not in _SUFFIX_START or suffix.startswith((">", "*>"))):
        suffix = suffix[1:]
    merged = prefix + WILDCARD + suffix
    while "<*><*>" in merged:
        merged = merged.replace("<*><*>", WILDCARD)
    return merged


def token_matches(template_token: str, token: str) -> bool:
    """Does a template token holding ``<*>`` (e.g. ``user=<*>``) accept ``token``?"""
    if template_token == WILDCARD:
        return True
    if WILDCARD not in template_token:
        return False
    head, _, tail = template_token.partition(WILDCARD)
    if WILDCARD in tail:
        tail = tail.rpartition(WILDCARD)[2]
    return len(token) >= len(head) + len(tail) and token.startswith(head) and token.endswith(tail)


# A name with separators inside (a class, a host, a file): ``org.apache.Foo$Bar``, ``a-b.example.com``.
_NAME = re.compile(r"[\w$]+(?:[.\-/@$][\w$]+)+[.,;:]?\Z").match


def _bucket_key(tokens: list[str]) -> tuple[int, str]:
    if not tokens:
        return (0, "")
    first = tokens[0]
    if WILDCARD in first:
        first = WILDCARD
    return (len(tokens), first)


class _Cluster:
    __slots__ = ("aliases", "alive", "count", "first_seen", "id", "key", "last_seen", "tokens")

    def __init__(self, cid: int, tokens: list[str], key: tuple[int, str]) -> None:
        self.id = cid
        self.tokens = tokens
        self.key = key
        self.count = 0
        self.first_seen = 0
        self.last_seen = 0
        self.aliases: list[str] = []
        self.alive = True

    def text(self) -> str:
        return " ".join(self.tokens)

    def covers(self, tokens: list[str]) -> bool:
        """Does this template accept the (template or message) ``tokens``?"""
        return _covers(self.tokens, tokens)

    def to_template(self) -> Template:
        return Template(
            id=self.id,
            text=self.text(),
            count=self.count,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            aliases=list(self.aliases),
        )


class TemplateMiner:
    """Assigns a template id to each message; see the module docstring for the algorithm."""

    def __init__(self, max_templates: int = 20_000) -> None:
        if max_templates < 1:
            raise ValueError("max_templates must be >= 1")
        self.max_templates = max_templates
        self.evicted = 0  # templates dropped because of the cap
        self.merged = 0  # templates merged into a more general one
        self._clusters: OrderedDict[int, _Cluster] = OrderedDict()  # least recently seen first
        self._buckets: dict[tuple[int, str], list[_Cluster]] = {}
        self._by_rest: dict[tuple[str, ...], list[_Cluster]] = {}  # by all tokens but the first
        self._cache: dict[bytes, _Cluster] = {}  # by line shape
        self._masked_cache: dict[str, _Cluster] = {}  # by masked line
        self._short_cache: dict[bytes, _Cluster] = {}  # by line shape with digit runs shortened
        # by line shape, for templates that keep digits: (template, [(offset, kept text)])
        self._kept_cache: dict[bytes, tuple[_Cluster, tuple[tuple[int, str], ...]]] = {}
        # by the line without its variable spans (see _span_key): hex ids, UUIDs, paths
        self._span_cache: dict[bytes, _Cluster] = {}
        self._span_kept_cache: dict[bytes, tuple[_Cluster, tuple[tuple[int, str], ...]]] = {}
        self._pending: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        self._changed: dict[int, _Cluster] = {}
        self._merged_ids: dict[int, int] = {}  # merged template id -> id it was merged into
        self._merge_log: list[tuple[int, int]] = []  # merges not yet drained
        self._next_id = 1

    # -- public API -------------------------------------------------------------------------

    def add(self, message: str, timestamp_ns: int = 0) -> int:
        """Place one message; return its template id (>= 1)."""
        if "\n" in message:
            message = first_line(message)
        if len(message) > MAX_LINE:
            message = message[:MAX_LINE]
        shape = message.encode("utf-8", "surrogatepass").translate(ZERO_DIGITS)
        cluster = self._cache.get(shape)
        if cluster is None or not cluster.alive:
            if RANDOM_ID(shape) is not None:
                # No later line has this shape: skip the other caches keyed by it.
                cluster = self._span_place(message, shape, None)
            else:
                short = DIGIT_RUNS(b"00", shape)
                cluster = self._short_cache.get(short)
                if cluster is None or not cluster.alive:
                    cluster = self._kept_lookup(message, shape)
                    if cluster is None:
                        cluster = self._span_place(message, shape, short)
        cluster.count += 1
        if timestamp_ns:
            if not cluster.first_seen or timestamp_ns < cluster.first_seen:
                cluster.first_seen = timestamp_ns
            if timestamp_ns > cluster.last_seen:
                cluster.last_seen = timestamp_ns
        self._clusters.move_to_end(cluster.id)
        self._changed[cluster.id] = cluster
        return cluster.id

    def add_many(self, messages: list[str], timestamps: list[int]) -> list[int]:
        """Place a batch of messages (``timestamps`` may be empty); return their template ids."""
        add = self.add
        if not timestamps:
            return [add(m) for m in messages]
        return [add(m, t) for m, t in zip(messages, timestamps, strict=True)]

    def get(self, template_id: int) -> Template | None:
        """A live template by id (``None`` once evicted or merged into another)."""
        cluster = self._clusters.get(template_id)
        return cluster.to_template() if cluster is not None else None

    def resolve(self, template_id: int) -> int:
        """The id of the live template that now holds the messages of ``template_id`` (itself
        unless it was merged into a more general template); 0 if unknown or evicted."""
        cluster = self._clusters.get(template_id)
        if cluster is not None:
            return cluster.id
        seen = {template_id}
        merged = self._merged_ids.get(template_id)
        while merged is not None and merged not in self._clusters and merged not in seen:
            seen.add(merged)
            merged = self._merged_ids.get(merged)
        return merged if merged is not None and merged in self._clusters else 0

    def templates(self) -> list[Template]:
        """All live templates, by id."""
        clusters = list(self._clusters.values())  # one C-level copy: safe to call from another thread
        clusters.sort(key=lambda c: c.id)
        return [c.to_template() for c in clusters]

    def drain_changes(self) -> list[Template]:
        """Templates created or updated (text, count, times) since the previous call.

        A template evicted or merged since then is still reported once with its final state."""
        changed = [c.to_template() for c in self._changed.values()]
        self._changed = {}
        return changed

    def drain_merges(self) -> list[tuple[int, int]]:
        """``(merged id, id it was merged into)`` for each merge since the previous call, so that
        a store can show records of a merged template under the general one."""
        merges = self._merge_log
        self._merge_log = []
        return merges

    def load(self, templates: Iterable[Template]) -> None:
        """Restore templates saved earlier (e.g. from :meth:`drain_changes`); ids are kept.

        A saved template whose text is an alias of another saved template that covers it had
        been merged into that one, and stays merged."""
        saved = sorted(templates, key=lambda t: (t.last_seen, t.id))
        evicted = self.evicted
        for t in saved:
            old = self._clusters.get(t.id)
            if old is not None:
                self._drop(old)
            tokens = t.text.split()
            cluster = _Cluster(t.id, tokens, _bucket_key(tokens))
            cluster.count = t.count
            cluster.first_seen = t.first_seen
            cluster.last_seen = t.last_seen
            cluster.aliases = list(t.aliases)
            self._insert(cluster)  # the least recently seen go first when there are too many
            self._next_id = max(self._next_id, t.id + 1)
        self.evicted = evicted
        by_alias: dict[str, list[_Cluster]] = {}
        for cluster in self._clusters.values():
            for alias in cluster.aliases:
                by_alias.setdefault(alias, []).append(cluster)
        for cluster in list(self._clusters.values()):
            for general in by_alias.get(cluster.text(), ()):
                if general is not cluster and general.alive and general.covers(cluster.tokens):
                    self._drop(cluster)
                    self._merged_ids[cluster.id] = general.id
                    break
        self._cache.clear()
        self._masked_cache.clear()
        self._short_cache.clear()
        self._kept_cache.clear()
        self._span_cache.clear()
        self._span_kept_cache.clear()

    def reserve_ids(self, next_id: int) -> None:
        """Give new templates ids from ``next_id`` on at least (ids used elsewhere stay unique)."""
        self._next_id = max(self._next_id, next_id)

    # -- internals --------------------------------------------------------------------------

    def _span_place(self, line: str, shape: bytes, short: bytes | None) -> _Cluster:
        """Place a line that the shape caches do not know, through the span caches: they are keyed
        by the line with its variable spans (:data:`~loglens.patterns.masking.VARIABLE_SPAN`: hex
        ids, UUIDs, paths, numbers) cut out, which the shape keeps (``req-3ccbdd456097198b``).

        Only lines where no date-time or size phrase can match are keyed so (the phrases span
        several tokens and could take part of a span). Both checks give one answer for all lines
        of a key: they look at spaces, colons, commas, unit letters and whether a number has one
        digit or more, which a key keeps (a span holds none of those characters, and cannot end
        before a colon), so a line found by its key passed them and they are made on a miss
        only. Templates that keep digits (``HTTP/1.1``) are looked up by the key that keeps the
        length of every number, then the kept texts are compared."""
        if len(line) > _CACHEABLE or SPAN_MARK in line:
            return self._place(line, shape, short)[0]
        parts = VARIABLE_SPAN.split(" " + line)
        if len(parts) == 1:
            return self._place(line, shape, short)[0]
        joined = SPAN_MARK.join(parts)
        full = joined.encode("utf-8", "surrogatepass").translate(ZERO_DIGITS)
        key = DIGIT_RUNS(b"00", full)
        cluster = self._span_cache.get(key)
        if cluster is not None and cluster.alive:
            # Where ids are numbers, lines of this shape come back: answer them from the shape
            # caches next time, as _place would have (``short`` is None for a random id's shape).
            if short is not None:
                self._remember_shape(line, shape, short, cluster)
            return cluster
        entry = self._span_kept_cache.get(full)
        if entry is not None and entry[0].alive:
            cluster, checks = entry
            for at, part in checks:
                if not joined.startswith(part, at):
                    break
            else:
                return cluster
        if ("B" in line and SIZE_UNIT(line) is not None) or clock_hint(line):
            return self._place(line, shape, short)[0]
        cluster, tokens, masked = self._place(line, shape, short)
        if not spans_safe(parts):
            return cluster
        if HAS_DIGIT(masked) is None:
            if len(self._span_cache) >= _CACHE_LIMIT:
                self._span_cache.clear()
            self._span_cache[key] = cluster
            return cluster
        kept = _kept_checks(joined, tokens)
        if kept is not None:
            if len(self._span_kept_cache) >= _CACHE_LIMIT:
                self._span_kept_cache.clear()
            self._span_kept_cache[full] = (cluster, kept)
        return cluster

    def _place(self, line: str, shape: bytes, short: bytes | None) -> tuple[_Cluster, list[str], str]:
        tokens = collapse_wildcards(mask_tokens(line))
        masked = " ".join(tokens)
        cluster = self._masked_cache.get(masked)
        if cluster is None or not cluster.alive:
            cluster = self._match(tokens, self._candidates(tokens))
            if cluster is None:
                cluster = _Cluster(self._next_id, tokens, _bucket_key(tokens))
                self._next_id += 1
                self._insert(cluster)
        if len(line) > _CACHEABLE:
            return cluster, tokens, masked  # rare long lines are not worth the caches' memory
        if len(self._masked_cache) >= _CACHE_LIMIT:
            self._masked_cache.clear()
        self._masked_cache[masked] = cluster
        if HAS_DIGIT(masked) is not None:
            self._remember_kept(line, shape, tokens, cluster)
        else:
            self._remember_shape(line, shape, DIGIT_RUNS(b"00", shape) if short is None else short, cluster)
        return cluster, tokens, masked

    def _remember_shape(self, line: str, shape: bytes, short: bytes, cluster: _Cluster) -> None:
        """Cache a line whose template keeps no digit: every line of its shape masks alike."""
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[shape] = cluster
        if TIME_HINT(line) is None:
            # Only date-times depend on how many digits a number has (2005 is a year,
            # 20051 is not); without one, every line of this short shape masks alike.
            if len(self._short_cache) >= _CACHE_LIMIT:
                self._short_cache.clear()
            self._short_cache[short] = cluster

    def _remember_kept(self, line: str, shape: bytes, tokens: list[str], cluster: _Cluster) -> None:
        """Cache a line whose template keeps digits (``port <*> ssh2``): a line of the same shape
        has the same template when it has the same text where those digits are."""
        checks = _kept_checks(line, tokens)
        if checks is None:
            return
        if len(self._kept_cache) >= _CACHE_LIMIT:
            self._kept_cache.clear()
        self._kept_cache[shape] = (cluster, checks)

    def _kept_lookup(self, line: str, shape: bytes) -> _Cluster | None:
        entry = self._kept_cache.get(shape)
        if entry is None:
            return None
        cluster, checks = entry
        if not cluster.alive:
            return None
        for at, part in checks:
            if not line.startswith(part, at):
                return None
        return cluster

    def _candidates(self, tokens: list[str]) -> list[_Cluster]:
        """Templates a message may belong to: same length and first token, same length and a
        variable first token, and same tokens but the first (so that a first word that varies,
        a program or user name, can become a variable too)."""
        key = _bucket_key(tokens)
        candidates = self._buckets.get(key, [])
        if key[1] != WILDCARD:
            wild = self._buckets.get((key[0], WILDCARD))
            siblings = self._by_rest.get(tuple(tokens[1:])) if len(tokens) >= 3 else None
            if wild or siblings:
                candidates = candidates + (wild or []) + [c for c in siblings or () if c.key != key]
        return candidates

    def _match(self, tokens: list[str], candidates: list[_Cluster]) -> _Cluster | None:
        if not candidates:
            return None
        k = sum(1 for m in tokens if m != WILDCARD)
        # In half units: two different names (``org.a.Foo`` / ``org.b.Bar``: dotted, with
        # separators inside) count half as much as two different words.
        allowed = 2 * max_differences(k)
        best: _Cluster | None = None
        best_diff = allowed + 1
        best_wild = 0
        for cluster in candidates:
            diff = 0
            wild = 0
            for t, m in zip(cluster.tokens, tokens, strict=True):
                if t == m:
                    continue
                if token_matches(t, m):
                    wild += 1
                    continue
                diff += 1 if _NAME(t) is not None and _NAME(m) is not None else 2
                if diff > allowed:
                    break
            # Prefer fewer differences, then the most specific template.
            if diff < best_diff or (diff == best_diff and wild < best_wild):
                best, best_diff, best_wild = cluster, diff, wild
                if diff == 0 and wild == 0:
                    break
        if best is None or best_diff == 0:
            return best
        return self._generalise_with_evidence(best, tokens, candidates)

    def _generalise_with_evidence(
        self, cluster: _Cluster, tokens: list[str], candidates: list[_Cluster]
    ) -> _Cluster | None:
        """Record that ``tokens`` differ from ``cluster`` in a few literal positions; generalise
        once enough distinct values were seen there. Returns the cluster that takes the message,
        or None when it should start its own template."""
        general: list[str] = []
        ours: list[str] = []
        theirs: list[str] = []
        for t, m in zip(cluster.tokens, tokens, strict=True):
            if t == m or token_matches(t, m):
                general.append(t)
            else:
                general.append(merge_token(t, m))
                ours.append(t)
                theirs.append(m)
        if cluster.count < EVIDENCE and all(token_matches(m, t) for t, m in zip(ours, theirs, strict=True)):
            # Masking says these positions hold variables and the template is young: it was
            # made from a first example (``for user root``, then ``for user 42``).
            return self._generalise_to(cluster, general, candidates)
        key = tuple(general)
        seen = self._pending.get(key)
        if seen is None:
            if len(self._pending) >= _PENDING_LIMIT:
                self._pending.clear()
            seen = self._pending[key] = {tuple(ours)}
        seen.add(tuple(theirs))
        needed = EVIDENCE
        if general[0] != cluster.tokens[0]:
            # The first word of a message is usually what it is about (``cupsd startup
            # succeeded``, ``tickTime set to 2000``): it takes more evidence, and a longer
            # message around it, to call it a variable (``chrome.exe - <*> open through proxy``).
            if len(tokens) - tokens.count(WILDCARD) < FIRST_WORD_MIN_LITERALS:
                return None
            needed = FIRST_WORD_EVIDENCE
        if len(seen) < needed or len(ours) > MAX_NEW_VARIABLES:
            return None
        del self._pending[key]
        return self._generalise_to(cluster, general, candidates)

    def _generalise_to(self, cluster: _Cluster, general: list[str], candidates: list[_Cluster]) -> _Cluster:
        """Generalise the oldest template that ``general`` covers (it keeps its id) and merge
        the others it covers into it."""
        covered = [c for c in candidates if c.alive and _covers(general, c.tokens)]
        target = min(covered, key=lambda c: c.id) if covered else cluster
        if target.tokens != general:
            target.aliases.append(target.text())
        self._unindex(target)
        target.tokens = general
        target.key = _bucket_key(general)
        self._index(target)
        self._changed[target.id] = target
        for other in covered:
            if other is not target:
                self._merge(other, target)
        return target

    def _merge(self, cluster: _Cluster, into: _Cluster) -> None:
        """Merge ``cluster`` into the more general ``into``: its text becomes an alias of
        ``into`` and its id resolves to ``into``'s. Counts stay per id (the messages already
        stored under the merged id keep it), so ``into.count`` counts only its own messages."""
        into.aliases.append(cluster.text())
        self._drop(cluster)
        if len(self._merged_ids) >= _PENDING_LIMIT:
            self._merged_ids.clear()
        self._merged_ids[cluster.id] = into.id
        if len(self._merge_log) < _PENDING_LIMIT:
            self._merge_log.append((cluster.id, into.id))
        self._changed[into.id] = into
        self.merged += 1

    def _insert(self, cluster: _Cluster) -> None:
        while len(self._clusters) >= self.max_templates:
            _, oldest = self._clusters.popitem(last=False)
            self._unindex(oldest)
            oldest.alive = False
            self.evicted += 1
        self._clusters[cluster.id] = cluster
        self._index(cluster)

    def _drop(self, cluster: _Cluster) -> None:
        self._clusters.pop(cluster.id, None)
        self._unindex(cluster)
        cluster.alive = False

    def _index(self, cluster: _Cluster) -> None:
        self._buckets.setdefault(cluster.key, []).append(cluster)
        if cluster.key[1] != WILDCARD and len(cluster.tokens) >= 3:
            self._by_rest.setdefault(tuple(cluster.tokens[1:]), []).append(cluster)

    def _unindex(self, cluster: _Cluster) -> None:
        bucket = self._buckets.get(cluster.key)
        if bucket is not None and cluster in bucket:
            bucket.remove(cluster)
            if not bucket:
                del self._buckets[cluster.key]
        if cluster.key[1] != WILDCARD and len(cluster.tokens) >= 3:
            rest = tuple(cluster.tokens[1:])
            siblings = self._by_rest.get(rest)
            if siblings is not None and cluster in siblings:
                siblings.remove(cluster)
                if not siblings:
                    del self._by_rest[rest]


def _kept_checks(line: str, tokens: list[str]) -> tuple[tuple[int, str], ...] | None:
    """Where the digits that a template keeps (``ssh2``) are in ``line``: ``(offset, text)``
    pairs, in order; None if one is not found."""
    checks: list[tuple[int, str]] = []
    start = 0
    for token in tokens:
        if HAS_DIGIT(token) is None:
            continue
        for part in token.split(WILDCARD):
            if HAS_DIGIT(part) is not None:
                at = line.find(part, start)
                if at < 0:
                    return None
                checks.append((at, part))
                start = at + len(part)
    return tuple(checks)


def _covers(template: list[str], tokens: list[str]) -> bool:
    return len(template) == len(tokens) and all(
        t == m or token_matches(t, m) for t, m in zip(template, tokens, strict=True)
    )
