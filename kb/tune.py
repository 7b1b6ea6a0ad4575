"""Tuning hybrid fusion to one knowledge base, from pseudo-queries made of its own documents.

A pseudo-query is a piece of a stored document used as a query, with that piece *held out*
of the document while it is searched: a sentence (removed from its passage), a few content
words of a sentence (the sentence removed), a title (removed from the title field and from the
embedded text of the document's passages), or a heading with a phrase of its section (the
phrase removed). The document it came from is the one relevant answer. Both sources see the
held-out collection: dense scores of the source's passages are recomputed from a fresh embedding
of the edited passage; keyword scores come from FTS5 itself, with the edited rows written inside
a savepoint that is rolled back, so BM25 statistics are exact and nothing is ever stored.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from kb.errors import InputError
from kb.indexer import embedding_text
from kb.knowledge import KnowledgeBase, write_fusion
from kb.retrieval import _WORD, DENSE_WEIGHT, STOPWORDS, fts_query, score_fusion
from kb.store import ChunkRow

KINDS = ("sentence", "words", "title", "heading")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
MIN_WORDS, MAX_WORDS = 5, 40  # a usable sentence
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Edit:
    """A passage as the held-out collection has it: title, heading path and body."""

    title: str
    heading: tuple[str, ...]
    body: str


@dataclass(frozen=True)
class PseudoQuery:
    """A query made from a document, the document it came from, and its passages with the query held out."""

    text: str
    kind: str  # one of KINDS
    doc_id: int
    edits: dict[int, Edit]  # chunk id -> the passage without the held-out piece


@dataclass(frozen=True)
class Lists:
    """One pseudo-query's dense and keyword candidates, searched in the held-out collection."""

    query: PseudoQuery
    dense: list[tuple[int, float]]  # (chunk id, cosine) best first
    keyword: list[tuple[int, float]]  # (chunk id, BM25) best first


def sentences(text: str) -> list[str]:
    """The sentences of a passage (a plain rule: end punctuation, then a capital or digit)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def content_words(text: str) -> list[str]:
    """The words of a text that keyword search would use, in order, stopwords dropped."""
    return [w for w in _WORD.findall(text) if w.lower() not in STOPWORDS]


def _remove(text: str, piece: str) -> str:
    return " ".join(text.replace(piece, " ").split())


def _usable(sentence: str) -> bool:
    n = len(sentence.split())
    return MIN_WORDS <= n <= MAX_WORDS and len(content_words(sentence)) >= 3


def _held_out(chunks: Sequence[ChunkRow], piece: str) -> dict[int, Edit]:
    """Every passage of the document that holds `piece`, with it removed."""
    return {c.id: Edit(c.title, c.heading_path, _remove(c.text, piece)) for c in chunks if piece and piece in c.text}


def make_pseudo_query(kind: str, chunks: Sequence[ChunkRow], rng: random.Random) -> PseudoQuery | None:
    """A pseudo-query of one kind from a document's passages, or None when the document offers none."""
    if not chunks:
        return None
    doc_id = chunks[0].doc_id
    if kind == "title":
        title = chunks[0].title.strip()
        if len(content_words(title)) < 1:
            return None
        edits = {c.id: Edit("", c.heading_path, c.text) for c in chunks}
        return PseudoQuery(title, kind, doc_id, edits)
    if kind == "heading":
        with_heading = [c for c in chunks if c.heading_path]
        if not with_heading:
            return None
        chunk = rng.choice(with_heading)
        options = [s for s in sentences(chunk.text) if _usable(s)]
        if not options:
            return None
        words = rng.choice(options).split()
        start = rng.randrange(0, max(1, len(words) - 5))
        phrase = " ".join(words[start : start + 5])
        edits = _held_out(chunks, phrase)
        return PseudoQuery(f"{chunk.heading_path[-1]} {phrase}", kind, doc_id, edits) if edits else None
    chunk = rng.choice(list(chunks))
    options = [s for s in sentences(chunk.text) if _usable(s)]
    # A passage of one sentence would be left empty: keep at least one other sentence.
    if not options or len(sentences(chunk.text)) < 2:
        return None
    sentence = rng.choice(options)
    edits = _held_out(chunks, sentence)
    if not edits:
        return None
    if kind == "sentence":
        return PseudoQuery(sentence, kind, doc_id, edits)
    words = content_words(sentence)
    start = rng.randrange(0, max(1, len(words) - 3))
    return PseudoQuery(" ".join(words[start : start + rng.choice((2, 3, 4))]), "words", doc_id, edits)


