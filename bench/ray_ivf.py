"""Large indexes on Ray (kb/shards.py, kb/distributed.py): one IVF index trained once on the driver,
its shards added by 1 and by 2 Ray workers and merged in order on the driver, then recall@10
against exact search, peak memory and the index's size on disk.

    python bench/run.py --only ray_ivf --ivf-vectors 200000               # a quick run
    python bench/run.py --only ray_ivf --ivf-vectors 10000000 --ivf-codec fp16

The vectors are synthetic: a mixture of 1,000 Gaussian clusters normalised to unit length (as
bench/scale.py makes them, with wider clusters), 384 dimensions like kb's default embedder, generated in pieces from
(seed, piece number) so that nothing ever holds them all. A worker generates its own pieces (in a
real ingest its vectors come from the embedding stage; generating them here is timed apart from
adding them), adds them to its copy of the trained index and sends the shard back; the driver
merges each shard as it comes. The quantizer is trained on the first pieces (the mixture is the
same in every piece, so they are a random sample), with kb's own list count and sample size.
The exact top 10 of the held-out queries is found by brute force over every piece, on the
workers, before the builds.

Each phase runs in a fresh process (its peak RSS is the driver's) on a local Ray of 2 CPUs;
every worker has one CPU and one FAISS thread. `--ivf-codec fp16` stores the vectors as float16
(FAISS's IndexIVFScalarQuantizer), half of kb's IVF-Flat: only for the benchmark, so that 10M
vectors fit this machine's memory beside the shards in flight.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO, csv, worker

NAME = "ray_ivf"
DEFAULT = False  # minutes (10M vectors: most of an hour): run it with --only ray_ivf
DIM = 384
SEED = 0
QUERIES = 2  # the held-out queries: another stream of the same mixture
# Noise 1.5x the centres' spread: the clusters overlap enough that IVF at kb's default nprobe finds
# about 95% of the exact top 10 at 200k vectors, near kb's figure on real SciFact vectors (94.5% at
# a sixth of the lists); at 0.9x (bench/scale.py's) the clusters are apart and IVF finds all of it.
SPREAD = 1.5


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument("--ivf-vectors", type=int, default=200_000, help="ray_ivf: synthetic vectors in the index")
    p.add_argument("--ivf-workers", type=csv, default="1,2", help="ray_ivf: Ray worker counts timed")
    p.add_argument("--ivf-codec", default="flat", help="ray_ivf: flat (kb's IVF-Flat) or fp16 (half the memory)")
    p.add_argument("--ivf-piece", type=int, default=50_000, help="ray_ivf: vectors per shard (one task)")
    p.add_argument("--ivf-queries", type=int, default=150, help="ray_ivf: held-out queries scored for recall@10")
    p.add_argument("--ivf-clusters", type=int, default=1000, help="ray_ivf: Gaussian clusters of the mixture")


@cache
def _centres(seed: int, dim: int, clusters: int) -> np.ndarray:
    return np.random.default_rng([seed, 0]).standard_normal((clusters, dim), dtype=np.float32)


def clustered(seed: int, piece: int, size: int, dim: int = DIM, clusters: int = 1000, stream: int = 1) -> np.ndarray:
    """Piece `piece` (size vectors) of the mixture of `seed`: a centre plus SPREAD times its spread of
    noise, unit length. Another `stream` draws other points of the same mixture (the held-out queries)."""
    rng = np.random.default_rng([seed, stream, piece])
    x = _centres(seed, dim, clusters)[rng.integers(0, clusters, size)]
    x += SPREAD * rng.standard_normal((size, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Generated:
    """Piece i of the benchmark's vectors: rows i*piece.., ids equal to the row numbers."""

    def __init__(self, a: dict[str, Any]) -> None:
        self.n, self.piece, self.clusters = a["n"], a["piece"], a["clusters"]

    def count(self) -> int:
        return -(-self.n // self.piece)

    def __call__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start = i * self.piece
        size = min(self.piece, self.n - start)
        return np.arange(start, start + size, dtype=np.int64), clustered(SEED, i, size, DIM, self.clusters)


class BenchShardWorker:
    """kb's ShardWorker, fed by pieces it generates itself, reporting its times and peak memory."""

    def __init__(self, threads: int, args: dict[str, Any]) -> None:
        from kb.distributed import ShardWorker

        self.inner = ShardWorker(threads)
        self.make = _Generated(args)

    def add(self, empty: np.ndarray, i: int) -> tuple[np.ndarray, float, float, float]:
        """(shard, generate seconds, add seconds, peak RSS MB)."""
        t = time.perf_counter()
        ids, x = self.make(i)
        generated = time.perf_counter() - t
        shard = self.inner.add(empty, ids, x)
        return shard, generated, time.perf_counter() - t - generated, _peak_mb()

    def top(self, queries: np.ndarray, i: int, k: int) -> tuple[np.ndarray, np.ndarray, float]:
        """The exact top k of this piece for every query: (ids, scores, peak RSS MB)."""
        ids, x = self.make(i)
        scores = queries @ x.T
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        return ids[best], np.take_along_axis(scores, best, axis=1), _peak_mb()


def _start_ray(cpus: int) -> Any:
    """A local Ray whose workers can import bench/ (not timed)."""
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    return ray


def _pool(args: dict[str, Any]) -> Any:
    """An actor class for kb.distributed.shards_on_ray: BenchShardWorker with this run's arguments."""

    class Worker(BenchShardWorker):
        def __init__(self, threads: int) -> None:
            super().__init__(threads, args)

    return Worker


def w_truth(a: dict[str, Any]) -> dict[str, Any]:
    """The exact top 10 of each held-out query by brute force over every piece, on 2 Ray workers."""
    from kb.distributed import shards_on_ray

    ray = _start_ray(2)
    try:
        queries = clustered(SEED, 0, a["queries"], DIM, a["clusters"], stream=QUERIES)
        q_ref = ray.put(queries)
        t = time.perf_counter()
        best_ids = np.zeros((len(queries), 0), dtype=np.int64)
        best = np.zeros((len(queries), 0), dtype=np.float32)
        worker_mb = 0.0
        calls = ((q_ref, i, 10) for i in range(_Generated(a).count()))
        for ids, scores, mb in shards_on_ray(ray, _pool(a), calls, 2, method="top"):
            best_ids, best = np.hstack([best_ids, ids]), np.hstack([best, scores])
            keep = np.argsort(-best, axis=1, kind="stable")[:, :10]
            best_ids, best = np.take_along_axis(best_ids, keep, 1), np.take_along_axis(best, keep, 1)
            worker_mb = max(worker_mb, mb)
        seconds = time.perf_counter() - t
    finally:
        ray.shutdown()
    np.save(a["truth"], best_ids)
    return {"seconds": seconds, "worker_peak_mb": worker_mb}


def w_train(a: dict[str, Any]) -> dict[str, Any]:
    """Train the quantizer once (kb's list count and sample size), on this process's threads; save it."""
    import faiss

    from kb.shards import serialize, trained
    from kb.vectors import SAMPLE_PER_LIST, ivf_lists

    nlist = ivf_lists(a["n"])
    want = min(a["n"], nlist * SAMPLE_PER_LIST)
    make = _Generated(a)
    t = time.perf_counter()
    parts, have, i = [], 0, 0
    while have < want:
        parts.append(make(i)[1][: want - have])
        have += len(parts[-1])
        i += 1
    sample = np.vstack(parts)
    generated = time.perf_counter() - t
    t = time.perf_counter()
    empty = trained(DIM, sample, nlist, codec=a["codec"])
    seconds = time.perf_counter() - t
    np.save(a["trained"], serialize(empty))
    return {
        "lists": nlist,
        "sample": len(sample),
        "seconds": seconds,
        "generate_seconds": generated,
        "threads": faiss.omp_get_max_threads(),
    }


def w_build(a: dict[str, Any]) -> dict[str, Any]:
    """Add every piece on `workers` Ray workers and merge the shards in order on the driver; then
    recall@10 against the exact top 10, single-query search time and the size on disk."""
    import faiss

    from kb.distributed import shards_on_ray
    from kb.shards import Merger, deserialize, index_bytes
    from kb.vectors import default_nprobe

    empty_bytes = np.load(a["trained"])
    truth = np.load(a["truth"])
    workers = int(a["workers"])
    ray = _start_ray(2)
    try:
        merger = Merger(deserialize(empty_bytes))
        empty_ref = ray.put(empty_bytes)
        gen_s = add_s = merge_s = worker_mb = 0.0
        t = time.perf_counter()
        calls = ((empty_ref, i) for i in range(_Generated(a).count()))
        for shard, generated, added, mb in shards_on_ray(ray, _pool(a), calls, workers):
            tick = time.perf_counter()
            merger.add(shard)
            del shard
            merge_s += time.perf_counter() - tick
            gen_s, add_s, worker_mb = gen_s + generated, add_s + added, max(worker_mb, mb)
        build_s = time.perf_counter() - t
    finally:
        ray.shutdown()
    tick = time.perf_counter()
    index = merger.result()
    direct_map_s = time.perf_counter() - tick
    driver_after_build_mb = _peak_mb()
    queries = clustered(SEED, 0, a["queries"], DIM, a["clusters"], stream=QUERIES)
    faiss.omp_set_num_threads(1)  # as kb searches one query (kb/vectors.py)
    by_nprobe = {}
    nlist = int(index.nlist)
    for nprobe in sorted({default_nprobe(nlist), 2 * default_nprobe(nlist)}):
        index.nprobe = nprobe
        found, lat = [], []
        for q in queries:
            tick = time.perf_counter()
            found.append(index.search(q[None, :], 10)[1][0])
            lat.append(time.perf_counter() - tick)
        recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))
        by_nprobe[str(nprobe)] = {"recall@10": recall, "ms_per_query": 1000 * float(np.median(lat))}
    return {
        "workers": workers,
        "vectors": int(index.ntotal),
        "lists": nlist,
        "shards": merger.shards,
        "build_seconds": build_s,
        "generate_seconds_in_workers": gen_s,
        "add_seconds_in_workers": add_s,
        "merge_seconds": merge_s,
        "direct_map_seconds": direct_map_s,
        "worker_peak_mb": worker_mb,
        "driver_after_build_mb": driver_after_build_mb,
        "index_bytes": index_bytes(index),
        "by_nprobe": by_nprobe,
        "default_nprobe": default_nprobe(nlist),
    }


