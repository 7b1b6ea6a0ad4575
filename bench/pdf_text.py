"""PDF text quality: PDFium (pypdfium2), alone and as kb reads PDFs by default (pdf_engine
auto: PDFium, pypdf where PDFium garbles or fails), against pypdf, page by page, on real PDFs.

For every PDF under the given folders, each engine reads every page through kb's own clean-up
(ingest/pdf.py read_pages: ligatures, hyphenation, whitespace; running lines are not removed,
so the raw page text is compared). Per page: character counts, word-level similarity (bag-of-
words F1, order-free, and difflib's ratio on the word sequences, order-aware), and pages where
one engine found text and the other none. Each file is read in a child process with a time
limit, so a file that hangs or crashes a library costs only that file.

    python bench/pdf_text.py                                   # ../shared/eval docs + financebench-dev
    python bench/pdf_text.py DIR... --out /tmp/pages.jsonl     # one JSON line per page as well

Prints the report; with --out writes per-page rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path[0] = str(REPO)  # bench/ingest.py must not shadow the `ingest` package
EVAL = Path(os.environ.get("KB_EVAL_DATA", "/work/shared/eval"))
ENGINES = ("pdfium", "auto", "pypdf")
COMPARED = ("pdfium", "auto")  # each against pypdf: PDFium alone, and the default (PDFium, pypdf where it garbles)
PASSWORD = "asdfzxcv"  # the password of the encrypted test files in docs/pypdf/resources
SEQUENCE_WORDS = 6000  # difflib is quadratic: pages with more words get the bag-of-words figure only


def bag_f1(a: list[str], b: list[str]) -> float:
    """Shared words (with multiplicity) over the mean length: 1.0 for the same words in any order."""
    if not a and not b:
        return 1.0
    shared = sum((Counter(a) & Counter(b)).values())
    return 2 * shared / (len(a) + len(b))


def sequence_ratio(a: list[str], b: list[str]) -> float | None:
    """difflib's similarity of the two word sequences (reading order counts), None for huge pages."""
    if len(a) > SEQUENCE_WORDS or len(b) > SEQUENCE_WORDS:
        return None
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def compare_file(path: str) -> dict[str, Any]:
    """Both engines' page texts of one PDF, compared (runs in a child process)."""
    sys.path.insert(0, str(REPO))
    import pypdf  # noqa: F401  (imported before the clocks start, so no engine is charged for imports)
    import pypdfium2  # noqa: F401

    from ingest.errors import ParseError
    from ingest.pdf import read_pages

    out: dict[str, Any] = {"path": path, "engines": {}, "pages": []}
    texts: dict[str, dict[int, str]] = {}
    for engine in ENGINES:
        started = time.perf_counter()
        try:
            read = read_pages(Path(path), password=PASSWORD, engine=engine)
        except ParseError as exc:
            out["engines"][engine] = {"error": exc.reason, "seconds": time.perf_counter() - started}
            continue
        except Exception as exc:  # a library bug on a hostile file is a finding, not a crash of the bench
            out["engines"][engine] = {"error": f"{type(exc).__name__}: {exc}"[:160], "seconds": 0.0}
            continue
        out["engines"][engine] = {
            "seconds": time.perf_counter() - started,
            "n_pages": read.n_pages,
            "failures": len(read.failures),
        }
        texts[engine] = dict(read.pages)
    if "pypdf" not in texts or not any(e in texts for e in COMPARED):
        return out
    b = texts["pypdf"]
    pages = sorted(set(b).union(*(texts[e] for e in COMPARED if e in texts)))
    for page in pages:
        tb = b.get(page, "")
        row: dict[str, Any] = {"page": page, "chars": {"pypdf": len(tb)}, "words": {"pypdf": len(tb.split())}}
        for engine in COMPARED:
            if engine not in texts:
                continue
            ta = texts[engine].get(page, "")
            wa, wb = ta.split(), tb.split()
            row["chars"][engine], row["words"][engine] = len(ta), len(wa)
            row[engine] = {
                "bag_f1": round(bag_f1(wa, wb), 4),
                "sequence": None if (r := sequence_ratio(wa, wb)) is None else round(r, 4),
            }
        out["pages"].append(row)
    return out


def run_file(path: Path, timeout: float) -> dict[str, Any]:
    """compare_file in a child process; a hang or crash is recorded as the file's error."""
    cmd = [sys.executable, __file__, "--worker", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"path": str(path), "error": f"timed out after {timeout:g} s", "engines": {}, "pages": []}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1][:160]
        return {"path": str(path), "error": f"exit {done.returncode}: {tail}", "engines": {}, "pages": []}
    return json.loads(done.stdout)


