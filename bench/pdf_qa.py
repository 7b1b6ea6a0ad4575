"""Answers with each PDF engine, on the same code: `kb eval qa` once per `pdf_engine` on the
PDF question sets, and the figures side by side.

Sets: bench/pdf-questions.jsonl over its three PDFs from ../shared/eval/docs, and
../shared/eval/financebench-dev/questions.jsonl over its filings. Each run ingests the corpus
into a fresh knowledge base with that engine (`KB_PDF_ENGINE`), asks every question (extractive
unless --llm) and writes its rows; besides `kb eval qa`'s own figures, page hit is computed
here from those rows for questions that name their gold pages: the share of answerable
questions whose answer cites a passage of the gold file on one of the gold pages.

    python bench/pdf_qa.py                        # auto and pypdf, extractive
    python bench/pdf_qa.py --engines auto,pdfium,pypdf --llm
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
PDF_QUESTION_FILES = ("multi-column.pdf", "layout-parser-paper-fast.pdf", "reliance.pdf")
METRICS = (
    "answered_when_doc_present",
    "refusal_rate_unanswerable",
    "evidence_recall",
    "gold_doc_cited",
    "citation_precision",
    "answer_recall",
)


def page_hit(rows: list[dict[str, Any]], gold_pages: dict[str, list[int]]) -> float | None:
    """Share of answerable questions with gold pages whose answer cites the gold file on a gold page."""
    scored = [r for r in rows if r["answerable"] and not r["doc_excluded"] and gold_pages.get(str(r["id"]))]
    if not scored:
        return None
    hits = 0
    for r in scored:
        pages = set(gold_pages[str(r["id"])])
        for s in r["answer"]["sources"]:
            first, last = s.get("page_start"), s.get("page_end") or s.get("page_start")
            if Path(s["path"]).name == r["gold_doc"] and first and any(first <= p <= last for p in pages):
                hits += 1
                break
    return hits / len(scored)


def eval_qa(questions: Path, corpus: Path, engine: str, tmp: Path, llm: bool) -> dict[str, Any]:
    """One `kb eval qa` run with one engine: its JSON metrics plus page hit."""
    rows_file = tmp / f"rows-{questions.stem}-{engine}.jsonl"
    cmd = [KB, "eval", "qa", str(questions), "--corpus", str(corpus), "--holdout", "0", "--json"]
    cmd += ["--kb", str(tmp / f"kb-{questions.stem}-{engine}"), "--out", str(rows_file)]
    if not llm:
        cmd.append("--extractive")
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "KB_PDF_ENGINE": engine}, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"kb eval qa ({engine}) failed: {done.stderr[-2000:]}")
    metrics = json.loads(done.stdout)
    rows = [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()]
    gold = {}
    for line in questions.read_text().splitlines():
        if line.strip():
            q = json.loads(line)
            gold[str(q.get("id"))] = q.get("pages") or []
    metrics["page_hit"] = page_hit(rows, gold)
    metrics["wall"] = time.perf_counter() - started
    return metrics


def main() -> None:
    """Run each set with each engine and print the figures side by side."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", default="auto,pypdf")
    p.add_argument("--llm", action="store_true", help="generative answers (default: extractive, no LLM)")
    p.add_argument("--only", default="pdf-questions,financebench", help="question sets (comma-separated)")
    o = p.parse_args()
    engines = [e.strip() for e in o.engines.split(",") if e.strip()]
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="kb-pdf-qa-") as tmp_name:
        tmp = Path(tmp_name)
        sets = []
        if "pdf-questions" in o.only:
            corpus = tmp / "pdfqa"
            corpus.mkdir()
            for name in PDF_QUESTION_FILES:
                shutil.copy(EVAL / "docs" / "unstructured-example-docs" / "pdf" / name, corpus / name)
            sets.append(("bench/pdf-questions.jsonl", REPO / "bench" / "pdf-questions.jsonl", corpus))
        if "financebench" in o.only:
            fb = EVAL / "financebench-dev"
            sets.append(("financebench-dev", fb / "questions.jsonl", fb / "pdfs"))
        for label, questions, corpus in sets:
            results = {e: eval_qa(questions, corpus, e, tmp, o.llm) for e in engines}
            print(f"\n{label} ({'LLM' if o.llm else 'extractive'}), {results[engines[0]]['questions']} questions")
            print(f"  {'metric':28s}" + "".join(f"{e:>10s}" for e in engines))
            for m in (*METRICS, "page_hit"):
                values = [results[e].get(m) for e in engines]
                print(f"  {m:28s}" + "".join(f"{'n/a':>10s}" if v is None else f"{v:10.3f}" for v in values))
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
