"""Ingest benchmark on real PDFs: the pypdf path (one parse worker, as before PDFium) against
the default (PDFium, a parse worker per core), side by side in one run.

For each corpus (the financebench-dev filings; the PDFs of ../shared/eval/docs) and each
configuration, `kb ingest --json` runs in a fresh process into a new knowledge base. Reported:
pages/s and passages/s, the share of time in parse, chunk, embed and store (parse and chunk
are summed over the workers, which run beside the embedder), the time the embedder waited for
parsed files, and peak RSS (of the kb process, and of kb with its workers, sampled). Then
parse speed on a single 10-K per engine, in-process: pages/s of text extraction alone, and
with kb's chunking.

    python bench/ingest_pdf.py                       # both corpora, three configurations
    python bench/ingest_pdf.py --only filings --configs pypdf-1,auto
    python bench/ingest_pdf.py --out bench/results.jsonl   # also append the figures as one JSON line
    python bench/run.py --only ingest_pdf --pdf-corpora filings --pdf-configs pypdf-1,auto   # in the runner

Configurations: pypdf-1 (pdf_engine=pypdf, parse_workers=1: the path before PDFium), pypdf
(pypdf with a worker per core), auto (the default: PDFium, a worker per core), auto-1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path[0] = str(REPO)  # bench/ingest.py must not shadow the `ingest` package
BIN = Path(sys.executable).parent
KB = str(BIN / "kb") if (BIN / "kb").exists() else "kb"
EVAL = Path(os.environ.get("KB_EVAL_DATA", "/work/shared/eval"))
CONFIGS: dict[str, dict[str, str]] = {
    "pypdf-1": {"KB_PDF_ENGINE": "pypdf", "KB_PARSE_WORKERS": "1"},
    "pypdf": {"KB_PDF_ENGINE": "pypdf"},
    "auto-1": {"KB_PDF_ENGINE": "auto", "KB_PARSE_WORKERS": "1"},
    "auto": {"KB_PDF_ENGINE": "auto"},
}
LABELS = {
    "pypdf-1": "pypdf, 1 worker (before)",
    "pypdf": "pypdf, a worker per core",
    "auto-1": "PDFium, 1 worker",
    "auto": "PDFium, a worker per core (default)",
}
TEN_K = "CVSHEALTH_2022_10K.pdf"  # the longest filing (213 pages)
NAME = "ingest_pdf"  # the section of bench/run.py
DEFAULT = False  # minutes long: only when --only names it


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total / 2**20


def run(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a command: wall time, peak RSS of the process (wait4) and of its process tree (sampled)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **env}, cwd=REPO)
        tree_peak = 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            tree_peak = max(tree_peak, _tree_rss_mb(proc.pid))
            time.sleep(0.1)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return {
            "wall": wall,
            "rss_mb": usage.ru_maxrss / 1024,
            "tree_rss_mb": tree_peak,
            "code": os.waitstatus_to_exitcode(status),
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


def ingest(files: list[Path], config: str, tmp: Path, threads: int | None) -> dict[str, Any]:
    """`kb ingest` of `files` with one configuration, in a fresh process and knowledge base."""
    home = tmp / f"kb-{config}-{time.monotonic_ns()}"
    env = dict(CONFIGS[config])
    if threads:
        env["KB_THREADS"] = str(threads)
    r = run([KB, "ingest", *map(str, files), "--kb", str(home), "--json", "-q"], env)
    if r["code"] not in (0, 2):  # 2: some files failed, as hostile files do
        raise RuntimeError(f"kb ingest ({config}) exited {r['code']}: {r['stderr'][-2000:]}")
    d = json.loads(r["stdout"])
    t = d["timings"]
    work = t["parse"] + t["chunk"] + t["embed"] + t["store"]
    seconds = d["seconds"]
    return {
        "config": config,
        "files": len(files),
        "added": d["summary"]["added"],
        "failed": d["summary"]["failed"],
        "pages": d["pages"],
        "passages": d["totals"]["chunks"],
        "seconds": seconds,
        "wall": r["wall"],
        "pages_per_s": d["pages"] / seconds,
        "passages_per_s": d["totals"]["chunks"] / seconds,
        "timings": t,
        "shares": {k: (t[k] / work if work else 0.0) for k in ("parse", "chunk", "embed", "store")},
        "peak_rss_mb": r["rss_mb"],
        "peak_tree_rss_mb": r["tree_rss_mb"],
    }


def parse_speed(path: Path, engine: str, tokenizer: str) -> dict[str, Any]:
    """Pages/s of one engine on one file, in this process: text alone, then with kb's chunking."""
    sys.path.insert(0, str(REPO))
    from ingest.chunking import HFTokenizer, chunk_document
    from ingest.pdf import build_document, read_pages

    tok = HFTokenizer.from_file(Path(tokenizer))
    read_pages(path, engine=engine)  # warm: libraries loaded, file in the page cache
    started = time.perf_counter()
    read = read_pages(path, engine=engine)
    text = time.perf_counter() - started
    doc = build_document(path, read)
    chunks = chunk_document(doc, tok, size=200, overlap=32)
    both = time.perf_counter() - started
    return {
        "engine": engine,
        "pages": read.n_pages,
        "chars": len(doc.text),
        "chunks": len(chunks),
        "text_seconds": text,
        "pages_per_s": read.n_pages / text,
        "with_chunking_pages_per_s": read.n_pages / both,
    }