def pseudo_queries(kb: KnowledgeBase, n: int, *, seed: int = 0) -> list[PseudoQuery]:
    """Up to `n` pseudo-queries from documents sampled evenly, one per document, the kinds taken in turn.

    A document that cannot give the kind whose turn it is (no title, no heading, one sentence)
    is kept for a later turn rather than handing it to another kind, so kinds stay balanced.
    """
    rng = random.Random(seed)
    docs = [d for d in kb.store.documents() if d.n_chunks > 0]
    rng.shuffle(docs)
    out: list[PseudoQuery] = []
    counts = dict.fromkeys(KINDS, 0)
    for doc in docs:
        if len(out) >= n:
            break
        chunks = kb.store.document_chunks(doc.id)
        # The kind with the fewest so far goes first; ties in KINDS order.
        for kind in sorted(KINDS, key=lambda k: (counts[k], KINDS.index(k))):
            pq = make_pseudo_query(kind, chunks, rng)
            if pq is not None:
                out.append(pq)
                counts[kind] += 1
                break
    return out


@contextmanager
def _edited_fts(kb: KnowledgeBase, edits: dict[int, Edit]) -> Iterator[None]:
    """FTS5 rows replaced by their edits for the duration, then rolled back (never committed)."""
    db = kb.store.db
    db.execute("SAVEPOINT kb_tune")
    try:
        for cid, e in edits.items():
            db.execute(
                "UPDATE chunks_fts SET title = ?, heading = ?, body = ? WHERE rowid = ?",
                (e.title, " ".join(e.heading), e.body, cid),
            )
        yield
    finally:
        db.execute("ROLLBACK TO kb_tune")
        db.execute("RELEASE kb_tune")


def held_out_lists(
    kb: KnowledgeBase, queries: Sequence[PseudoQuery], depth: int, progress: Progress | None = None
) -> list[Lists]:
    """Dense and keyword candidates of each pseudo-query, searched as if its piece were not stored."""
    if not kb.write:
        raise ValueError("held-out search needs the knowledge base opened for writing")
    batch = kb.settings.embed_batch
    qvecs = kb.embedder.embed([q.text for q in queries], batch_size=batch)
    dense_lists = kb.vectors.search(qvecs, depth)
    # Re-embed the edited passages that the dense search found: without the held-out piece
    # they score lower, perhaps out of the list. Edited passages it did not find stay out.
    todo = [(qi, cid) for qi, q in enumerate(queries) for cid, _ in dense_lists[qi] if cid in q.edits]
    texts = []
    for qi, cid in todo:
        e = queries[qi].edits[cid]
        texts.append(embedding_text(e.title, e.heading, e.body))
    vecs = kb.embedder.embed(texts, batch_size=batch) if texts else np.zeros((0, qvecs.shape[1]), np.float32)
    fresh = {(qi, cid): float(v @ qvecs[qi]) for (qi, cid), v in zip(todo, vecs, strict=True)}
    out = []
    for qi, q in enumerate(queries):
        dense = [(cid, fresh.get((qi, cid), s)) for cid, s in dense_lists[qi]]
        dense.sort(key=lambda p: -p[1])
        with _edited_fts(kb, q.edits):
            keyword = kb.store.keyword_search(fts_query(q.text), depth)
        out.append(Lists(q, dense, keyword))
        if progress:
            progress(qi + 1, len(queries))
    return out


# ---------------------------------------------------------------- choosing the fusion


WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))  # dense weights tried: 0 = keyword only, 1 = dense only
TUNE_DEPTH = 100  # candidates per source, as `kb search` and `kb ask` fuse them (candidate_depth)
MIN_QUERIES = 50  # fewer pseudo-queries than this decide nothing
NOISE = 2.0  # standard errors by which a weight must beat the default to replace it


@dataclass(frozen=True)
class Choice:
    """What tuning found: the pseudo-query score of every weight tried, and the weight chosen."""

    dense_weight: float  # the weight chosen: `best` if it beats the default clearly, else the default
    best: float  # the weight whose neighbourhood scored best
    scores: dict[float, float]  # dense weight -> mean nDCG@10 over the pseudo-queries
    default_weight: float
    margin: float  # best minus default, in mean nDCG@10
    stderr: float  # standard error of that difference (paired over pseudo-queries)
    queries: int
    kinds: dict[str, int]  # pseudo-queries of each kind


def ndcg_one(ranked: Sequence[tuple[int, float]], doc_of: dict[int, int], relevant: int, k: int = 10) -> float:
    """nDCG@k of a passage ranking when one document is relevant: 1 / log2(1 + its rank among documents)."""
    seen: set[int] = set()
    for cid, _ in ranked:
        doc = doc_of.get(cid)
        if doc is None or doc in seen:
            continue
        seen.add(doc)
        if doc == relevant:
            return 1.0 / math.log2(1 + len(seen))
        if len(seen) >= k:
            break
    return 0.0


