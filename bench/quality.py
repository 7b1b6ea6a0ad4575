"""Retrieval quality: nDCG@10 and recall@100 through `kb eval retrieval`, per embedding backend; the
knowledge bases it builds are cached and used by the warm and scale sections."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from bench.common import csv, kb, quality_kb

NAME = "quality"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument("--quality-backends", type=csv, default="torch,auto,onnx-int8", help="backends scored for nDCG@10")
    p.add_argument("--fresh", action="store_true", help="rebuild the quality knowledge bases (times the builds)")


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
    out = {}
    for b in o.quality_backends:
        folder = quality_kb(o, b)
        if o.fresh and folder.exists():
            shutil.rmtree(folder)
        r = kb(
            [
                "eval",
                "retrieval",
                str(o.corpus),
                "--split",
                o.split,
                "--mode",
                "dense",
                "--mode",
                "hybrid",
                "--kb",
                str(folder),
                "--json",
                "-q",
            ],
            {"KB_EMBED_BACKEND": b, "KB_CHUNK_TOKENS": str(o.chunk_tokens)},
        )
        d = json.loads(r["stdout"])
        entry = {
            m: {"ndcg@10": v["metrics"]["ndcg@10"], "recall@100": v["metrics"]["recall@100"], "qps": v["qps"]}
            for m, v in d["modes"].items()
        }
        entry["chunks"] = d["chunks"]
        entry["peak_rss_mb"] = r["rss_mb"]
        if d["index"]["embedded"]:
            entry["build"] = {
                "seconds": d["index"]["seconds"],
                "documents_per_s": d["index"]["embedded"] / d["index"]["seconds"],
                "passages_per_s": d["chunks"] / d["index"]["seconds"],
            }
        else:
            entry["build"] = "cached (built by an earlier run with this backend; --fresh to time it)"
        db, faiss_file = folder / "kb.sqlite", folder / "vectors.faiss"
        entry["bytes_per_chunk"] = {
            "sqlite": db.stat().st_size / d["chunks"],
            "faiss": faiss_file.stat().st_size / d["chunks"],
        }
        out[b] = entry
    ref = out.get("torch")
    if ref:
        for b in out:
            for m in ("dense", "hybrid"):
                out[b][m]["delta_vs_torch"] = out[b][m]["ndcg@10"] - ref[m]["ndcg@10"]
    res["quality"] = {"corpus": str(o.corpus), "split": o.split, "chunk_tokens": o.chunk_tokens, "backends": out}


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for this section."""
    lines: list[str] = []
    q = res["quality"]
    lines.append(f"\nRetrieval quality on {Path(q['corpus']).name} ({q['split']}), `kb eval retrieval`:")
    for b, v in q["backends"].items():
        build = v["build"]
        bl = (
            f"built at {build['passages_per_s']:.1f} passages/s ({build['documents_per_s']:.1f} docs/s)"
            if isinstance(build, dict)
            else "cached build"
        )
        lines.append(
            f"  {b:<10} nDCG@10 dense {v['dense']['ndcg@10']:.4f} ({v['dense'].get('delta_vs_torch', 0):+.4f})"
            f"  hybrid {v['hybrid']['ndcg@10']:.4f} ({v['hybrid'].get('delta_vs_torch', 0):+.4f})  "
            f"{v['chunks']} chunks, {bl}, peak RSS {v['peak_rss_mb']:.0f} MB, "
            f"{v['bytes_per_chunk']['sqlite'] / 1024:.1f} KB SQLite + "
            f"{v['bytes_per_chunk']['faiss'] / 1024:.2f} KB FAISS per chunk"
        )
    return lines
