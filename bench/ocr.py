"""OCR benchmark: accuracy, coverage and speed of kb's OCR (RapidOCR, PP-OCRv4 models from the
rapidocr-onnxruntime wheel), in one run.

1. Character error rate on clean pages: text pages of PDFs in ../shared/eval/docs are rendered
   to images at 200 DPI, OCRed, and compared with their own text layer (both with whitespace
   collapsed; CER = edit distance / length of the text layer).
2. Coverage: the share of the image-only PDFs (no page with a text layer) and of the images in
   ../shared/eval/docs that yield searchable text (three words or more) through `parse_file`.
3. Speed: `kb ingest` of a folder of scanned PDFs (clean pages rendered to images and bound
   into image-only PDFs of three pages) with a parse worker per core: OCR pages/s, time in
   parse, and peak RSS of kb with its workers.

    python bench/ocr.py
    python bench/ocr.py --only cer --pages 12

Every file is read in a child process with a time limit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
IMAGES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
# Single-column text pages with a clean text layer (file under docs/, 1-based page).
CLEAN_PAGES = [
    ("unstructured-example-docs/pdf/reliance.pdf", 3),
    ("unstructured-example-docs/pdf/DA-1p.pdf", 1),
    ("unstructured-example-docs/pdf/fake-memo.pdf", 1),
    ("unstructured-example-docs/pdf/a1977-backus-p21.pdf", 1),
    ("unstructured-example-docs/pdf/interface-config-guide-p93.pdf", 1),
    ("unstructured-example-docs/pdf/list-item-example.pdf", 1),
    ("unstructured-example-docs/pdf/DA-619p.pdf", 10),
    ("unstructured-example-docs/pdf/DA-619p.pdf", 200),
    ("py-pdf-sample-files/002-trivial-libre-office-writer/002-trivial-libre-office-writer.pdf", 1),
    ("py-pdf-sample-files/004-pdflatex-4-pages/pdflatex-4-pages.pdf", 1),
    ("py-pdf-sample-files/004-pdflatex-4-pages/pdflatex-4-pages.pdf", 2),
    ("py-pdf-sample-files/011-google-doc-document/google-doc-document.pdf", 1),
    ("py-pdf-sample-files/021-pdfa/crazyones-pdfa.pdf", 1),
]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, a row at a time in numpy (insertions folded in with a running minimum)."""
    import numpy as np

    if not a or not b:
        return max(len(a), len(b))
    bv = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(len(b) + 1)
    row = idx.copy()
    av = np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32)
    for i in range(1, len(av) + 1):
        sub = row[:-1] + (bv != av[i - 1])
        new = np.empty_like(row)
        new[0] = i
        new[1:] = np.minimum(row[1:] + 1, sub)
        row = np.minimum.accumulate(new - idx) + idx
    return int(row[-1])


def _norm(text: str) -> str:
    return " ".join(text.split())


def w_page_cer(args: dict[str, Any]) -> dict[str, Any]:
    """Render one page at `dpi`, OCR it, compare with its text layer."""
    sys.path.insert(0, str(REPO))
    import pypdfium2 as pdfium

    from ingest.ocr import load, recognize
    from ingest.pdf import clean_pdf_text, read_pages

    path, page, dpi = Path(args["path"]), int(args["page"]), int(args["dpi"])
    layer = _norm(dict(read_pages(path).pages).get(page, ""))
    load()
    doc = pdfium.PdfDocument(str(path))
    started = time.perf_counter()
    image = doc[page - 1].render(scale=dpi / 72).to_numpy()
    got = recognize(image)
    seconds = time.perf_counter() - started
    ocr = _norm(clean_pdf_text(got.text))
    return {
        "chars": len(layer),
        "errors": edit_distance(ocr, layer),
        "confidence": got.confidence,
        "seconds": seconds,
        "ocr_head": ocr[:80],
        "layer_head": layer[:80],
    }


