"""Picking points: duplicates dropped, then MMR (central yet diverse) up to a word budget."""

from __future__ import annotations

import numpy as np

from kb.summarize.points import Point
from kb.text import content_terms

MMR_LAMBDA = 0.7
DUPLICATE_JACCARD = 0.7
SAME_FILE_WEIGHT = 0.8  # how alike two overview points from one file count, beside their meaning


def dedupe(points: list[Point]) -> list[Point]:
    """Points minus those that repeat an earlier one's content words."""
    kept: list[tuple[Point, set[str]]] = []
    for p in points:
        terms = content_terms(p.text)
        if all(len(terms & t) / max(1, len(terms | t)) < DUPLICATE_JACCARD for _, t in kept):
            kept.append((p, terms))
    return [p for p, _ in kept]


def lexical_vectors(texts: list[str]) -> np.ndarray:
    """Normalised bag-of-content-words vectors, for when no embedder is available."""
    vocab: dict[str, int] = {}
    rows = [[vocab.setdefault(t, len(vocab)) for t in content_terms(x)] for x in texts]
    out = np.zeros((len(texts), max(1, len(vocab))), dtype=np.float32)
    for i, cols in enumerate(rows):
        out[i, cols] = 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1.0, norms)


def with_sources(vecs: np.ndarray, files: list[tuple[str, ...]]) -> np.ndarray:
    """Vectors extended by a weighted one-hot of the files each row cites, renormalised."""
    names = sorted({f for group in files for f in group})
    if len(names) < 2:
        return vecs
    index = {f: i for i, f in enumerate(names)}
    onehot = np.zeros((len(files), len(names)), dtype=np.float32)
    for row, group in enumerate(files):
        for f in group:
            onehot[row, index[f]] = 1.0 / np.sqrt(len(group))
    out = np.hstack([vecs, SAME_FILE_WEIGHT * onehot])
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def central_order(vecs: np.ndarray, taken: np.ndarray, n: int) -> list[int]:
    """Up to n rows by MMR: the one closest to the centroid first, then central rows unlike those taken."""
    centroid = vecs.mean(axis=0)
    relevance = vecs @ (centroid / (float(np.linalg.norm(centroid)) or 1.0))
    redundancy = (vecs @ taken.T).max(axis=1) if len(taken) else np.zeros(len(vecs))
    out: list[int] = []
    for _ in range(min(n, len(vecs))):
        score = MMR_LAMBDA * relevance - (1 - MMR_LAMBDA) * redundancy
        score[out] = -np.inf
        score[redundancy > 0.95] = -np.inf  # says again what is already said
        best = int(np.argmax(score))
        if score[best] == -np.inf:
            break
        out.append(best)
        redundancy = np.maximum(redundancy, vecs @ vecs[best])
    return out


def mmr_select(points: list[Point], vecs: np.ndarray, words: int, alike: np.ndarray | None = None) -> list[Point]:
    """Central yet diverse points up to about `words` words, in document order.

    Centrality is measured on `vecs`; redundancy on `alike` when given (e.g. vectors that also
    say which file a point comes from, so that one big file does not fill an overview).
    """
    alike = vecs if alike is None else alike
    if not points:
        return []
    centroid = vecs.mean(axis=0)
    relevance = vecs @ (centroid / (float(np.linalg.norm(centroid)) or 1.0))
    lengths = np.array([len(p.text.split()) for p in points])
    redundancy = np.zeros(len(points))
    open_ = np.ones(len(points), dtype=bool)
    chosen: list[int] = []
    used = 0
    while open_.any():
        score = np.where(open_, MMR_LAMBDA * relevance - (1 - MMR_LAMBDA) * redundancy, -np.inf)
        best = int(np.argmax(score))
        open_[best] = False
        if chosen and used + lengths[best] > words * 1.1:
            continue  # a shorter later point may still fit
        chosen.append(best)
        used += int(lengths[best])
        redundancy = np.maximum(redundancy, alike @ alike[best])
    return sorted((points[i] for i in chosen), key=lambda p: p.order)


def word_count(points: list[Point]) -> int:
    """Words in the points' text."""
    return sum(len(p.text.split()) for p in points)
