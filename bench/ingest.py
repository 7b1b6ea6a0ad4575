"""File ingest: `kb ingest` of several copies of samples/, files, PDF pages and passages per second."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from bench.common import REPO, csv, kb

NAME = "ingest"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument("--ingest-backends", type=csv, default="torch,auto", help="backends timed on file ingest")
    p.add_argument("--copies", type=int, default=6, help="copies of samples/ ingested")


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
    src = tmp / "docs"
    for i in range(o.copies):
        shutil.copytree(REPO / "samples", src / f"copy{i}", ignore=shutil.ignore_patterns("source", "*.jsonl"))
    out = {}
    for b in o.ingest_backends:
        home = tmp / f"ingest-{b}"
        r = kb(["ingest", str(src), "--kb", str(home), "--json", "-q"], {"KB_EMBED_BACKEND": b})
        d = json.loads(r["stdout"])
        with contextlib.closing(sqlite3.connect(home / "kb.sqlite")) as db:
            pdf_pages = db.execute("SELECT coalesce(sum(n_pages), 0) FROM documents WHERE format = 'pdf'").fetchone()[0]
        files = d["summary"]["added"]
        out[b] = {
            "files": files,
            "chunks": d["totals"]["chunks"],
            "pdf_pages": pdf_pages,
            "seconds": d["seconds"],
            "wall": r["wall"],
            "files_per_s": files / d["seconds"],
            "passages_per_s": d["totals"]["chunks"] / d["seconds"],
            "pages_per_s": pdf_pages / d["seconds"],
            "peak_rss_mb": r["rss_mb"],
        }
    res["ingest"] = {"corpus": f"samples/ x{o.copies}", "backends": out}


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for this section."""
    lines: list[str] = []
    lines.append(f"\nFile ingest (`kb ingest`, {res['ingest']['corpus']}):")
    for b, v in res["ingest"]["backends"].items():
        lines.append(
            f"  {b:<10} {v['files']} files, {v['pdf_pages']} PDF pages, {v['chunks']} passages in "
            f"{v['seconds']:.1f} s: {v['files_per_s']:.2f} files/s, {v['pages_per_s']:.2f} PDF pages/s, "
            f"{v['passages_per_s']:.1f} passages/s; peak RSS {v['peak_rss_mb']:.0f} MB"
        )
    return lines
