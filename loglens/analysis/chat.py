"""Chat: answers from retrieved logs, with citations.

Each turn runs :func:`loglens.analysis.ask.ask` on the last user message (the query, the window, the
numbers), then retrieves the matching records and patterns (the patterns ranked by meaning through
:mod:`loglens.analysis.semantic` when it is installed, otherwise lexically). The answer cites what it
used with ``[record:ID]`` and ``[pattern:ID]`` markers and a ``citations`` list of ids that exist.
Without an LLM the answer is a templated summary of those facts; with one, the model narrates the
same facts and is told to say when they do not contain the answer. When nothing matches, the reply
says the logs do not contain the answer. Answers go through the QA cache (:mod:`.cache`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from loglens.analysis.ask import _STOP, ask, quote
from loglens.analysis.cache import QACache
from loglens.query.engine import PatternQueries, QueryEngine, record_dict
from loglens.query.errors import QueryError
from loglens.query.timerange import now_ns

MAX_RECORDS = 8
MAX_PATTERNS = 5
CITATION = re.compile(r"\[(record|pattern):(\d+)\]")
NOT_IN_LOGS = "The logs do not contain the answer to this question"

SYSTEM = """You are LogLens, answering questions about a system's logs.
Use ONLY the facts below (computed from the logs); never invent numbers, ids, times or causes.
Cite every record and pattern you rely on with its marker exactly as given, e.g. [record:123] or
[pattern:7]. If the facts do not answer the question, say "The logs do not contain the answer" and
suggest a query. Be brief: a few sentences."""


class ChatError(ValueError):
    """The request is malformed (no user message...)."""


def _question(messages: list[dict[str, Any]]) -> str:
    if not isinstance(messages, list) or not messages:
        raise ChatError("messages must be a non-empty list of {role, content}")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or \
                m.get("role") not in ("user", "assistant", "system"):
            raise ChatError("each message is {\"role\": \"user\"|\"assistant\", \"content\": \"...\"}")
    users = [m["content"] for m in messages if m["role"] == "user"]
    if not users or not users[-1].strip():
        raise ChatError("there is no user message to answer")
    return users[-1].strip()


def _lexical_query(engine: QueryEngine, question: str) -> str:
    """An OR of the question's content words that occur in the logs (prefix-tolerant)."""
    words = []
    for w in re.findall(r"[A-Za-z_][\w-]{2,}", question):
        low = w.lower()
        if low in _STOP:
            continue
        stem = low[:-1] if low.endswith("s") and len(low) > 4 else low
        atom = f"{stem}*" if re.fullmatch(r"\w+", stem) else quote(stem)
        try:
            if engine.count(atom) > 0:
                words.append(atom)
        except (QueryError, ValueError):
            continue
    return " OR ".join(dict.fromkeys(words))


_INDEXES: dict[int, Any] = {}


def _semantic_patterns(engine: QueryEngine, question: str, limit: int) -> list[int] | None:
    """Pattern ids ranked by meaning (loglens.analysis.semantic, when installed); None otherwise."""
    try:
        from loglens.analysis.semantic import PatternIndex
    except ImportError:
        return None
    key = id(engine.store)
    held = _INDEXES.get(key)
    if held is None or held.store is not engine.store:
        if len(_INDEXES) > 16:
            _INDEXES.clear()
        held = _INDEXES[key] = PatternIndex(engine.store)
    try:
        return [m.template_id for m in held.similar(question, limit)]
    except Exception:
        return None