WORKERS = {"truth": w_truth, "train": w_train, "build": w_build}


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
    a = {
        "n": o.ivf_vectors,
        "piece": o.ivf_piece,
        "clusters": o.ivf_clusters,
        "queries": o.ivf_queries,
        "codec": o.ivf_codec,
        "truth": str(tmp / "ivf-truth.npy"),
        "trained": str(tmp / "ivf-trained.npy"),
    }
    out: dict[str, Any] = {"vectors": o.ivf_vectors, "dim": DIM, "codec": o.ivf_codec, "piece": o.ivf_piece}
    out["truth"] = worker(f"{NAME}.truth", a)
    out["train"] = worker(f"{NAME}.train", a)
    out["builds"] = {w: worker(f"{NAME}.build", {**a, "workers": int(w)}) for w in o.ivf_workers}
    res[NAME] = out


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for this section: one column per worker count."""
    r = res[NAME]
    t = r["train"]
    builds = r["builds"]
    lines = [
        f"\nIVF in shards on Ray ({r['vectors']:,} synthetic clustered vectors, dim {r['dim']}, codec {r['codec']}, "
        f"{t['lists']} lists, {r['piece']:,} vectors per shard):",
        f"  exact top 10 of the held-out queries, brute force on 2 workers: {r['truth']['seconds']:.0f} s",
        f"  train the quantizer on the driver ({t['sample']:,} vectors, {t['threads']} threads): {t['seconds']:.1f} s "
        f"(peak RSS {t['rss_mb']:.0f} MB)",
        "  " + f"{'':<44}" + "".join(f"{w + ' worker' + ('s' if w != '1' else ''):>14}" for w in builds),
    ]

    def row(label: str, fmt: str, get: Any) -> None:
        lines.append(f"  {label:<44}" + "".join(f"{format(get(b), fmt):>14}" for b in builds.values()))

    row("add + merge, wall (s)", ".1f", lambda b: b["build_seconds"])
    row("  in workers: generating vectors (s, summed)", ".1f", lambda b: b["generate_seconds_in_workers"])
    row("  in workers: adding to shards (s, summed)", ".1f", lambda b: b["add_seconds_in_workers"])
    row("  on the driver: merging shards (s)", ".1f", lambda b: b["merge_seconds"])
    row("direct map for removals (s)", ".1f", lambda b: b["direct_map_seconds"])
    row("vectors added per second (wall)", ",.0f", lambda b: b["vectors"] / b["build_seconds"])
    for nprobe in next(iter(builds.values()))["by_nprobe"]:
        row(f"recall@10 vs exact, nprobe {nprobe}", ".3f", lambda b, n=nprobe: b["by_nprobe"][n]["recall@10"])
        row(f"search ms/query, nprobe {nprobe}, 1 thread", ".1f", lambda b, n=nprobe: b["by_nprobe"][n]["ms_per_query"])
    row("peak RSS, driver (MB)", ",.0f", lambda b: b["rss_mb"])
    row("peak RSS, each worker (MB)", ",.0f", lambda b: b["worker_peak_mb"])
    row("index size on disk (MB)", ",.0f", lambda b: b["index_bytes"] / 2**20)
    return lines
