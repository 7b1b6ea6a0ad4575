"""Retrieval metrics over plain dicts, computed exactly as trec_eval / pytrec_eval compute them.

Conventions, all taken from trec_eval so that scoring a run here and scoring its run file
with trec_eval (or pytrec_eval, or BEIR's evaluator) gives the same numbers:

- A ranking is ordered by score descending, ties broken by docid descending (byte order,
  i.e. `strcmp`). The rank column of a run file is ignored.
- trec_eval keeps scores as a C `float`, so two scores that are equal at float32 precision
  are a tie. `trec_score` rounds a score the same way; `rank` sorts on it.
- A judged doc is relevant when its grade is > 0 (trec_eval's default relevance level 1).
  nDCG uses gain = grade (linear, as trec_eval's `ndcg_cut`, not 2**grade - 1) and a
  log2(rank + 1) discount; the ideal ranking is built from every judged doc with grade > 0.
- A run is averaged over the queries in the qrels that have at least one relevant doc; such
  a query missing from the run scores 0 (trec_eval -c). Queries only in the run are ignored.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence

from kb.errors import InputError

Run = dict[str, list[tuple[str, float]]]  # qid -> [(docid, score)], any order
Qrels = dict[str, dict[str, int]]  # qid -> docid -> graded relevance

DEFAULT_KS: tuple[int, ...] = (10, 100)
METRICS: tuple[str, ...] = ("ndcg", "recall", "mrr", "precision")


def trec_score(score: float) -> float:
    """Round a score to the float32 precision in which trec_eval stores and compares it."""
    try:
        return float(struct.unpack("f", struct.pack("f", score))[0])
    except OverflowError:  # beyond float32 range: C's conversion gives infinity
        return math.copysign(math.inf, score)


def rank(hits: Iterable[tuple[str, float]]) -> list[str]:
    """Docids in trec_eval order: score descending, ties by docid descending."""
    scores: dict[str, float] = {}
    for docid, score in hits:
        if docid in scores:
            # trec_eval refuses a ranking that lists a doc twice; pool chunk hits per doc first.
            raise ValueError(f"docid {docid!r} appears twice in one ranking")
        if math.isnan(score):
            raise ValueError(f"docid {docid!r} has a NaN score")
        scores[docid] = trec_score(score)
    return sorted(scores, key=lambda d: (scores[d], d), reverse=True)


def _n_relevant(qrels: Mapping[str, int]) -> int:
    return sum(1 for rel in qrels.values() if rel > 0)


def ndcg_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """nDCG@k with linear gain = grade and log2 discount; 0 when no doc is relevant."""
    ideal = sorted((rel for rel in qrels.values() if rel > 0), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    if idcg == 0:
        return 0.0
    gains = (qrels.get(docid, 0) for docid in ranked[:k])
    dcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(gains) if rel > 0)
    return dcg / idcg


def recall_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Share of the relevant docs found in the top k; 0 when no doc is relevant."""
    n_rel = _n_relevant(qrels)
    if n_rel == 0:
        return 0.0
    return sum(1 for docid in ranked[:k] if qrels.get(docid, 0) > 0) / n_rel


def precision_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Relevant docs in the top k divided by k, even when fewer than k were retrieved."""
    return sum(1 for docid in ranked[:k] if qrels.get(docid, 0) > 0) / k


def mrr_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant doc within the top k, else 0."""
    for i, docid in enumerate(ranked[:k]):
        if qrels.get(docid, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


_FUNCTIONS = {
    "ndcg": ndcg_at_k,
    "recall": recall_at_k,
    "mrr": mrr_at_k,
    "precision": precision_at_k,
}


def query_metrics(ranked: Sequence[str], qrels: Mapping[str, int], ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Every metric at every cutoff for one ranked query, keyed like "ndcg@10"."""
    return {f"{m}@{k}": _FUNCTIONS[m](ranked, qrels, k) for m in METRICS for k in ks}


def evaluate_queries(
    run: Mapping[str, Iterable[tuple[str, float]]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, dict[str, float]]:
    """Per-query metrics for each query in qrels with a relevant doc; absent from run = 0."""
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"cutoffs must be positive, got {list(ks)}")
    return {
        qid: query_metrics(rank(run.get(qid, ())), judged, ks)
        for qid, judged in qrels.items()
        if _n_relevant(judged) > 0
    }


def evaluate_run(
    run: Mapping[str, Iterable[tuple[str, float]]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Mean of each metric over the queries that have a relevant doc, e.g. {"ndcg@10": 0.7}."""
    per_query = evaluate_queries(run, qrels, ks)
    if not per_query:
        raise InputError("no query in the relevance judgments has a relevant document")
    names = next(iter(per_query.values()))
    return {name: math.fsum(m[name] for m in per_query.values()) / len(per_query) for name in names}


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation, as numpy's default."""
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0-100, got {p}")
    pos = (len(xs) - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