def retrieve(engine: QueryEngine, question: str, asked: dict[str, Any]) -> dict[str, Any]:
    """The facts for an answer: matching records and patterns, and how they were found."""
    start, end = asked.get("_start"), asked.get("_end")
    query = asked.get("query") or ""
    method = "query"
    total = 0
    if asked.get("operation") is not None:
        try:
            total = engine.count(query, start, end)
        except (QueryError, ValueError):
            total = 0
    if not total:
        lexical = _lexical_query(engine, question)
        if lexical:
            query, method = lexical, "lexical"
            total = engine.count(query, start, end)
    records: list[dict[str, Any]] = []
    patterns: list[dict[str, Any]] = []
    if total:
        records = [record_dict(r) for r in engine.search(query, start, end, limit=MAX_RECORDS).records]
        listing = PatternQueries(engine).list(query, start, end, limit=MAX_PATTERNS)
        patterns = [{"id": p["id"], "template": p["template"], "count": p["count"], "first_seen": p["first_seen"],
                     "last_seen": p["last_seen"]} for p in listing["patterns"]]
    ranked = _semantic_patterns(engine, question, MAX_PATTERNS)
    if ranked:
        known = {p["id"] for p in patterns}
        by_id = {t.id: t for t in engine.store.templates()}
        for tid in ranked:
            if tid not in known and tid in by_id and len(patterns) < MAX_PATTERNS * 2:
                t = by_id[tid]
                patterns.append({"id": t.id, "template": t.text, "count": t.count, "first_seen": None,
                                 "last_seen": None, "semantic": True})
        method += "+semantic"
    return {"query": query, "count": total, "records": records, "patterns": patterns, "method": method}


def facts_text(asked: dict[str, Any], facts: dict[str, Any]) -> str:
    lines = [f"Question interpreted as: operation={asked.get('operation')} query=`{facts['query']}` "
             f"from={asked.get('from')} to={asked.get('to')}",
             f"Computed answer: {asked.get('answer')}",
             f"Matching records: {facts['count']}"]
    if facts["patterns"]:
        lines.append("Patterns (message templates):")
        lines += [f"[pattern:{p['id']}] {p['template']!r} seen {p['count']} times" for p in facts["patterns"]]
    if facts["records"]:
        lines.append("Records (newest first):")
        lines += [f"[record:{r['id']}] {r['timestamp']} {r['level'] or '-'} {r['service']} {r['host']}: "
                  f"{r['message'][:300]}" for r in facts["records"]]
    return "\n".join(lines)


def templated_answer(asked: dict[str, Any], facts: dict[str, Any]) -> str:
    if not facts["count"] and not facts["patterns"]:
        suggestion = asked.get("suggested_query") or asked.get("query") or "level>=ERROR"
        return (f"{NOT_IN_LOGS}: no records match `{facts['query'] or asked.get('query') or '*'}` in the window "
                f"({asked.get('from') or 'the beginning'} to {asked.get('to') or 'now'}). "
                f"Try a broader query, for example `{suggestion}`.")
    parts = []
    if not facts["count"]:
        parts.append(f"{NOT_IN_LOGS} directly: no records match `{facts['query'] or asked.get('query') or '*'}` "
                     "in the window. Patterns with a similar meaning:")
    elif asked.get("operation") is not None and facts["method"].startswith("query"):
        parts.append(str(asked.get("answer")))
    else:
        parts.append(f"I could not read this as a precise query, so here is what the logs hold about its words: "
                     f"{facts['count']:,} records match `{facts['query']}`.")
    if facts["patterns"] and asked.get("operation") != "patterns":
        parts.append("Most frequent patterns: " + "; ".join(
            f"[pattern:{p['id']}] {p['template']!r} ({p['count']:,})" for p in facts["patterns"][:3]) + ".")
    if facts["records"]:
        parts.append("Examples: " + "; ".join(
            f"[record:{r['id']}] {r['timestamp'][:19]} {r['service']}: {r['message'][:120]!r}"
            for r in facts["records"][:3]) + ".")
    return " ".join(parts)


def citations(text: str, facts: dict[str, Any]) -> list[dict[str, str]]:
    """The ids cited in ``text`` that were really among the facts, in order, once each."""
    valid = {("record", str(r["id"])) for r in facts["records"]}
    valid |= {("pattern", str(p["id"])) for p in facts["patterns"]}
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for kind, ident in CITATION.findall(text):
        if (kind, ident) in valid and (kind, ident) not in seen:
            seen.add((kind, ident))
            out.append({"type": kind, "id": ident})
    return out


