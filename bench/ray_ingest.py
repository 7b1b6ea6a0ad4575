"""Ingest on Ray (`kb ingest --engine ray`, kb/distributed.py) beside the local engine: documents/s
and passages/s for local, Ray with 1 and with 2 workers, and the driver's SQLite commit rate
(chunks/s), the ceiling on how many workers one driver can keep busy.

    python bench/run.py --only ray_ingest [--ray-copies 4] [--ray-workers 1,2]

Each configuration runs in a fresh process on the same copies of samples/ with the default
embedding model; the Ray ones start a local Ray (`ray.init(num_cpus=...)`, not timed) and time
the ingest itself, actor start-up (loading the model once per worker) included. Every Ray worker
gets one CPU and one embedding thread; the local engine uses all cores in one process.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, csv, worker

NAME = "ray_ingest"
DEFAULT = False  # minutes of work and Ray start-ups: run it with --only ray_ingest


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument("--ray-copies", type=int, default=4, help="copies of samples/ ingested per configuration")
    p.add_argument("--ray-workers", type=csv, default="1,2", help="Ray worker counts timed")
    p.add_argument("--commit-files", type=int, default=200, help="files committed when timing the driver")


def w_ingest(args: dict[str, Any]) -> dict[str, Any]:
    """One `kb ingest` in this process, with the local engine or on a fresh local Ray."""
    from kb.config import Settings
    from kb.indexer import ingest
    from kb.knowledge import KnowledgeBase

    settings = Settings.load().with_overrides(home=Path(args["home"]))
    engine = None
    ray_start = 0.0
    workers = int(args.get("workers", 0))
    if workers:
        import ray

        from kb.distributed import RayEngine

        t = time.perf_counter()
        ray.init(num_cpus=max(2, workers), include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t
        engine = RayEngine(workers=workers)
    try:
        with KnowledgeBase(settings, write=True) as kb:
            report = ingest(kb, [Path(args["src"])], engine=engine)
            counts = kb.store.counts()
    finally:
        if workers:
            ray.shutdown()
    return {
        "files": report.count("added"),
        "failed": report.count("failed"),
        "chunks": counts["chunks"],
        "seconds": report.seconds,
        "ray_start_seconds": ray_start,
    }


def w_commit(args: dict[str, Any]) -> dict[str, Any]:
    """The driver's side alone: store already parsed and embedded files (random unit vectors of
    the default model's 384 dimensions), one transaction per file plus the FAISS update."""
    import numpy as np

    from kb.config import Settings
    from kb.isolation import ParseJob, parse_and_chunk
    from kb.knowledge import KnowledgeBase

    settings = Settings.load().with_overrides(home=Path(args["home"]), embed_model="fake:dim=384")
    files = sorted(p for p in Path(args["src"]).rglob("*") if p.is_file())
    with KnowledgeBase(settings, write=True) as kb:
        tok = kb.embedder.tokenizer_file
        parsed = []
        for f in files:
            try:
                parsed.append(parse_and_chunk(ParseJob(str(f), "", tok, settings.chunk_tokens, settings.chunk_overlap)))
            except Exception:
                continue
        parsed = [p for p in parsed if p.chunks]
        rng = np.random.default_rng(0)
        n = int(args["files"])
        todo = []
        for i in range(n):
            p = parsed[i % len(parsed)]
            vecs = rng.standard_normal((len(p.chunks), 384)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            todo.append((f"/bench/commit/{i}.txt", p, vecs))
        _ = kb.vectors
        chunks = 0
        started = time.perf_counter()
        for path, p, vecs in todo:
            removed, added = kb.store.replace_document(
                path=path,
                sha256=f"{hash(path):x}",
                size=1,
                mtime=0.0,
                format=p.format,
                title=p.title,
                n_pages=p.n_pages,
                chunks=p.chunks,
                vectors=vecs,
            )
            kb.vectors.remove(removed)
            kb.vectors.add(added, vecs)
            chunks += len(added)
        kb.save_vectors()
        seconds = time.perf_counter() - started
    return {"files": n, "chunks": chunks, "seconds": seconds, "chunks_per_s": chunks / seconds}


WORKERS = {"ingest": w_ingest, "commit": w_commit}


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
    src = tmp / "ray-docs"
    for i in range(o.ray_copies):
        shutil.copytree(REPO / "samples", src / f"copy{i}", ignore=shutil.ignore_patterns("source", "*.jsonl"))
    runs: dict[str, Any] = {}
    configs = [("local", 0)] + [(f"ray x{w}", int(w)) for w in o.ray_workers]
    for label, workers in configs:
        home = tmp / f"ray-kb-{label.replace(' ', '')}"
        r = worker(f"{NAME}.ingest", {"src": str(src), "home": str(home), "workers": workers})
        r["docs_per_s"] = r["files"] / r["seconds"]
        r["passages_per_s"] = r["chunks"] / r["seconds"]
        runs[label] = r
    commit = worker(
        f"{NAME}.commit", {"src": str(src / "copy0"), "home": str(tmp / "ray-commit"), "files": o.commit_files}
    )
    # The best per-worker rate of the Ray runs: what one more worker would add.
    per_worker = max((runs[label]["passages_per_s"] / w for label, w in configs if w), default=0)
    res[NAME] = {
        "corpus": f"samples/ x{o.ray_copies}",
        "runs": runs,
        "commit": commit,
        "workers_fed": commit["chunks_per_s"] / per_worker if per_worker else None,
    }


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for this section."""
    r = res[NAME]
    lines = [f"\nIngest engines (`kb ingest --engine local|ray`, {r['corpus']}, default embedding model):"]
    for label, v in r["runs"].items():
        start = f"; Ray started in {v['ray_start_seconds']:.1f} s (not counted)" if v["ray_start_seconds"] else ""
        lines.append(
            f"  {label:<8} {v['files']} documents, {v['chunks']} passages in {v['seconds']:.1f} s: "
            f"{v['docs_per_s']:.2f} documents/s, {v['passages_per_s']:.1f} passages/s; "
            f"peak RSS of the driver {v['rss_mb']:.0f} MB{start}"
        )
    c = r["commit"]
    lines.append(
        f"  driver commit rate (SQLite + FTS5 + FAISS, one transaction per file): {c['chunks_per_s']:.0f} chunks/s "
        f"({c['chunks']} chunks of {c['files']} files in {c['seconds']:.2f} s)"
    )
    if r["workers_fed"]:
        lines.append(f"  one driver feeds about {r['workers_fed']:.0f} workers at this machine's per-worker rate")
    return lines
