"""The FAISS index: a cache of the vectors stored in SQLite, keyed by chunk id.

The file records the store generation it was built from; if they differ (a crash between
the SQLite commit and the FAISS save, or a reader racing a writer) it is rebuilt from the
vectors in SQLite, which is quick and needs no re-embedding.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kb.store import Store

INDEX_FILE = "vectors.faiss"
STATE_FILE = "vectors.json"


class VectorIndex:
    """Exact inner-product search over normalised vectors (cosine similarity)."""

    def __init__(self, dim: int) -> None:
        import faiss

        self.dim = dim
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

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

        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def iter_vectors(self, batch: int = 10000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in storage order and batches, for checking against SQLite."""
        ids = self.ids()
        for start in range(0, len(ids), batch):
            n = min(batch, len(ids) - start)
            yield ids[start : start + n], self.index.index.reconstruct_n(start, n)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-k (chunk id, cosine) per query row."""
        if self.size == 0:
            return [[] for _ in range(len(queries))]
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, self.size))
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def save(self, folder: Path, generation: int) -> None:
        """Write the index and its generation atomically (temp file, then rename)."""
        import faiss

        tmp = folder / (INDEX_FILE + ".tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, folder / INDEX_FILE)
        state_tmp = folder / (STATE_FILE + ".tmp")
        state_tmp.write_text(json.dumps({"generation": generation, "count": self.size, "dim": self.dim}))
        os.replace(state_tmp, folder / STATE_FILE)

    @classmethod
    def load(cls, folder: Path, dim: int) -> tuple[VectorIndex, dict] | None:
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
            vi.index = faiss.read_index(str(index_file))
            if json.loads(state_file.read_text()) != state or vi.size != state.get("count") or vi.index.d != dim:
                return None
            return vi, state
        except (OSError, ValueError, RuntimeError, AttributeError):
            return None  # missing or damaged cache

    @classmethod
    def rebuild(cls, store: Store, dim: int) -> VectorIndex:
        """A fresh index from the vectors stored in SQLite (no re-embedding)."""
        vi = cls(dim)
        with store.snapshot():
            for ids, vecs in store.iter_vectors(dim=dim):
                vi.add(ids, vecs)
        return vi

    @classmethod
    def load_or_rebuild(cls, folder: Path, store: Store, dim: int) -> tuple[VectorIndex, bool]:
        """The saved index if it matches the store's generation, else one rebuilt from SQLite.

        Returns (index, rebuilt).
        """
        loaded = cls.load(folder, dim)
        # The generation is read after the index: if it still matches, the index matches the store.
        if loaded is not None and loaded[1].get("generation") == store.generation():
            return loaded[0], False
        return cls.rebuild(store, dim), True
