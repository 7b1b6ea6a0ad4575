"""Hybrid query throughput of this checkout's retrieval against a git ref's, side by side.

    python bench/run.py --only query_fusion                          # on the quality knowledge base
    python bench/run.py --only query_fusion --fusion-kb KB --fusion-queries Q.jsonl --fusion-ref main

The baseline is kb/retrieval.py as it is at a git ref (default: the merge base with main),
loaded from git into a module of its own, so both versions search the same knowledge base in
one fresh process with the same loaded model. Rounds alternate (baseline, current, current,
baseline, ...) so that a change of machine load during the run favours neither; each side's
best round is kept. Two workloads: batches (`search_many`, 64 queries at a time, k=10, as `kb
search --queries` runs them) and one query at a time (`search`, k=10, as `kb ask` and `kb serve`
do). Query embedding is included, model loading is not.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, quality_kb, worker

NAME = "query_fusion"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument("--fusion-kb", type=Path, help="knowledge base searched (default: the first quality one)")
    p.add_argument("--fusion-queries", type=Path, help="BEIR queries.jsonl or one per line (default: the corpus's)")
    p.add_argument("--fusion-n", type=int, default=300, help="queries per round (the first one at a time: a third)")
    p.add_argument("--fusion-rounds", type=int, default=4, help="rounds per side, alternating")
    p.add_argument("--fusion-ref", default="", help="git ref of the baseline retrieval (default: merge base with main)")


def baseline_module(ref: str) -> Any:
    """kb/retrieval.py at a git ref, imported under another name."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{ref}:kb/retrieval.py"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "kb_retrieval_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("kb_retrieval_baseline", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def read_queries(path: Path, n: int) -> list[str]:
    """The first n query texts of a BEIR queries.jsonl (or a file of one query per line)."""
    out: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line)["text"] if line.lstrip().startswith("{") else line.strip())
        if len(out) >= n:
            break
    return out


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def w_compare(a: dict[str, Any]) -> dict[str, Any]:
    """Both retrievals on one knowledge base, alternating rounds; queries/s of each round."""
    from kb import retrieval as current
    from kb.config import Settings
    from kb.knowledge import KnowledgeBase

    queries = read_queries(Path(a["queries"]), a["n"])
    single = max(1, len(queries) // 3)
    base_mod = baseline_module(a["ref"])
    s = Settings.load().with_overrides(home=Path(a["kb"]))
    rounds: dict[str, dict[str, list[float]]] = {side: {"batch": [], "single": []} for side in ("baseline", "current")}
    with KnowledgeBase(s) as kb:
        sides = {"baseline": base_mod.Retriever(kb), "current": current.Retriever(kb)}
        for r in sides.values():
            r.search_many(queries[:8], 10, "hybrid")  # warm the model, the caches and SQLite
        order = ("baseline", "current", "current", "baseline")
        for i in range(a["rounds"] * 2):
            name = order[i % 4]
            r = sides[name]
            batch = _timed(
                lambda r=r: [r.search_many(queries[j : j + 64], 10, "hybrid") for j in range(0, len(queries), 64)]
            )
            one = _timed(lambda r=r: [r.search(q, 10, "hybrid") for q in queries[:single]])
            rounds[name]["batch"].append(len(queries) / batch)
            rounds[name]["single"].append(single / one)
        cur = sides["current"]
        return {
            "kb": a["kb"],
            "ref": a["ref"],
            "queries": len(queries),
            "single_queries": single,
            "chunks": kb.vectors.size,
            "dense_weight": cur.dense_weight,
            "weight_source": getattr(cur, "weight_source", "default"),
            "rounds": rounds,
            "best": {side: {k: max(v) for k, v in per.items()} for side, per in rounds.items()},
            "load_avg": list(os.getloadavg()),
        }


WORKERS = {"compare": w_compare}


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
    folder = o.fusion_kb or quality_kb(o, o.quality_backends[0])
    if not (folder / "manifest.json").is_file():
        raise RuntimeError(f"{folder}: no knowledge base (run the quality section first, or give --fusion-kb)")
    ref = (
        o.fusion_ref
        or subprocess.run(
            ["git", "-C", str(REPO), "merge-base", "HEAD", "main"], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    queries = o.fusion_queries or o.corpus / "queries.jsonl"
    args = {"kb": str(folder), "queries": str(queries), "n": o.fusion_n, "rounds": o.fusion_rounds, "ref": ref}
    res[NAME] = worker(f"{NAME}.compare", args)


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for this section."""
    v = res[NAME]
    lines = [
        f"\nHybrid query throughput, this checkout against {v['ref'][:12]} ({v['queries']} queries, "
        f"{v['chunks']} chunks; current dense weight {v['dense_weight']} ({v['weight_source']}); "
        f"best of {len(v['rounds']['current']['batch'])} alternating rounds, load average {v['load_avg'][0]:.1f}):",
        f"  {'workload':<28}{'baseline q/s':>14}{'current q/s':>14}{'current/baseline':>18}",
    ]
    labels = (("batch", "batches of 64, k=10"), ("single", f"one at a time, k=10 ({v['single_queries']})"))
    for key, label in labels:
        b, c = v["best"]["baseline"][key], v["best"]["current"][key]
        lines.append(f"  {label:<28}{b:>14.1f}{c:>14.1f}{c / b:>18.3f}")
    return lines
