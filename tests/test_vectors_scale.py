"""The FAISS index type follows the size: exact below the threshold, IVF above, with recall checked."""

from __future__ import annotations

import numpy as np
import pytest

from kb.vectors import IndexPolicy, VectorIndex, ivf_lists, ivf_min_vectors


def clustered(n: int, dim: int = 32, centers: int = 100, seed: int = 0) -> np.ndarray:
    """Unit vectors around random centres: shaped like real embeddings, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim))
    x = c[rng.integers(0, centers, n)] + 0.8 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall_at(approx: list[list[tuple[int, float]]], exact: list[list[tuple[int, float]]], k: int = 10) -> float:
    return float(
        np.mean([len({i for i, _ in a[:k]} & {i for i, _ in e[:k]}) / k for a, e in zip(approx, exact, strict=True)])
    )


def test_small_index_stays_exact():
    vi = VectorIndex(32, IndexPolicy(exact_max=5000))
    vi.add(np.arange(3000), clustered(3000))
    assert not vi.fit_policy()
    assert vi.kind == "flat"


def test_auto_switches_to_ivf_above_threshold_with_high_recall():
    x = clustered(12_000)
    vi = VectorIndex(32, IndexPolicy(exact_max=5000, nprobe=16))
    vi.add(np.arange(12_000) + 7, x)
    queries = clustered(40, seed=1)
    exact = vi.search(queries, 10)
    assert vi.fit_policy()
    assert vi.kind == "ivf"
    assert vi.index.nlist == ivf_lists(12_000)
    approx = vi.search(queries, 10)
    assert recall_at(approx, exact) >= 0.95
    # Scores stay exact cosines for the vectors found.
    best = approx[0][0]
    assert best[1] == pytest.approx(float(x[best[0] - 7] @ queries[0]), abs=1e-5)


def test_ivf_supports_remove_ids_and_exact_read_back(tmp_path):
    x = clustered(8000)
    vi = VectorIndex(32, IndexPolicy(kind="ivf"))
    vi.add(np.arange(8000), x)
    vi.fit_policy()
    assert vi.kind == "ivf"
    vi.remove([0, 1, 2, 9999])
    vi.add([9000], x[:1])
    ids = vi.ids()
    assert len(ids) == vi.size == 7998 and len(set(ids.tolist())) == 7998
    assert {0, 1, 2}.isdisjoint(ids.tolist()) and 9000 in ids
    for batch_ids, vecs in vi.iter_vectors(batch=3000):
        truth = np.stack([x[0] if i == 9000 else x[i] for i in batch_ids])
        assert np.array_equal(vecs, truth)
    vi.save(tmp_path, generation=3)
    loaded, state = VectorIndex.load(tmp_path, 32)
    assert state["kind"] == "ivf" and state["count"] == 7998
    assert loaded.kind == "ivf" and sorted(loaded.ids().tolist()) == sorted(ids.tolist())


def test_shrinking_below_half_threshold_returns_to_exact():
    vi = VectorIndex(32, IndexPolicy(exact_max=4000))
    vi.add(np.arange(5000), clustered(5000))
    assert vi.fit_policy() and vi.kind == "ivf"
    vi.remove(list(range(2000)))  # 3000 left: above half the threshold, IVF is kept
    assert not vi.fit_policy() and vi.kind == "ivf"
    vi.remove(list(range(2000, 3500)))  # 1500 left
    assert vi.fit_policy() and vi.kind == "flat"
    assert vi.size == 1500


def test_flat_policy_never_switches():
    vi = VectorIndex(32, IndexPolicy(kind="flat", exact_max=10))
    vi.add(np.arange(2000), clustered(2000))
    assert not vi.fit_policy() and vi.kind == "flat"


def test_ivf_policy_needs_enough_vectors_to_train():
    vi = VectorIndex(32, IndexPolicy(kind="ivf"))
    vi.add(np.arange(ivf_min_vectors() - 1), clustered(ivf_min_vectors() - 1))
    assert not vi.fit_policy() and vi.kind == "flat"


def test_policy_settings_are_validated(monkeypatch):
    from kb.config import Settings
    from kb.errors import ConfigError

    monkeypatch.setenv("KB_VECTOR_INDEX", "ivf")
    monkeypatch.setenv("KB_IVF_NPROBE", "8")
    policy = IndexPolicy.from_settings(Settings.load())
    assert policy == IndexPolicy(kind="ivf", exact_max=200_000, nprobe=8)
    assert IndexPolicy().nprobe == 0  # automatic: default_nprobe(nlist)
    monkeypatch.setenv("KB_VECTOR_INDEX", "hnsw")
    with pytest.raises(ConfigError):
        Settings.load()
