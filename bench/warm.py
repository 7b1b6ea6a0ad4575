"""Warm search latency: one query at a time, hybrid, k=10, in one process, on the quality knowledge bases."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.common import pct, quality_kb, worker

NAME = "warm"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument("--queries", type=int, default=200, help="queries for warm latency")


def w_warm(a: dict[str, Any]) -> dict[str, Any]:
    """Warm search latency: one query at a time, hybrid, k=10, in one process."""
    from kb.config import Settings
    from kb.knowledge import KnowledgeBase
    from kb.retrieval import Retriever

    queries = [json.loads(line)["text"] for line in Path(a["queries"]).read_text().splitlines()[: a["n"]]]
    from kb.embeddings import load_embedder

    s = Settings.load().with_overrides(home=Path(a["kb"]), embed_backend=a["backend"], chunk_tokens=a["chunk_tokens"])
    embedder = load_embedder(s.embed_model, threads=s.threads, backend=s.embed_backend)
    with KnowledgeBase(s, embedder=embedder) as base:
        r = Retriever(base)
        r.search(queries[0], 10, "hybrid")
        lat, emb = [], []
        for q in queries:
            t = time.perf_counter()
            base.embedder.embed([q])
            emb.append(time.perf_counter() - t)
            t = time.perf_counter()
            r.search(q, 10, "hybrid")
            lat.append(time.perf_counter() - t)
        return {
            "queries": len(queries),
            "p50_ms": pct(lat, 50) * 1e3,
            "p95_ms": pct(lat, 95) * 1e3,
            "embed_p50_ms": pct(emb, 50) * 1e3,
            "chunks": base.vectors.size,
            "index": base.vectors.kind,
        }


WORKERS = {"warm": w_warm}


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
    out = {}
    for b in o.quality_backends:
        folder = quality_kb(o, b)
        if not (folder / "manifest.json").is_file():
            continue
        out[b] = worker(
            "warm.warm",
            {
                "kb": str(folder),
                "backend": b,
                "queries": str(o.corpus / "queries.jsonl"),
                "n": o.queries,
                "chunk_tokens": o.chunk_tokens,
            },
        )
    res["warm"] = out


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for this section."""
    lines: list[str] = []
    lines.append("\nWarm search latency (hybrid, k=10, one query at a time):")
    for b, v in res["warm"].items():
        lines.append(
            f"  {b:<10} p50 {v['p50_ms']:.1f} ms  p95 {v['p95_ms']:.1f} ms  (query embedding p50 "
            f"{v['embed_p50_ms']:.1f} ms; {v['chunks']} chunks, {v['index']} index)"
        )
    return lines