def tokenizer_file() -> str:
    """tokenizer.json of the default embedding model."""
    sys.path.insert(0, str(REPO))
    from kb.embeddings import default_embed_model_dir

    return str(default_embed_model_dir() / "tokenizer.json")


def corpora(only: list[str]) -> dict[str, list[Path]]:
    """The PDF files of each corpus."""
    out = {}
    if "filings" in only:
        out["filings"] = sorted((EVAL / "financebench-dev" / "pdfs").glob("*.pdf"))
    if "docs" in only:
        out["docs"] = sorted(f for f in (EVAL / "docs").rglob("*") if f.is_file() and f.suffix.lower() == ".pdf")
    return out


def render(res: dict[str, Any]) -> str:
    """The side-by-side tables of one run (the section's figures)."""
    lines = [f"{res['date']}  {res['machine']}  load average at start {res['load_avg_start']}"]
    for name, rows in res["ingest"].items():
        first = rows[0]
        lines.append(f"\n{name}: {first['files']} PDFs, {first['pages']} pages, {first['passages']} passages")
        lines.append(
            f"  {'configuration':38s} {'seconds':>8s} {'pages/s':>8s} {'pass./s':>8s}  parse chunk embed store"
            f"  {'waited':>7s} {'RSS kb':>7s} {'+workers':>8s}"
        )
        base = next((r for r in rows if r["config"] == "pypdf-1"), None)
        for r in rows:
            s = r["shares"]
            speedup = f"  x{base['seconds'] / r['seconds']:.2f}" if base and r is not base else ""
            lines.append(
                f"  {LABELS[r['config']]:38s} {r['seconds']:8.1f} {r['pages_per_s']:8.1f} {r['passages_per_s']:8.1f}"
                f"  {s['parse']:5.0%} {s['chunk']:5.0%} {s['embed']:5.0%} {s['store']:5.0%}"
                f"  {r['timings']['wait']:6.1f}s {r['peak_rss_mb']:6.0f}M {r['peak_tree_rss_mb']:7.0f}M{speedup}"
            )
    if res.get("parse"):
        lines.append(f"\nparse speed on {TEN_K} (one process, warm):")
        for p in res["parse"]:
            lines.append(
                f"  {p['engine']:7s} {p['pages']} pages, {p['chars']:,} chars: {p['pages_per_s']:7.1f} pages/s text, "
                f"{p['with_chunking_pages_per_s']:7.1f} pages/s with chunking ({p['chunks']} chunks)"
            )
    lines.append(f"\nload average at end {res['load_avg_end']}")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options in bench/run.py."""
    p.add_argument("--pdf-corpora", default="filings,docs,parse", help="ingest_pdf: filings, docs, parse")
    p.add_argument("--pdf-configs", default="pypdf-1,pypdf,auto", help=f"ingest_pdf: of {', '.join(CONFIGS)}")


def measure(only: list[str], configs: list[str], threads: int | None, tmp: Path) -> dict[str, Any]:
    """Every ingest run and the parse speeds."""
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown configuration(s) {unknown}")
    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "ingest": {},
        "parse": [],
    }
    for name, files in corpora(only).items():
        res["ingest"][name] = [ingest(files, c, tmp, threads) for c in configs]
    if "parse" in only:
        tok = tokenizer_file()
        for engine in ("pdfium", "pypdf"):
            cmd = [sys.executable, __file__, "--worker", str(EVAL / "financebench-dev" / "pdfs" / TEN_K), engine, tok]
            r = run(cmd, {})
            if r["code"] != 0:
                raise RuntimeError(f"parse speed ({engine}) failed: {r['stderr'][-2000:]}")
            res["parse"].append(json.loads(r["stdout"].strip().splitlines()[-1]))
    res["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return res


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """bench/run.py: measure into res[NAME]."""
    only = [s.strip() for s in o.pdf_corpora.split(",") if s.strip()]
    configs = [c.strip() for c in o.pdf_configs.split(",") if c.strip()]
    res[NAME] = measure(only, configs, o.threads, tmp)


def report(res: dict[str, Any]) -> list[str]:
    """bench/run.py: the report's lines for res[NAME]."""
    return ["", "Ingest of real PDFs (bench/ingest_pdf.py):", *render(res[NAME]).splitlines()]


def main() -> None:
    """Run the benchmark and print the report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="filings,docs,parse", help="filings, docs, parse (comma-separated)")
    p.add_argument("--configs", default="pypdf-1,pypdf,auto", help=f"of {', '.join(CONFIGS)}")
    p.add_argument("--threads", type=int, help="KB_THREADS for the embedder (default: the cores)")
    p.add_argument("--out", type=Path, help="append the result as one JSON line to this file")
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    o = p.parse_args()
    if o.worker:
        print(json.dumps(parse_speed(Path(o.worker[0]), o.worker[1], o.worker[2])))
        return
    only = [s.strip() for s in o.only.split(",") if s.strip()]
    configs = [c.strip() for c in o.configs.split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="kb-bench-pdf-") as tmp:
        try:
            res = {"bench": NAME, **measure(only, configs, o.threads, Path(tmp))}
        except ValueError as exc:
            p.error(str(exc))
    print(render(res))
    if o.out:
        with o.out.open("a") as fh:
            fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