def per_query_scores(
    lists: Sequence[Lists], doc_of: dict[int, int], weights: Sequence[float] = WEIGHTS, depth: int = TUNE_DEPTH
) -> dict[float, list[float]]:
    """nDCG@10 of each pseudo-query's source document under score fusion with each dense weight."""
    out: dict[float, list[float]] = {w: [] for w in weights}
    for item in lists:
        dense, keyword = item.dense[:depth], item.keyword[:depth]
        for w in weights:
            ranked = score_fusion(dense, keyword, depth, w)
            out[w].append(ndcg_one(ranked, doc_of, item.query.doc_id))
    return out


def choose(per_query: dict[float, list[float]], default: float, kinds: dict[str, int]) -> Choice:
    """The weight whose neighbourhood ranks the pseudo-queries' sources best, if it beats the default clearly.

    The mean curve is smoothed over neighbouring weights (a single lucky weight is noise), and
    the default stays unless the chosen weight beats it by more than `NOISE` standard errors of
    the paired difference (eleven weights are compared, so one lucky one is likely).
    """
    weights = sorted(per_query)
    means = {w: float(np.mean(per_query[w])) for w in weights}
    smooth = {}
    for i, w in enumerate(weights):
        near = weights[max(0, i - 1) : i + 2]
        smooth[w] = float(np.mean([means[x] for x in near]))
    best = max(weights, key=lambda w: (smooth[w], means[w], -abs(w - default)))
    diff = np.array(per_query[best]) - np.array(per_query[default])
    stderr = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
    margin = float(diff.mean()) if len(diff) else 0.0
    return Choice(
        dense_weight=best if margin > NOISE * stderr else default,
        best=best,
        scores=means,
        default_weight=default,
        margin=margin,
        stderr=stderr,
        queries=len(diff),
        kinds=kinds,
    )


# ---------------------------------------------------------------- tuning a knowledge base


RECORD_VERSION = 1
DEFAULT_QUERIES = 400


@dataclass(frozen=True)
class TuneReport:
    """The outcome of `tune`: the choice, the manifest record made of it, and the time taken."""

    choice: Choice
    record: dict[str, Any]
    recorded: bool
    seconds: float


def chunk_docs(kb: KnowledgeBase, ids: set[int]) -> dict[int, int]:
    """Document id of each of the given chunks (the candidates only: a large collection has millions)."""
    out: dict[int, int] = {}
    todo = sorted(ids)
    for start in range(0, len(todo), 500):
        part = todo[start : start + 500]
        marks = ",".join("?" * len(part))
        rows = kb.store.db.execute(f"SELECT id, doc_id FROM chunks WHERE id IN ({marks})", part)
        out.update((int(c), int(d)) for c, d in rows)
    return out


def tune(
    kb: KnowledgeBase,
    *,
    queries: int = DEFAULT_QUERIES,
    seed: int = 0,
    record: bool = True,
    progress: Progress | None = None,
) -> TuneReport:
    """Choose the hybrid dense weight from pseudo-queries of this knowledge base; record it in the manifest.

    Raises InputError when the collection is too small to make `MIN_QUERIES` pseudo-queries.
    """
    started = time.monotonic()
    made = pseudo_queries(kb, queries, seed=seed)
    if len(made) < MIN_QUERIES:
        raise InputError(
            f"{kb.folder}: only {len(made)} pseudo-queries could be made from its documents (at least "
            f"{MIN_QUERIES} are needed to tell fusion settings apart); the default fusion is kept"
        )
    lists = held_out_lists(kb, made, TUNE_DEPTH, progress)
    kinds = {kind: sum(1 for q in made if q.kind == kind) for kind in KINDS}
    seen = {cid for item in lists for cid, _ in (*item.dense[:TUNE_DEPTH], *item.keyword[:TUNE_DEPTH])}
    choice = choose(per_query_scores(lists, chunk_docs(kb, seen)), DENSE_WEIGHT, kinds)
    counts = kb.store.counts()
    entry = {
        "version": RECORD_VERSION,
        "method": "score",
        "dense_weight": choice.dense_weight,
        "default_weight": choice.default_weight,
        "best_weight": choice.best,
        "chosen_by": "kb tune: pseudo-queries made from the collection, each ranking its held-out source",
        "requested": queries,
        "pseudo_queries": choice.queries,
        "kinds": choice.kinds,
        "seed": seed,
        "ndcg@10": {f"{w:.1f}": round(s, 4) for w, s in choice.scores.items()},
        "margin": round(choice.margin, 4),
        "stderr": round(choice.stderr, 4),
        "documents": counts["documents"],
        "chunks": counts["chunks"],
        "tuned_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if record:
        write_fusion(kb.folder, entry)
        kb.fusion = entry
    return TuneReport(choice, entry, record, time.monotonic() - started)