def _strip_invalid(text: str, facts: dict[str, Any]) -> str:
    valid = {f"[{c['type']}:{c['id']}]" for c in citations(text, facts)}
    return CITATION.sub(lambda m: m.group(0) if m.group(0) in valid else "", text)


def chat_events(engine: QueryEngine, messages: list[dict[str, Any]], *, now: int | None = None, llm: Any = None,
                cache: QACache | None = None, filters: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """The answer as events: ``meta`` (query, window), ``delta`` pieces of text, then ``done`` with the
    whole reply. ``chat`` collects them; the HTTP route sends them as Server-Sent Events."""
    question = _question(messages)
    anchored = now is not None
    now = now if now is not None else now_ns()
    cache_filters = f"{filters}|now={now if anchored else ''}|llm={bool(llm)}"
    if cache is not None:
        hit = cache.get(question, cache_filters, lambda q, f, t: engine.count(q, f, t))
        if hit is not None:
            yield "meta", {k: hit.get(k) for k in ("query", "operation", "from", "to")} | {"cached": True}
            yield "delta", {"text": hit["answer"]}
            yield "done", hit
            return
    asked = ask(engine, question, now=now, llm=llm)
    asked["_start"] = _param(asked.get("from"))
    asked["_end"] = _param(asked.get("to"))
    facts = retrieve(engine, question, asked)
    yield "meta", {"query": facts["query"], "operation": asked.get("operation"), "from": asked.get("from"),
                   "to": asked.get("to"), "cached": False}
    llm_used = False
    text = ""
    if llm is not None:
        from loglens.llm.client import LLMError, Message

        history = [Message(m["role"], m["content"]) for m in messages[:-1] if m["role"] in ("user", "assistant")]
        prompt = f"Facts from the logs:\n{facts_text(asked, facts)}\n\nQuestion: {question}"
        try:
            for piece in llm.stream([*history, Message("user", prompt)], system=SYSTEM):
                text += piece
                yield "delta", {"text": piece}
            llm_used = True
        except LLMError as exc:
            note = f"\n(The LLM failed: {exc}; here are the facts.)\n"
            yield "delta", {"text": note}
            text += note
    if not llm_used:
        answer = templated_answer(asked, facts)
        for i in range(0, len(answer), 80):
            yield "delta", {"text": answer[i:i + 80]}
        text += answer
    text = _strip_invalid(text, facts)
    cited = citations(text, facts)
    found = bool(facts["count"] or facts["patterns"])
    reply = {
        "answer": text, "citations": cited, "query": facts["query"], "operation": asked.get("operation"),
        "from": asked.get("from"), "to": asked.get("to"), "count": facts["count"], "retrieval": facts["method"],
        "records": facts["records"], "patterns": facts["patterns"], "found": found,
        "llm_used": llm_used or bool(asked.get("llm_used")), "cached": False,
    }
    if cache is not None and found:
        ends_now = not anchored and asked["_end"] == str(now)  # new data after it is new matching data
        cache.put(question, cache_filters, reply, query=facts["query"], start=asked["_start"],
                  end=asked["_end"], relative=bool(asked.get("relative")), ends_now=ends_now,
                  count=facts["count"])
    yield "done", reply


def _param(ts: str | None) -> str | None:
    """An API time (RFC 3339) back to an engine parameter (epoch ns)."""
    if ts is None:
        return None
    from loglens.query.timerange import parse_time

    ns = parse_time(ts)
    return str(ns) if ns is not None else None


def chat(engine: QueryEngine, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    reply: dict[str, Any] = {}
    for event, data in chat_events(engine, messages, **kwargs):
        if event == "done":
            reply = data
    return reply


def sse(events: Iterator[tuple[str, dict[str, Any]]]) -> Iterator[bytes]:
    """Server-Sent Events: ``event: NAME`` and ``data: JSON`` per event; errors as an ``error`` event."""
    try:
        for event, data in events:
            yield b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
    except Exception as exc:  # the stream has started: report in-band
        yield b"event: error\ndata: " + orjson.dumps({"error": str(exc)}) + b"\n\n"
