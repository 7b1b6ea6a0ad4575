"""One IVF index built from shards: train once, add the vectors in pieces elsewhere, merge in order.

FAISS's path for large indexes: the quantizer (the list centroids) is trained once, on a sample,
and the trained empty index is copied to every worker. Each worker adds a piece of the vectors,
with their ids, to its copy; that is the costly part of adding, since assigning a vector to its
list compares it with every centroid. The driver appends each shard's lists to its own
(`merge_from`, a copy of the lists' bytes) and then gives the merged index its direct map, so
vectors can be read back and removed on sync as usual.

Shards are merged in the order of their vectors, so every list holds the same vectors in the same
order as an index built in one process (`kb.vectors.build_ivf`) from the same trained quantizer:
the same search results. Nothing here needs Ray (kb/distributed.py runs the shards on a cluster);
indexes travel as FAISS's own serialisation, a uint8 array.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from kb.vectors import add_in_batches, train_ivf, with_direct_map

CODECS = ("flat", "fp16")  # fp16 (half the memory) is for benchmarks only: kb's own index is IVF-Flat
PIECE_VECTORS = 50_000  # vectors per shard: one task's work, and what the object store holds per task


def serialize(index: Any) -> np.ndarray:
    """The index as bytes (a uint8 array), to ship to a worker or back."""
    import faiss

    return faiss.serialize_index(index)


def deserialize(data: np.ndarray) -> Any:
    """The inverse of `serialize`."""
    import faiss

    return faiss.deserialize_index(np.ascontiguousarray(data, dtype=np.uint8))


def trained(dim: int, sample: np.ndarray, nlist: int, seed: int = 0, codec: str = "flat") -> Any:
    """The empty IVF index whose quantizer is trained on `sample`: IVF-Flat as kb builds it, or with the
    vectors kept as float16 (`codec` "fp16", half the memory, for benchmarks at scale)."""
    if codec == "flat":
        return train_ivf(dim, sample, nlist, seed)
    if codec != "fp16":
        raise ValueError(f"codec must be one of {', '.join(CODECS)} (got {codec!r})")
    import faiss

    fp16 = faiss.ScalarQuantizer.QT_fp16  # type: ignore[attr-defined]
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, fp16, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.niter = 20
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def add_shard(empty: np.ndarray, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """A shard: the trained empty index (serialised) with these vectors added under their ids, serialised."""
    index = deserialize(empty)
    add_in_batches(index, ids, vectors)
    return serialize(index)


def pieces(n: int, size: int = PIECE_VECTORS) -> list[tuple[int, int]]:
    """The (start, stop) rows of each shard's piece of n vectors, in order."""
    return [(start, min(n, start + size)) for start in range(0, n, size)]


class Merger:
    """Appends shards, in the order of their vectors, to one index (the trained empty one)."""

    def __init__(self, empty: Any) -> None:
        self.index = empty
        self.shards = 0

    def add(self, shard: np.ndarray | Any) -> None:
        """Append this shard's lists (a serialised shard is freed as soon as it is merged)."""
        other = deserialize(shard) if isinstance(shard, np.ndarray) else shard
        self.index.merge_from(other, 0)
        self.shards += 1

    def add_all(self, shards: Iterator[np.ndarray]) -> Merger:
        """Append every shard, in order."""
        for shard in shards:
            self.add(shard)
        return self

    def result(self) -> Any:
        """The merged index, with the direct map that sync's removals need."""
        return with_direct_map(self.index)


def index_bytes(index: Any) -> int:
    """The size of the index as `faiss.write_index` writes it, counted without writing it anywhere."""
    import faiss

    total = 0

    def count(data: bytes) -> int:
        nonlocal total
        total += len(data)
        return len(data)

    faiss.write_index(index, faiss.PyCallbackIOWriter(count))  # type: ignore[attr-defined]
    return total
