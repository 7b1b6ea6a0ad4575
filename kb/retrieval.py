"""Retrieval: dense (FAISS), keyword (SQLite FTS5 BM25) and their fusion, with near-duplicates removed."""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from kb.knowledge import KnowledgeBase
from kb.store import ChunkRow
from kb.text import STOPWORDS

MODES = ("hybrid", "dense", "keyword")
FUSIONS = ("score", "rrf")
RRF_K = 60
# Share of the dense score in hybrid score fusion. Tuned on half of the SciFact train queries
# and confirmed on the other half (docs/retrieval.md); 0.5-0.7 are all within 0.005 nDCG@10.
DENSE_WEIGHT = 0.6

_WORD = re.compile(r"\w+", re.UNICODE)


Allow = Collection[int] | None  # document ids a caller may see; None: every document


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its scores."""

    chunk: ChunkRow
    score: float  # the score the ranking used (fused, cosine or BM25 depending on mode)
    rank: int  # 1-based
    dense: float | None = None  # cosine similarity to the query, when known
    keyword: float | None = None  # BM25 score, when the passage matched keywords

    def to_json(self) -> dict:
        """The documented JSON form of a search hit (`kb search --json`, `POST /v1/search`)."""
        c = self.chunk
        return {
            "rank": self.rank,
            "score": self.score,
            "relevance": self.dense,
            "bm25": self.keyword,
            **c.location_json(),
            "char_start": c.char_start,
            "char_end": c.char_end,
            "text": c.text,
        }


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


def score_fusion(
    dense: list[tuple[int, float]],
    keyword: list[tuple[int, float]],
    depth: int,
    dense_weight: float = DENSE_WEIGHT,
) -> list[tuple[int, float]]:
    """Weighted sum of max-normalised scores of two lists cut at `depth`; (id, fused score) best first.

    Each list's scores are divided by its best score, so a query's best passage scores 1 in
    each list whatever the scale of cosines and BM25. A candidate missing from a full list
    takes that list's lowest score (it ranked below all of them, which is all we know); one
    missing from a list shorter than `depth` scores 0, as that list holds every match.
    """
    fused: dict[int, float] = {}
    lists = [(dict(pairs), weight) for pairs, weight in ((dense, dense_weight), (keyword, 1.0 - dense_weight))]
    ids = {cid for scores, _ in lists for cid in scores}
    for scores, weight in lists:
        if not scores:
            continue
        scale = abs(max(scores.values())) or 1.0  # a negative best cosine must not flip the order
        floor = min(scores.values()) if len(scores) >= depth else 0.0
        for cid in ids:
            fused[cid] = fused.get(cid, 0.0) + weight * scores.get(cid, floor) / scale
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


@functools.lru_cache(maxsize=8192)
def _shingles(text: str, n: int = 3) -> frozenset[str]:
    # Cached: a server meets the same passages query after query, and this was a third of a search.
    # Each shingle is its words joined by a space (words never hold one, so distinct shingles stay
    # distinct): a string keeps its hash, so comparing two sets rehashes nothing, unlike tuples.
    words = [w.lower() for w in _WORD.findall(text)]
    return frozenset(" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1)))


def drop_near_duplicates(chunks: list[ChunkRow], threshold: float = 0.9) -> list[int]:
    """Indexes of chunks to keep: each kept one differs from every better-ranked one."""
    kept: list[int] = []
    kept_sh: list[tuple[frozenset[str], int]] = []
    for i, chunk in enumerate(chunks):
        sh = _shingles(chunk.text)
        n = len(sh)
        for other, m in kept_sh:
            # The Jaccard similarity of two sets is at most |smaller| / |larger| (the rounded
            # quotient as well, rounding being monotonic): a pair this bound rules out needs no
            # intersection, and most pairs are ruled out so.
            small, large = (n, m) if n < m else (m, n)
            if small / max(1, large) >= threshold and _jaccard(sh, other) >= threshold:
                break
        else:
            kept.append(i)
            kept_sh.append((sh, n))
    return kept


def _jaccard(a: frozenset, b: frozenset) -> float:
    both = len(a & b)
    return both / max(1, len(a) + len(b) - both)


def candidate_depth(k: int) -> int:
    """How many candidates each source contributes when k passages are wanted."""
    # Deeper lists fuse better further down (SciFact: fused Recall@100 0.938 at 50, 0.958 at
    # 100) and cost nothing measurable: FTS5 scores every match whatever the LIMIT.
    return max(k * 5, 100)


def tuned_weight(kb: KnowledgeBase) -> tuple[float, str]:
    """The dense weight hybrid search uses on this knowledge base, and where it comes from ("tuned" or "default")."""
    record = getattr(kb, "fusion", None)
    if record is not None:
        return float(record["dense_weight"]), "tuned"
    return DENSE_WEIGHT, "default"


@dataclass(frozen=True)
class Candidates:
    """One query's fused ranking, with the per-source scores it was made from."""

    ranked: list[tuple[int, float]]  # (chunk id, score) best first
    dense: dict[int, float]  # chunk id -> cosine, for the dense candidates
    keyword: dict[int, float]  # chunk id -> BM25, for the keyword candidates
    qvec: np.ndarray | None  # the query vector, when the mode embeds the query