def report(files: list[dict[str, Any]], seconds: float) -> str:
    """The side-by-side summary."""
    pages = [p for f in files for p in f["pages"]]
    lines = [f"{len(files)} PDFs, {len(pages)} pages read by pypdf and PDFium ({seconds:.0f} s)"]
    for engine in ENGINES:
        read = [f["engines"][engine] for f in files if "n_pages" in f["engines"].get(engine, {})]
        n = sum(e["n_pages"] for e in read)
        t = sum(e["seconds"] for e in read)
        errors = [f for f in files if "error" in f["engines"].get(engine, {"error": 1})]
        lines.append(
            f"  {engine:7s} files read {len(read):4d}, failed {len(errors):3d}; pages {n:6d} in {t:7.1f} s "
            f"({n / t if t else 0:6.1f} pages/s); page failures {sum(e['failures'] for e in read)}"
        )
    for engine in COMPARED:
        lines.extend(_pair_report(files, engine))
    failed = [f for f in files if f.get("error")]
    if failed:
        lines.append(f"\nfiles that stopped a child process: {len(failed)}")
        lines.extend(f"  {Path(f['path']).name}: {f['error']}" for f in failed)
    errors = [
        (f, f["engines"]["pdfium"].get("error"), f["engines"]["pypdf"].get("error")) for f in files if f["engines"]
    ]
    disagree = [(Path(f["path"]).name, a, b) for f, a, b in errors if bool(a) != bool(b)]
    if disagree:
        lines.append("files only one engine could read (file: pdfium error | pypdf error):")
        lines.extend(f"  {name}: {a or '-'} | {b or '-'}" for name, a, b in disagree)
    return "\n".join(lines)


def _pair_report(files: list[dict[str, Any]], engine: str) -> list[str]:
    rows = [(Path(f["path"]).name, p) for f in files for p in f["pages"] if engine in p]
    if not rows:
        return []
    label = "PDFium alone" if engine == "pdfium" else "auto (the default)"
    lines = [f"\n{label} against pypdf, {len(rows)} pages:"]
    chars = [sum(p["chars"][e] for _, p in rows) for e in (engine, "pypdf")]
    lines.append(f"  characters: {engine} {chars[0]:,}, pypdf {chars[1]:,} ({chars[0] / max(chars[1], 1) - 1:+.2%})")
    both = [(name, p) for name, p in rows if p["chars"][engine] and p["chars"]["pypdf"]]
    f1 = [p[engine]["bag_f1"] for _, p in both]
    seq = [p[engine]["sequence"] for _, p in both if p[engine]["sequence"] is not None]
    if f1:
        lines.append(
            f"  word bag F1 on {len(f1)} pages with text from both: mean {statistics.fmean(f1):.4f}, "
            f"median {statistics.median(f1):.4f}; pages below 0.9: {sum(x < 0.9 for x in f1)}, "
            f"below 0.5: {sum(x < 0.5 for x in f1)}"
        )
    if seq:
        lines.append(
            f"  word sequence ratio (difflib) on {len(seq)} pages: mean {statistics.fmean(seq):.4f}, "
            f"median {statistics.median(seq):.4f}; pages below 0.9: {sum(x < 0.9 for x in seq)}"
        )
    for first, second in ((engine, "pypdf"), ("pypdf", engine)):
        where = [f"{name} p.{p['page']}" for name, p in rows if p["chars"][first] and not p["chars"][second]]
        shown = f" ({', '.join(where[:8])})" if where else ""
        lines.append(f"  pages with text from {first} only: {len(where)}{shown}")
    worst = sorted(both, key=lambda np: np[1][engine]["bag_f1"])[:8]
    if worst:
        lines.append(f"  least similar pages (bag F1, file, page, characters {engine}/pypdf):")
        lines.extend(
            f"    {p[engine]['bag_f1']:.3f} {name} p.{p['page']} {p['chars'][engine]}/{p['chars']['pypdf']}"
            for name, p in worst
        )
    below = {}  # type: dict[str, int]
    for name, p in both:
        if p[engine]["bag_f1"] < 0.9:
            below[name] = below.get(name, 0) + 1
    if below:
        top = sorted(below.items(), key=lambda kv: -kv[1])[:6]
        lines.append("  files with most pages below 0.9: " + ", ".join(f"{n} ({c})" for n, c in top))
    return lines


def main() -> None:
    """Compare the engines on every PDF under the folders given (default: the shared eval data)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="*", type=Path, default=[EVAL / "docs", EVAL / "financebench-dev"])
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per file (all engines)")
    p.add_argument("--out", type=Path, help="write one JSON line per file, with its pages, here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    o = p.parse_args()
    if o.worker:
        print(json.dumps(compare_file(o.worker)))
        return
    pdfs = sorted(f for folder in o.folders for f in folder.rglob("*") if f.is_file() and f.suffix.lower() == ".pdf")
    started = time.perf_counter()
    files = []
    for i, path in enumerate(pdfs, 1):
        print(f"[{i}/{len(pdfs)}] {path.name}", file=sys.stderr, flush=True)
        files.append(run_file(path, o.timeout))
    if o.out:
        with o.out.open("w") as fh:
            for f in files:
                fh.write(json.dumps(f) + "\n")
    print(report(files, time.perf_counter() - started))


if __name__ == "__main__":
    main()
