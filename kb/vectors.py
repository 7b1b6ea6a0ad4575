"""The FAISS index: a cache of the vectors stored in SQLite, keyed by chunk id.

The file records the store generation it was built from; if they differ (a crash between
the SQLite commit and the FAISS save, or a reader racing a writer) it is rebuilt from the
vectors in SQLite, which is quick and needs no re-embedding.

The index type follows the size (`IndexPolicy`): exact inner-product search (IndexFlatIP)
up to `exact_max` vectors, an inverted-file index (IndexIVFFlat, `nprobe` lists searched)
above. IVF rather than HNSW because FAISS's HNSW cannot remove vectors, and sync removes them
whenever a file changes or goes away. IVF-Flat keeps the full vectors, so stored vectors can be
read back exactly (`kb check` compares them with SQLite) and scores are exact cosines; only
which vectors are scored is approximate. the README, Performance has its recall and latency.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kb.store import Store

INDEX_FILE = "vectors.faiss"
STATE_FILE = "vectors.json"
KINDS = ("auto", "flat", "ivf")
FLAT_LAYOUT = {"kind": "flat"}
SAMPLE_PER_LIST = 50  # training vectors per IVF list

# Builds the IVF index over (dim, vectors, ids) and says how (its layout, recorded in the manifest):
# `local_ivf` in this process, or shards on a Ray cluster (kb/distributed.py, RayEngine.build_ivf).
IvfBuilder = Callable[[int, np.ndarray, np.ndarray], tuple[Any, dict[str, Any]]]


@dataclass(frozen=True)
class IndexPolicy:
    """Which FAISS index a knowledge base of a given size gets (settings vector_index, exact_search_max, ivf_nprobe)."""

    kind: str = "auto"  # auto: flat up to exact_max vectors, IVF above; or always "flat" / "ivf"
    exact_max: int = 200_000
    nprobe: int = 0  # lists searched per query; 0: an eighth of them (default_nprobe)

    @classmethod
    def from_settings(cls, settings: Any) -> IndexPolicy:
        """The policy named by kb.config.Settings."""
        return cls(settings.vector_index, settings.exact_search_max, settings.ivf_nprobe)

    def wants_ivf(self, n: int, current_ivf: bool) -> bool:
        """Whether an index of n vectors should be IVF (with hysteresis, so it does not flip back and forth)."""
        if self.kind != "auto":
            return self.kind == "ivf" and n >= ivf_min_vectors()
        return n > self.exact_max or (current_ivf and n > self.exact_max // 2)


def _configured_policy() -> IndexPolicy:
    from kb.config import Settings

    try:
        return IndexPolicy.from_settings(Settings.load())
    except Exception:  # a broken config file is reported by the CLI, not here
        return IndexPolicy()


def ivf_lists(n: int) -> int:
    """Number of IVF lists for n vectors: about sqrt(n), so a list holds about sqrt(n) vectors."""
    return int(min(65536, max(16, round(math.sqrt(n)))))


def default_nprobe(nlist: int) -> int:
    """Lists searched when the setting is 0: an eighth of them, at least 16.

    On the real SciFact vectors (96 lists) searching 1/6 of the lists found 94.5% of the exact
    top 10 and 1/3 found 98.4%; 1/8 at 1M vectors still scans 8x fewer vectors than exact search.
    """
    return min(nlist, max(16, nlist // 8))


def ivf_min_vectors() -> int:
    """Below this an IVF index cannot be trained sensibly, so it stays exact."""
    return 39 * 16


class VectorIndex:
    """Inner-product search over normalised vectors (cosine similarity), exact or IVF."""

    def __init__(self, dim: int, policy: IndexPolicy | None = None) -> None:
        import faiss

        self.dim = dim
        self.policy = policy or IndexPolicy()
        self.index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.layout: dict[str, Any] = dict(FLAT_LAYOUT)  # how the index was built (ivf_layout)

    @property
    def kind(self) -> str:
        """'flat' (exact) or 'ivf'."""
        return "ivf" if _is_ivf(self.index) else "flat"

    @property
    def size(self) -> int:
        """Number of vectors held."""
        return int(self.index.ntotal)

    def add(self, ids: list[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under the given chunk ids."""
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: list[int]) -> None:
        """Remove the vectors of these chunk ids (unknown ids are ignored)."""
        if ids:
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def ids(self) -> np.ndarray:
        """The chunk ids held, in storage order."""
        import faiss

        if not _is_ivf(self.index):
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        invlists = self.index.invlists
        parts = [
            faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
            for i in range(invlists.nlist)
            if invlists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

    def iter_vectors(self, batch: int = 10000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in storage order and batches, for checking against SQLite."""
        ids = self.ids()
        for start in range(0, len(ids), batch):
            n = min(batch, len(ids) - start)
            if _is_ivf(self.index):
                yield ids[start : start + n], self.index.reconstruct_batch(ids[start : start + n])
            else:
                yield ids[start : start + n], self.index.index.reconstruct_n(start, n)

    def search(self, queries: np.ndarray, k: int, allow: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
        """Top-k (chunk id, cosine) per query row; with `allow` (chunk ids), the top-k among those only."""
        if self.size == 0 or (allow is not None and len(allow) == 0):
            return [[] for _ in range(len(queries))]
        ivf = _is_ivf(self.index)
        nprobe = min(self.policy.nprobe or default_nprobe(self.index.nlist), self.index.nlist) if ivf else 0
        k = min(k, self.size if allow is None else len(allow))
        out = self._search(queries, k, nprobe, allow)
        if ivf and allow is not None and any(len(row) < k for row in out):
            # The probed lists held too few of the allowed vectors: scan every list, which with
            # the filter is an exact search among the allowed ones, so a filter never starves.
            out = self._search(queries, k, self.index.nlist, allow)
        return out

    def _search(
        self, queries: np.ndarray, k: int, nprobe: int, allow: np.ndarray | None
    ) -> list[list[tuple[int, float]]]:
        import faiss

        params: Any = None
        if allow is not None:
            # The selector is consulted while scanning, so the top k are the best allowed ones.
            params = faiss.SearchParametersIVF() if nprobe else faiss.SearchParameters()
            params.sel = faiss.IDSelectorBatch(np.ascontiguousarray(allow, dtype=np.int64))
            if nprobe:
                params.nprobe = nprobe
        elif nprobe:
            self.index.nprobe = nprobe
        # One or a few queries: a single thread. OpenMP threads cost more to wake and join than
        # they save here, and on a busy machine their spinning made a query several times slower
        # (the README, Performance); batches of queries still use every core.
        threads = faiss.omp_get_max_threads()
        if len(queries) <= 4:
            faiss.omp_set_num_threads(1)
        try:
            scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def fit_policy(self, build: IvfBuilder | None = None) -> bool:
        """Switch between exact and IVF when the size calls for it (the policy); returns whether it switched.

        `build` makes the IVF index (default `local_ivf`, in this process).
        """
        want_ivf = self.policy.wants_ivf(self.size, _is_ivf(self.index))
        if want_ivf == _is_ivf(self.index):
            return False
        ids, vectors = self._all()
        if want_ivf:
            self.index, self.layout = (build or local_ivf)(self.dim, vectors, ids)
        else:
            self.index, self.layout = _flat(self.dim, vectors, ids), dict(FLAT_LAYOUT)
        return True

    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        pairs = list(self.iter_vectors(batch=100_000))
        if not pairs:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])

    def save(self, folder: Path, generation: int, build: IvfBuilder | None = None) -> None:
        """Write the index and its generation atomically (temp file, then rename), switching type first if due
        (an IVF index made by `build`, default `local_ivf`)."""
        import faiss

        self.fit_policy(build)
        tmp = folder / (INDEX_FILE + ".tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, folder / INDEX_FILE)
        state_tmp = folder / (STATE_FILE + ".tmp")
        state = {
            "generation": generation,
            "count": self.size,
            "dim": self.dim,
            "kind": self.kind,
            "layout": self.layout,
        }
        state_tmp.write_text(json.dumps(state))
        os.replace(state_tmp, folder / STATE_FILE)

    @classmethod
    def load(cls, folder: Path, dim: int, policy: IndexPolicy | None = None) -> tuple[VectorIndex, dict] | None:
        """The saved index and its state record, or None when missing, damaged or of another dim.

        The state is read before and after the index, so an index replaced by a writer in
        between is not paired with the wrong generation.
        """
        import faiss

        state_file, index_file = folder / STATE_FILE, folder / INDEX_FILE
        try:
            state = json.loads(state_file.read_text())
            if state.get("dim") != dim or not index_file.is_file():
                return None
            vi = cls.__new__(cls)
            vi.dim = dim
            vi.policy = policy or _configured_policy()
            vi.index = faiss.read_index(str(index_file))
            vi.layout = state.get("layout") or {"kind": vi.kind}
            if json.loads(state_file.read_text()) != state or vi.size != state.get("count") or vi.index.d != dim:
                return None
            return vi, state
        except (OSError, ValueError, RuntimeError, AttributeError):
            return None  # missing or damaged cache

    @classmethod
    def rebuild(cls, store: Store, dim: int, policy: IndexPolicy | None = None) -> VectorIndex:
        """A fresh index from the vectors stored in SQLite (no re-embedding), of the type the size calls for."""
        vi = cls(dim, policy or _configured_policy())
        with store.snapshot():
            for ids, vecs in store.iter_vectors(dim=dim):
                vi.add(ids, vecs)
        vi.fit_policy()
        return vi

    @classmethod
    def load_or_rebuild(
        cls, folder: Path, store: Store, dim: int, policy: IndexPolicy | None = None
    ) -> tuple[VectorIndex, bool]:
        """The saved index if it matches the store's generation, else one rebuilt from SQLite.

        Returns (index, rebuilt). `policy` None means the configured one (Settings.load()).
        """
        loaded = cls.load(folder, dim, policy)
        # The generation is read after the index: if it still matches, the index matches the store.
        if loaded is not None and loaded[1].get("generation") == store.generation():
            return loaded[0], False
        return cls.rebuild(store, dim, policy), True


def _is_ivf(index: Any) -> bool:
    import faiss

    return isinstance(index, faiss.IndexIVF)


def _flat(dim: int, vectors: np.ndarray, ids: np.ndarray) -> Any:
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return index


def ivf_sample_rows(n: int, nlist: int, seed: int = 0) -> np.ndarray | None:
    """Which of n vectors train an IVF of nlist lists (in training order), or None for all of them.

    SAMPLE_PER_LIST (50) points per list trains well (FAISS warns below 39) and keeps k-means quick at 1M vectors.
    """
    sample = min(n, nlist * SAMPLE_PER_LIST)
    return np.random.default_rng(seed).choice(n, sample, replace=False) if sample < n else None


def train_ivf(dim: int, sample: np.ndarray, nlist: int, seed: int = 0) -> Any:
    """An empty IVF-Flat inner-product index of nlist lists, its quantizer trained on `sample`.

    It has no direct map yet: shards of it are merged first (kb/shards.py), then given one.
    """
    import faiss

    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.niter = 20
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def add_in_batches(index: Any, ids: np.ndarray, vectors: np.ndarray, batch: int = 100_000) -> None:
    """Add vectors under their ids, a batch at a time (the float32 copy stays small)."""
    for start in range(0, len(ids), batch):
        index.add_with_ids(
            np.ascontiguousarray(vectors[start : start + batch], dtype=np.float32),
            np.asarray(ids[start : start + batch], dtype=np.int64),
        )


def with_direct_map(index: Any) -> Any:
    """The IVF index given a hash-table direct map, so vectors can be read back by id and removed."""
    import faiss

    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
    return index


def ivf_layout(index: Any, trained_on: int, shards: int = 1, built_on: str = "driver") -> dict[str, Any]:
    """How an IVF index was built, as the manifest records it (its "vector_index" key)."""
    return {
        "kind": "ivf",
        "lists": int(index.nlist),
        "vectors_at_build": int(index.ntotal),
        "trained_on": trained_on,
        "shards": shards,
        "built_on": built_on,
    }


def local_ivf(dim: int, vectors: np.ndarray, ids: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """The IVF index built in this process (an IvfBuilder), and its layout."""
    index = build_ivf(dim, vectors, ids)
    return index, ivf_layout(index, trained_on=min(len(ids), int(index.nlist) * SAMPLE_PER_LIST))


def build_ivf(dim: int, vectors: np.ndarray, ids: np.ndarray, nlist: int | None = None, seed: int = 0) -> Any:
    """An IVF-Flat inner-product index over the vectors, trained on (a sample of) them."""
    n = len(vectors)
    nlist = nlist or ivf_lists(n)
    rows = ivf_sample_rows(n, nlist, seed)
    index = with_direct_map(train_ivf(dim, vectors if rows is None else vectors[rows], nlist, seed))
    add_in_batches(index, ids, vectors)
    return index
