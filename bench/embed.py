"""Embedding throughput per backend, side by side: alternating rounds, the best of each kept, cosine to torch."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.common import csv, worker

NAME = "embed"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument(
        "--backends", type=csv, default="torch,onnx,onnx-int8,openvino,auto", help="embedding backends timed"
    )
    p.add_argument("--passages", type=int, default=400, help="passages embedded per backend and round")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of embedding timing")


def w_embed(a: dict[str, Any]) -> dict[str, Any]:
    """Steady-state embedding rate of one backend on the given texts (model loaded and warmed first)."""
    from kb.embeddings import load_embedder

    texts = json.loads(Path(a["texts"]).read_text())
    t0 = time.perf_counter()
    emb = load_embedder("default", threads=a["threads"], backend=a["backend"])
    emb.embed(texts[:8], batch_size=a["batch"])  # loads the model (and, for ONNX, the runtime)
    load = time.perf_counter() - t0
    emb.embed(texts[: a["batch"] * 2], batch_size=a["batch"])  # auto: the bulk runtime too
    w, c = time.perf_counter(), time.process_time()
    vecs = emb.embed(texts, batch_size=a["batch"])
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    import numpy as np

    np.save(a["out"], vecs)
    return {
        "passages": len(texts),
        "seconds": wall,
        "cpu_seconds": cpu,
        "load_seconds": load,
        "fingerprint": emb.fingerprint,
    }


def w_chunks(a: dict[str, Any]) -> dict[str, Any]:
    """The embedding texts of the first documents of a BEIR corpus, chunked as `kb eval` chunks them."""
    from ingest.chunking import chunk_document
    from kb.config import Settings
    from kb.embeddings import load_embedder
    from kb.eval.beir import load_beir
    from kb.eval.retrieval import parsed_document
    from kb.indexer import embedding_text

    s = Settings.load()
    tok = load_embedder("default", backend="torch").tokenizer()
    texts: list[str] = []
    for doc in load_beir(Path(a["corpus"]), a["split"]).corpus():
        for c in chunk_document(parsed_document(doc), tok, s.chunk_tokens, s.chunk_overlap):
            texts.append(embedding_text(doc.title, c.heading_path, c.text))
        if len(texts) >= a["n"]:
            break
    Path(a["out"]).write_text(json.dumps(texts[: a["n"]]))
    return {"passages": len(texts[: a["n"]])}


WORKERS = {"chunks": w_chunks, "embed": w_embed}


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
    texts = tmp / "texts.json"
    worker("embed.chunks", {"corpus": str(o.corpus), "split": o.split, "n": o.passages, "out": str(texts)})
    if any(b != "torch" for b in o.backends):  # the one-time ONNX export is not part of any timing
        worker(
            "embed.embed",
            {"backend": "onnx", "texts": str(texts), "threads": o.threads, "batch": 32, "out": str(tmp / "warm.npy")},
        )
    rounds: dict[str, list[dict[str, Any]]] = {b: [] for b in o.backends}
    for r in range(o.rounds):
        order = o.backends if r % 2 == 0 else list(reversed(o.backends))
        for b in order:
            rounds[b].append(
                worker(
                    "embed.embed",
                    {
                        "backend": b,
                        "texts": str(texts),
                        "threads": o.threads,
                        "batch": 32,
                        "out": str(tmp / f"vec-{b}.npy"),
                    },
                )
            )
    import numpy as np

    ref = np.load(tmp / "vec-torch.npy") if "torch" in rounds else None
    out = {}
    for b, rs in rounds.items():
        best = min(rs, key=lambda x: x["seconds"])
        entry = {
            "passages_per_s": best["passages"] / best["seconds"],
            "passages_per_cpu_s": best["passages"] / best["cpu_seconds"],
            "all_rounds_per_s": [round(x["passages"] / x["seconds"], 2) for x in rs],
            "load_s": best["load_seconds"],
            "peak_rss_mb": max(x["rss_mb"] for x in rs),
            "fingerprint": best["fingerprint"],
        }
        if ref is not None:
            cos = np.sum(np.load(tmp / f"vec-{b}.npy") * ref, axis=1)
            entry["cosine_to_torch_min"], entry["cosine_to_torch_mean"] = float(cos.min()), float(cos.mean())
        out[b] = entry
    if "torch" in out:
        for b in out:
            out[b]["speedup_vs_torch"] = out[b]["passages_per_s"] / out["torch"]["passages_per_s"]
            out[b]["cpu_speedup_vs_torch"] = out[b]["passages_per_cpu_s"] / out["torch"]["passages_per_cpu_s"]
    res["embed"] = {
        "passages": len(json.loads(texts.read_text())),
        "rounds": o.rounds,
        "threads": o.threads,
        "backends": out,
    }


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for this section."""
    lines: list[str] = []
    e = res["embed"]
    lines.append(
        f"\nEmbedding throughput ({e['passages']} SciFact passages, best of {e['rounds']} alternating "
        f"rounds, {e['threads']} threads):"
    )
    lines.append(
        f"  {'backend':<10} {'pass/s':>8} {'x torch':>8} {'pass/cpu-s':>11} {'x torch':>8} "
        f"{'cos min':>8} {'load s':>7} {'RSS MB':>7}  rounds"
    )
    for b, v in e["backends"].items():
        lines.append(
            f"  {b:<10} {v['passages_per_s']:>8.1f} {v.get('speedup_vs_torch', 0):>8.2f} "
            f"{v['passages_per_cpu_s']:>11.1f} {v.get('cpu_speedup_vs_torch', 0):>8.2f} "
            f"{v.get('cosine_to_torch_min', 1):>8.4f} {v['load_s']:>7.1f} {v['peak_rss_mb']:>7.0f}  "
            f"{v['all_rounds_per_s']}"
        )
    return lines