def w_searchable(args: dict[str, Any]) -> dict[str, Any]:
    """parse_file on one file: does OCR give searchable text?"""
    sys.path.insert(0, str(REPO))
    from ingest.errors import ParseError
    from ingest.formats import parse_file

    started = time.perf_counter()
    try:
        doc = parse_file(Path(args["path"]))
    except ParseError as exc:
        return {"words": 0, "reason": exc.reason, "seconds": time.perf_counter() - started}
    words = [w for w in doc.text.split() if sum(ch.isalnum() for ch in w) >= 2]
    ocr = [b.meta.get("ocr") for b in doc.blocks if "ocr" in b.meta]
    return {
        "words": len(words),
        "ocr_pages": len(ocr),
        "confidence": statistics.fmean(ocr) if ocr else None,
        "head": " ".join(doc.text.split())[:80],
        "seconds": time.perf_counter() - started,
    }


def w_scan(args: dict[str, Any]) -> dict[str, Any]:
    """An image-only PDF of the given pages rendered at `dpi` (a stand-in for a scanned file)."""
    import pypdfium2 as pdfium

    images = []
    for rel, page in args["pages"]:
        doc = pdfium.PdfDocument(str(EVAL / "docs" / rel))
        images.append(doc[page - 1].render(scale=args["dpi"] / 72).to_pil().convert("L"))
    images[0].save(args["out"], "PDF", resolution=args["dpi"], save_all=True, append_images=images[1:])
    return {"pages": len(images)}


WORKERS = {"page_cer": w_page_cer, "searchable": w_searchable, "scan": w_scan}


