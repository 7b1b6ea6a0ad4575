"""FAISS at scale: exact vs IVF search on synthetic clustered vectors, and IVF recall on real vectors."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.common import pct, quality_kb, worker

NAME = "scale"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument("--vectors", type=int, default=1_000_000, help="synthetic vectors for the scale test")


def w_scale(a: dict[str, Any]) -> dict[str, Any]:
    """Exact vs IVF search on synthetic clustered vectors: build time, latency, recall@10, bytes per vector."""
    import faiss
    import numpy as np

    from kb.vectors import build_ivf, ivf_lists

    n, dim, rng = a["n"], a["dim"], np.random.default_rng(0)
    faiss.omp_set_num_threads(1)  # as kb searches one query (kb/vectors.py)
    centers = rng.standard_normal((a["clusters"], dim), dtype=np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        x[s : s + m] = centers[rng.integers(0, len(centers), m)] + 0.9 * rng.standard_normal((m, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = centers[rng.integers(0, len(centers), a["queries"])] + 0.9 * rng.standard_normal(
        (a["queries"], dim), dtype=np.float32
    )
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    ids = np.arange(n, dtype=np.int64)
    t = time.perf_counter()
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    flat.add_with_ids(x, ids)
    flat_build = time.perf_counter() - t

    def timed(index: Any) -> tuple[list[float], np.ndarray]:
        lat, found = [], []
        for row in q:
            t = time.perf_counter()
            _, i = index.search(row[None, :], 10)
            lat.append(time.perf_counter() - t)
            found.append(i[0])
        return lat, np.array(found)

    flat_lat, truth = timed(flat)
    out: dict[str, Any] = {
        "n": n,
        "dim": dim,
        "flat": {
            "build_s": flat_build,
            "p50_ms": pct(flat_lat, 50) * 1e3,
            "p95_ms": pct(flat_lat, 95) * 1e3,
            "bytes_per_vector": faiss.serialize_index(flat).nbytes / n,
        },
    }
    del flat
    t = time.perf_counter()
    ivf = build_ivf(dim, x, ids)
    out["ivf"] = {
        "nlist": ivf_lists(n),
        "build_s": time.perf_counter() - t,
        "bytes_per_vector": faiss.serialize_index(ivf).nbytes / n,
        "by_nprobe": {},
    }
    for nprobe in a["nprobes"]:
        ivf.nprobe = nprobe
        lat, found = timed(ivf)
        recall = float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, truth, strict=True)]))
        out["ivf"]["by_nprobe"][str(nprobe)] = {
            "p50_ms": pct(lat, 50) * 1e3,
            "p95_ms": pct(lat, 95) * 1e3,
            "recall@10": recall,
        }
    return out


def w_recall_real(a: dict[str, Any]) -> dict[str, Any]:
    """IVF recall against exact search on a real knowledge base's vectors and the corpus's real queries."""
    import faiss
    import numpy as np

    from kb.config import Settings
    from kb.embeddings import load_embedder
    from kb.store import Store
    from kb.vectors import build_ivf, ivf_lists

    faiss.omp_set_num_threads(1)
    store = Store(Path(a["kb"]) / "kb.sqlite")
    pairs = list(store.iter_vectors(dim=a["dim"]))
    ids = np.concatenate([p[0] for p in pairs]).astype(np.int64)
    x = np.concatenate([p[1] for p in pairs]).astype(np.float32)
    queries = [json.loads(line)["text"] for line in Path(a["queries"]).read_text().splitlines()]
    q = load_embedder(Settings.load().embed_model, backend=a["backend"]).embed(queries, batch_size=64)
    flat = faiss.IndexFlatIP(a["dim"])
    flat.add(x)
    _, truth = flat.search(q, 100)
    truth = ids[truth]
    ivf = build_ivf(a["dim"], x, ids)
    out: dict[str, Any] = {"vectors": len(ids), "queries": len(queries), "nlist": ivf_lists(len(ids)), "by_nprobe": {}}
    for nprobe in a["nprobes"]:
        ivf.nprobe = nprobe
        _, found = ivf.search(q, 100)
        out["by_nprobe"][str(nprobe)] = {
            f"recall@{k}": float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)]))
            for k in (10, 100)
        }
    return out


WORKERS = {"scale": w_scale, "recall_real": w_recall_real}


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
    from kb.vectors import default_nprobe, ivf_lists

    res["scale"] = worker(
        "scale.scale",
        {
            "n": o.vectors,
            "dim": 384,
            "clusters": max(100, o.vectors // 500),
            "queries": 200,
            "nprobes": [8, 32, default_nprobe(ivf_lists(o.vectors))],
            "threads": o.threads,
        },
    )
    res["scale"].pop("wall", None)
    folder = quality_kb(o, "torch")
    if (folder / "kb.sqlite").is_file():  # synthetic clusters are easy: also real vectors and queries
        real = worker(
            "scale.recall_real",
            {
                "kb": str(folder),
                "dim": 384,
                "queries": str(o.corpus / "queries.jsonl"),
                "backend": "auto",
                "nprobes": [1, 2, 4, 8, 16, 32],
            },
        )
        res["scale"]["real"] = {k: v for k, v in real.items() if k not in ("wall", "rss_mb")}


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for this section."""
    lines: list[str] = []
    s = res["scale"]
    lines.append(f"\nFAISS at {s['n']:,} synthetic clustered vectors (dim {s['dim']}), single-query latency:")
    lines.append(
        f"  exact (IndexFlatIP)   p50 {s['flat']['p50_ms']:.1f} ms  p95 {s['flat']['p95_ms']:.1f} ms  "
        f"{s['flat']['bytes_per_vector']:.0f} B/vector"
    )
    for nprobe, v in s["ivf"]["by_nprobe"].items():
        lines.append(
            f"  IVF{s['ivf']['nlist']} nprobe {nprobe:>3}   p50 {v['p50_ms']:.2f} ms  p95 {v['p95_ms']:.2f} ms  "
            f"recall@10 {v['recall@10']:.3f}"
        )
    lines.append(f"  IVF build {s['ivf']['build_s']:.0f} s, {s['ivf']['bytes_per_vector']:.0f} B/vector")
    if "real" in s:
        r = s["real"]
        lines.append(
            f"  IVF{r['nlist']} on the real SciFact vectors ({r['vectors']} chunks, {r['queries']} real queries), "
            "recall vs exact: "
            + ", ".join(
                f"nprobe {p}: @10 {v['recall@10']:.3f} @100 {v['recall@100']:.3f}" for p, v in r["by_nprobe"].items()
            )
        )
    return lines