class Retriever:
    """Searches one knowledge base.

    Hybrid mode fuses the dense and keyword candidates by `score_fusion` with a dense weight:
    the one given, else the one `kb tune` recorded for this knowledge base (its manifest), else
    `DENSE_WEIGHT`. `fusion="rrf"` uses plain reciprocal-rank fusion instead (equal weights,
    k=60), kept as the baseline that `kb eval retrieval --fusion rrf` measures.
    """

    def __init__(self, kb: KnowledgeBase, *, fusion: str = "score", dense_weight: float | None = None) -> None:
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}")
        if dense_weight is None:
            dense_weight, self.weight_source = tuned_weight(kb)
        else:
            self.weight_source = "given"
        if not 0.0 <= dense_weight <= 1.0:
            raise ValueError(f"dense_weight must be within 0-1, got {dense_weight}")
        self.kb = kb
        self.fusion = fusion
        self.dense_weight = dense_weight

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        """Query vectors, batched."""
        return self.kb.embedder.embed(queries, batch_size=self.kb.settings.embed_batch)

    def search(self, query: str, k: int = 10, mode: str = "hybrid", allow: Allow = None) -> list[Hit]:
        """The k best passages for a query (among the documents in `allow`, when given)."""
        return self.search_many([query], k, mode, allow)[0]

    def search_many(
        self, queries: list[str], k: int = 10, mode: str = "hybrid", allow: Allow = None
    ) -> list[list[Hit]]:
        """The k best passages for each query; queries are embedded together. `allow`: document ids
        the caller may see (None: all), applied to the dense and keyword candidates alike."""
        cands = self.candidates(queries, mode, candidate_depth(k), allow)
        # Keyword ranking needs no query vector, but every hit reports its cosine relevance
        # (`kb ask` refuses on it), so keyword mode embeds the queries too.
        qvecs = [c.qvec for c in cands] if mode != "keyword" else list(self.embed_queries(queries))
        return [self._hits(c.ranked, c.dense, c.keyword, qv, k, allow) for c, qv in zip(cands, qvecs, strict=True)]

    def rank_many(self, queries: list[str], mode: str = "hybrid", depth: int = 100) -> list[list[tuple[int, float]]]:
        """(chunk id, score) best first for each query, fusing `depth` candidates per source; no de-duplication."""
        return [c.ranked for c in self.candidates(queries, mode, depth)]

    def candidates(self, queries: list[str], mode: str, depth: int, allow: Allow = None) -> list[Candidates]:
        """The ranked candidates of each query, with the dense and keyword scores behind them.

        With `allow`, each source ranks only the chunks of those documents, `depth` of them, so a
        filter that hides most documents still leaves full lists of the visible ones.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        qvecs = self.embed_queries(queries) if mode != "keyword" else None
        chunk_allow = self.kb.store.chunk_ids_of(allow) if allow is not None and qvecs is not None else None
        dense_lists = self.kb.vectors.search(qvecs, depth, chunk_allow) if qvecs is not None else [[] for _ in queries]
        out = []
        for qi, query in enumerate(queries):
            dense = dense_lists[qi]
            kw = self.kb.store.keyword_search(fts_query(query), depth, allow) if mode != "dense" else []
            if mode == "dense":
                ranked = dense
            elif mode == "keyword":
                ranked = kw
            elif self.fusion == "rrf":
                ranked = rrf([[c for c, _ in dense], [c for c, _ in kw]], [1.0, 1.0])
            else:
                ranked = score_fusion(dense, kw, depth, self.dense_weight)
            out.append(Candidates(ranked, dict(dense), dict(kw), qvecs[qi] if qvecs is not None else None))
        return out

    def _hits(
        self,
        ranked: list[tuple[int, float]],
        dense: dict[int, float],
        kw: dict[int, float],
        qvec: np.ndarray | None,
        k: int,
        allow: Allow = None,
    ) -> list[Hit]:
        # Fetch a few extra so that dropping duplicates still leaves k.
        head = ranked[: k + 10]
        rows = self.kb.store.chunks(cid for cid, _ in head)
        # The filter again, on the rows themselves: a chunk re-ingested into another document
        # between the candidate search and this read must not slip through.
        head = [(cid, s) for cid, s in head if cid in rows and (allow is None or rows[cid].doc_id in allow)]
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
