"""Parsing and chunking speed per format, this tree beside a baseline revision, in one run.

    python bench/run.py --only ingest_formats --formats-baseline 99867a3 --formats-rounds 5
    python bench/run.py --only ingest_formats --formats-docs /work/shared/eval/docs/unstructured-example-docs
    python bench/run.py --only ingest_formats --formats-rows 100000    # a 100,000-row sheet (xlsx, csv)

What the parse worker does for each file (ingest.formats.parse_file, then chunk_document with the
default embedding model's tokenizer and the default chunk settings) is timed in a fresh process
per tree and round, the trees alternating so that a change in the machine's load biases neither;
the best round of each is kept. The baseline tree is `git archive` of the revision, imported
through PYTHONPATH ahead of the installed kb. Embedding is not timed: it does not depend on the
format. Not a default section of bench/run.py (it needs git and takes minutes): name it in --only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "ingest_formats"
DEFAULT = False
REPO = Path(__file__).resolve().parent.parent
# Text formats kb read before slides, sheets and mail: their speed must not regress.
TEXT_FORMATS = (".pdf", ".docx", ".html", ".htm", ".md", ".txt")


def _worker(files: list[str], repeat: int) -> dict[str, Any]:
    """Run inside the measured tree: parse and chunk each file, `repeat` times; seconds per file."""
    from ingest.chunking import HFTokenizer, chunk_document
    from ingest.errors import ParseError
    from ingest.formats import parse_file
    from kb.embeddings import default_embed_model_dir

    tokenizer = HFTokenizer.from_file(default_embed_model_dir())
    out: dict[str, Any] = {}
    for name in files:
        best, chunks, error = float("inf"), 0, ""
        for _ in range(repeat):
            started = time.perf_counter()
            try:
                doc = parse_file(Path(name))
                chunks = len(chunk_document(doc, tokenizer, size=200, overlap=32))
            except ParseError as exc:
                error = exc.reason
            best = min(best, time.perf_counter() - started)
        out[name] = {"seconds": best, "chunks": chunks, "error": error}
    out["_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _measure(tree: Path | None, files: list[Path], repeat: int) -> dict[str, Any]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    # This file is run by path (bench/ is not put on sys.path, where bench/ingest.py would shadow
    # the ingest package), so the baseline tree's ingest and kb are the ones imported.
    code = (
        "import json, runpy, sys; b = runpy.run_path(sys.argv[1]); "
        "print(json.dumps(b['_worker'](json.loads(sys.argv[2]), int(sys.argv[3]))))"
    )
    args = [sys.executable, "-c", code, __file__, json.dumps([str(f) for f in files]), str(repeat)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker failed ({tree or 'this tree'}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _baseline_tree(revision: str, folder: Path) -> Path:
    tree = folder / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def _big_sheets(rows: int, folder: Path) -> list[Path]:
    """An .xlsx and a .csv of `rows` rows by 8 columns, like an export from a finance system."""
    import csv
    import datetime as dt

    import openpyxl

    xlsx, text = folder / f"sheet-{rows}.xlsx", folder / f"sheet-{rows}.csv"
    header = ["Booking", "Date", "Cost centre", "Account", "Supplier", "Amount (EUR)", "VAT", "Text"]
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Bookings")
    ws.append(header)
    with text.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i in range(rows):
            row = [
                f"B-{i:07}",
                dt.date(2024, 1, 1) + dt.timedelta(days=i % 365),
                f"CC-{4100 + (i % 9) * 100}",
                6000 + i % 400,
                f"Supplier {i % 977}",
                round(10 + (i * 37 % 100000) / 100, 2),
                0.19,
                f"Invoice {i} for services",
            ]
            ws.append(row)
            writer.writerow(row)
    wb.save(xlsx)
    return [xlsx, text]


def _files(o: argparse.Namespace) -> list[Path]:
    """The files `kb ingest` would consider (.kbignore applies), text formats unless --formats-all."""
    from ingest.discover import discover

    found = discover([REPO / "samples", *o.formats_docs])
    return [p for p in found if o.formats_all or p.suffix.lower() in TEXT_FORMATS]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument("--formats-baseline", default="main", help="git revision parsing is compared with")
    p.add_argument("--formats-docs", type=Path, nargs="*", default=[], help="more files or folders to time")
    p.add_argument("--formats-all", action="store_true", help="time every file found, not only text formats")
    p.add_argument("--formats-rounds", type=int, default=3, help="alternating rounds per tree; the best is kept")
    p.add_argument("--formats-repeat", type=int, default=2, help="parses of each file per round; the best kept")
    p.add_argument("--formats-rows", type=int, default=0, help="also time a generated sheet of this many rows")


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
    files = _files(o)
    folder = tmp / "formats"
    folder.mkdir()
    base = _baseline_tree(o.formats_baseline, folder)
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
    for _ in range(o.formats_rounds):
        for label, tree in (("baseline", base), ("current", None)):
            runs[label].append(_measure(tree, files, o.formats_repeat))
    sheets = _big_sheets(o.formats_rows, folder) if o.formats_rows else []
    runs["sheets"] = [_measure(None, [s], 1) for s in sheets]
    res[NAME] = _figures(o, files, runs, sheets)


def _best(runs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return min((r[name] for r in runs), key=lambda x: x["seconds"])


def _figures(o: argparse.Namespace, files: list[Path], runs: dict[str, list[dict[str, Any]]], sheets: list[Path]):
    rows = []
    totals = {"baseline": 0.0, "current": 0.0}
    for path in files:
        b, c = _best(runs["baseline"], str(path)), _best(runs["current"], str(path))
        for label, r in (("baseline", b), ("current", c)):
            if not r["error"]:
                totals[label] += r["seconds"]
        name = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        rows.append({"file": name, "baseline": b, "current": c})
    sheet_rows = [
        {"file": path.name, **run[str(path)], "rss_mb": run["_rss_mb"]}
        for path, run in zip(sheets, runs["sheets"], strict=True)
    ]
    return {
        "baseline": o.formats_baseline,
        "rounds": o.formats_rounds,
        "repeat": o.formats_repeat,
        "load_average": os.getloadavg(),
        "totals": totals,
        "rss_mb": {label: max(r["_rss_mb"] for r in runs[label]) for label in ("baseline", "current")},
        "files": rows,
        "sheets": sheet_rows,
    }


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for res[NAME]."""
    f = res[NAME]
    lines = [
        f"parse + chunk per file, best of {f['rounds']} rounds x {f['repeat']} (seconds); baseline {f['baseline']}",
        f"  {'file':56} {'baseline':>9} {'current':>9} {'ratio':>6}  chunks",
    ]
    for row in f["files"]:
        b, c = row["baseline"], row["current"]
        ratio = c["seconds"] / b["seconds"] if b["seconds"] > 0 and not b["error"] else float("nan")
        chunks = f"{b['chunks']} -> {c['chunks']}" if b["chunks"] != c["chunks"] else str(c["chunks"])
        note = (c["error"] or b["error"])[:40]
        lines.append(f"  {row['file'][-56:]:56} {b['seconds']:9.3f} {c['seconds']:9.3f} {ratio:6.2f}  {chunks}  {note}")
    t = f["totals"]
    lines.append(f"  {'total (files both trees read)':56} {t['baseline']:9.3f} {t['current']:9.3f}")
    rss = f["rss_mb"]
    lines.append(f"  peak RSS of a worker: baseline {rss['baseline']:.0f} MB, current {rss['current']:.0f} MB")
    for s in f["sheets"]:
        peak = f"peak RSS {s['rss_mb']:.0f} MB"
        lines.append(f"  {s['file']}: {s['seconds']:.1f} s, {s['chunks']} chunks, {peak} {s['error']}")
    return lines


if __name__ == "__main__":
    sys.exit("run it through the shared runner: python bench/run.py --only ingest_formats")