def worker(name: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
    """A worker in a fresh process; {"error": ...} if it fails or times out."""
    cmd = [sys.executable, __file__, "--worker", name, json.dumps(args)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1][:160]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def image_only_pdfs() -> list[Path]:
    """PDFs of ../shared/eval/docs in which no page has a text layer (read as kb reads them)."""
    sys.path.insert(0, str(REPO))
    from ingest.errors import ParseError
    from ingest.pdf import read_pages

    out = []
    for path in sorted((EVAL / "docs").rglob("*")):
        if not path.is_file() or path.suffix.lower() != ".pdf":
            continue
        try:
            read = read_pages(path)
        except (ParseError, Exception):  # unreadable or encrypted files are not scans
            continue
        if read.n_pages and not any(text.strip() for _, text in read.pages):
            out.append(path)
    return out


def _tree_rss_mb(pid: int) -> float:
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


def speed(tmp: Path, pages: int, dpi: int, workers: int) -> dict[str, Any]:
    """`kb ingest` of a folder of scanned PDFs: OCR pages/s and peak RSS."""
    folder = tmp / "scan"
    folder.mkdir()
    chosen = (CLEAN_PAGES * (pages // len(CLEAN_PAGES) + 1))[:pages]
    for i in range(0, len(chosen), 3):  # files of three pages, so every worker has some
        made = worker("scan", {"pages": chosen[i : i + 3], "dpi": dpi, "out": str(folder / f"scan-{i:03d}.pdf")}, 600)
        if "error" in made:
            return made
    env = {**os.environ, "KB_PARSE_WORKERS": str(workers), "KB_PARSE_TIMEOUT": "600"}
    cmd = [KB, "ingest", str(folder), "--kb", str(tmp / "kb"), "--json", "-q"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_mb(proc.pid))
        time.sleep(0.1)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    try:
        d = json.loads(out)
    except ValueError:
        return {"error": f"kb ingest exited {proc.returncode}: {(err or out)[-500:]}"}
    if proc.returncode != 0:  # 2: some file failed; its reason is in the JSON
        failed = [f for f in d.get("files", []) if f.get("status") == "failed"]
        return {"error": f"kb ingest exited {proc.returncode}: {failed[:3] or (err or out)[-500:]}"}
    return {
        "pages": d["pages"],
        "seconds": d["seconds"],
        "wall": wall,
        "pages_per_s": d["pages"] / d["seconds"],
        "timings": d["timings"],
        "peak_tree_rss_mb": peak,
        "workers": workers,
    }


def main() -> None:
    """Run the sections and print the report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="cer,coverage,speed", help="cer, coverage, speed (comma-separated)")
    p.add_argument("--pages", type=int, default=len(CLEAN_PAGES), help="clean pages scored for CER")
    p.add_argument("--speed-pages", type=int, default=12, help="pages of the scanned PDF timed")
    p.add_argument("--dpi", type=int, default=200)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parse workers for the speed run")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per file")
    p.add_argument("--out", type=Path, help="append the result as one JSON line to this file")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    o = p.parse_args()
    if o.worker:
        print(json.dumps(WORKERS[o.worker[0]](json.loads(o.worker[1]))))
        return
    only = {s.strip() for s in o.only.split(",")}
    res: dict[str, Any] = {"bench": "ocr", "date": time.strftime("%Y-%m-%d %H:%M"), "load_avg_start": os.getloadavg()}
    print(f"{res['date']}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    if "cer" in only:
        rows = []
        for rel, page in CLEAN_PAGES[: o.pages]:
            r = worker("page_cer", {"path": str(EVAL / "docs" / rel), "page": page, "dpi": o.dpi}, o.timeout)
            rows.append({"file": rel, "page": page, **r})
            if "error" in r:
                print(f"  {Path(rel).name} p.{page}: {r['error']}", flush=True)
            else:
                cer = r["errors"] / max(1, r["chars"])
                print(
                    f"  {Path(rel).name} p.{page}: {r['chars']} chars, CER {cer:.3f}, {r['seconds']:.1f} s", flush=True
                )
        ok = [r for r in rows if "error" not in r and r["chars"]]
        total = sum(r["chars"] for r in ok)
        res["cer"] = {
            "pages": len(ok),
            "chars": total,
            "cer": sum(r["errors"] for r in ok) / max(1, total),
            "median_page_cer": statistics.median(r["errors"] / r["chars"] for r in ok) if ok else None,
            "rows": rows,
        }
        print(
            f"CER on {len(ok)} clean pages at {o.dpi} DPI ({total:,} characters): {res['cer']['cer']:.4f} "
            f"(median page {res['cer']['median_page_cer']:.4f})",
            flush=True,
        )
    if "coverage" in only:
        files = image_only_pdfs() + sorted(
            f for f in (EVAL / "docs").rglob("*") if f.is_file() and f.suffix.lower() in IMAGES
        )
        rows = []
        for path in files:
            r = worker("searchable", {"path": str(path)}, o.timeout)
            rows.append({"file": str(path.relative_to(EVAL / "docs")), **r})
            verdict = "searchable" if r.get("words", 0) >= 3 else "no text"
            print(f"  {path.name}: {verdict} ({r.get('words', 0)} words) {r.get('reason') or r.get('error') or ''}")
        yes = sum(1 for r in rows if r.get("words", 0) >= 3)
        res["coverage"] = {"files": len(rows), "searchable": yes, "share": yes / max(1, len(rows)), "rows": rows}
        print(f"searchable text from {yes} of {len(rows)} image-only PDFs and images ({yes / max(1, len(rows)):.0%})")
    if "speed" in only:
        with tempfile.TemporaryDirectory(prefix="kb-bench-ocr-") as tmp:
            s = speed(Path(tmp), o.speed_pages, o.dpi, o.workers)
        res["speed"] = s
        if "error" in s:
            print(f"speed: {s['error']}")
        else:
            t = s["timings"]
            print(
                f"OCR ingest of {s['pages']} scanned pages (files of 3) with {s['workers']} workers: "
                f"{s['seconds']:.1f} s, "
                f"{s['pages_per_s']:.2f} pages/s; parse {t['parse']:.1f} s (summed over workers), "
                f"embed {t['embed']:.1f} s; peak RSS of kb and its workers {s['peak_tree_rss_mb']:.0f} MB"
            )
    res["load_avg_end"] = os.getloadavg()
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    if o.out:
        with o.out.open("a") as fh:
            fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
