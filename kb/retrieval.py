"""Retrieval: dense (FAISS), keyword (SQLite FTS5 BM25) and their fusion, with near-duplicates removed."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from kb.knowledge import KnowledgeBase
from kb.store import ChunkRow

MODES = ("hybrid", "dense", "keyword")
RRF_K = 60

# Words that carry no meaning for keyword matching; dropping them keeps OR-queries selective.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not of off on once only or other our ours ourselves out over own same she should so some
    such than that the their theirs them themselves then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your yours
    yourself yourselves tell please know many much us""".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its scores."""

    chunk: ChunkRow
    score: float  # the score the ranking used (fused, cosine or BM25 depending on mode)
    rank: int  # 1-based
    dense: float | None = None  # cosine similarity to the query, when known
    keyword: float | None = None  # BM25 score, when the passage matched keywords


def fts_query(text: str) -> str:
    """An FTS5 MATCH expression: the query's content words, quoted, OR-ed."""
    words = [w.lower() for w in _WORD.findall(text)]
    content = [w for w in words if w not in STOPWORDS] or words
    unique = list(dict.fromkeys(content))
    return " OR ".join(f'"{w}"' for w in unique)


def rrf(rankings: list[list[int]], weights: list[float], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of ranked id lists; returns (id, fused score) best first."""
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, cid in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = [w.lower() for w in _WORD.findall(text)]
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def drop_near_duplicates(chunks: list[ChunkRow], threshold: float = 0.9) -> list[int]:
    """Indexes of chunks to keep: each kept one differs from every better-ranked one."""
    kept: list[int] = []
    kept_sh: list[set[tuple[str, ...]]] = []
    for i, chunk in enumerate(chunks):
        sh = _shingles(chunk.text)
        dup = any(len(sh & other) / max(1, len(sh | other)) >= threshold for other in kept_sh)
        if not dup:
            kept.append(i)
            kept_sh.append(sh)
    return kept


class Retriever:
    """Searches one knowledge base."""

    def __init__(self, kb: KnowledgeBase, *, dense_weight: float = 1.0, keyword_weight: float = 1.0) -> None:
        self.kb = kb
        self.weights = (dense_weight, keyword_weight)

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        """Query vectors, batched."""
        return self.kb.embedder.embed(queries, batch_size=self.kb.settings.embed_batch)

    def search(self, query: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        """The k best passages for a query."""
        return self.search_many([query], k, mode)[0]

    def search_many(self, queries: list[str], k: int = 10, mode: str = "hybrid") -> list[list[Hit]]:
        """The k best passages for each query; queries are embedded together."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        depth = max(k * 3, 50)
        qvecs = self.embed_queries(queries) if mode != "keyword" else None
        dense_lists = self.kb.vectors.search(qvecs, depth) if qvecs is not None else [[] for _ in queries]
        out = []
        for qi, query in enumerate(queries):
            dense = dense_lists[qi]
            kw = self.kb.store.keyword_search(fts_query(query), depth) if mode != "dense" else []
            if mode == "dense":
                ranked = dense
            elif mode == "keyword":
                ranked = kw
            else:
                ranked = rrf([[c for c, _ in dense], [c for c, _ in kw]], list(self.weights))
            out.append(self._hits(ranked, dict(dense), dict(kw), qvecs[qi] if qvecs is not None else None, k))
        return out

    def _hits(
        self, ranked: list[tuple[int, float]], dense: dict[int, float], kw: dict[int, float],
        qvec: np.ndarray | None, k: int,
    ) -> list[Hit]:
        # Fetch a few extra so that dropping duplicates still leaves k.
        head = ranked[: k + 10]
        rows = self.kb.store.chunks(cid for cid, _ in head)
        head = [(cid, s) for cid, s in head if cid in rows]
        keep = drop_near_duplicates([rows[cid] for cid, _ in head])
        head = [head[i] for i in keep][:k]
        missing = [cid for cid, _ in head if cid not in dense]
        if qvec is not None and missing:
            vecs = self.kb.store.vectors(missing, self.kb.manifest.dim)
            dense = {**dense, **{cid: float(v @ qvec) for cid, v in zip(missing, vecs, strict=True)}}
        return [
            Hit(rows[cid], float(score), rank, dense.get(cid), kw.get(cid))
            for rank, (cid, score) in enumerate(head, start=1)
        ]
