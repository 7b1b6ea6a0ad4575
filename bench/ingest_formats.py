"""Parsing and chunking speed per format, this tree beside a baseline revision, in one run.

    python bench/ingest_formats.py                         # baseline: main
    python bench/ingest_formats.py --baseline 99867a3 --rounds 5
    python bench/ingest_formats.py --docs /work/shared/eval/docs/unstructured-example-docs
    python bench/ingest_formats.py --rows 100000           # a 100,000-row sheet (xlsx and csv)

What the parse worker does for each file (ingest.formats.parse_file, then chunk_document with the
default embedding model's tokenizer and the default chunk settings) is timed in a fresh process
per tree and round, the trees alternating so that a change in the machine's load biases neither;
the best round of each is kept. The baseline tree is `git archive` of the revision, imported
through PYTHONPATH ahead of the installed kb. Embedding is not timed: it does not depend on the
format. Prints a table and appends one JSON line to bench/results-formats.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results-formats.jsonl"
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
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import ingest_formats as b; "
        "print(json.dumps(b._worker(json.loads(sys.argv[2]), int(sys.argv[3]))))"
    )
    args = [sys.executable, "-c", code, str(REPO / "bench"), json.dumps([str(f) for f in files]), str(repeat)]
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


def _files(args: argparse.Namespace) -> list[Path]:
    """The files `kb ingest` would consider (.kbignore applies), text formats unless --all-formats."""
    from ingest.discover import discover

    found = discover([REPO / "samples", *args.docs])
    return [p for p in found if args.all_formats or p.suffix.lower() in TEXT_FORMATS]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default="main", help="git revision to compare with (default: main)")
    p.add_argument("--docs", type=Path, nargs="*", default=[], help="more files or folders to time")
    p.add_argument("--all-formats", action="store_true", help="time every file found, not only text formats")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per tree; the best is kept")
    p.add_argument("--repeat", type=int, default=2, help="parses of each file per round; the best is kept")
    p.add_argument("--rows", type=int, default=0, help="also time a generated sheet of this many rows")
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON lines file the result is appended to")
    args = p.parse_args()
    files = _files(args)
    with tempfile.TemporaryDirectory(prefix="kb-bench-formats-") as tmp:
        folder = Path(tmp)
        base = _baseline_tree(args.baseline, folder)
        runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
        for _ in range(args.rounds):
            for label, tree in (("baseline", base), ("current", None)):
                runs[label].append(_measure(tree, files, args.repeat))
        sheets = []
        if args.rows:
            sheets = _big_sheets(args.rows, folder)
            runs["sheets"] = [_measure(None, [s], 1) for s in sheets]
    result = _report(files, runs, sheets, args)
    with args.out.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")


def _best(runs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return min((r[name] for r in runs), key=lambda x: x["seconds"])


def _report(files: list[Path], runs: dict[str, list[dict[str, Any]]], sheets: list[Path], args) -> dict[str, Any]:
    rows = []
    print(f"parse + chunk, best of {args.rounds} rounds x {args.repeat} (seconds); baseline = {args.baseline}")
    print(f"{'file':58} {'baseline':>9} {'current':>9} {'ratio':>6}  chunks")
    totals = {"baseline": 0.0, "current": 0.0}
    for path in files:
        b, c = _best(runs["baseline"], str(path)), _best(runs["current"], str(path))
        name = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        for label, r in (("baseline", b), ("current", c)):
            if not r["error"]:
                totals[label] += r["seconds"]
        note = c["error"] or b["error"]
        ratio = c["seconds"] / b["seconds"] if b["seconds"] > 0 and not b["error"] else float("nan")
        chunks = f"{b['chunks']} -> {c['chunks']}" if b["chunks"] != c["chunks"] else str(c["chunks"])
        print(f"{name[-58:]:58} {b['seconds']:9.3f} {c['seconds']:9.3f} {ratio:6.2f}  {chunks}  {note[:50]}")
        rows.append({"file": name, "baseline": b, "current": c})
    print(f"{'total (files both trees read)':58} {totals['baseline']:9.3f} {totals['current']:9.3f}")
    rss = {label: max(r["_rss_mb"] for r in runs[label]) for label in ("baseline", "current")}
    print(f"peak RSS of a worker: baseline {rss['baseline']:.0f} MB, current {rss['current']:.0f} MB")
    sheet_rows = []
    for path, run in zip(sheets, runs.get("sheets", []), strict=True):
        r = run[str(path)]
        print(f"{path.name}: {r['seconds']:.1f} s, {r['chunks']} chunks, peak RSS {run['_rss_mb']:.0f} MB {r['error']}")
        sheet_rows.append({"file": path.name, **r, "rss_mb": run["_rss_mb"]})
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "baseline": args.baseline,
        "load_average": os.getloadavg(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "totals": totals,
        "rss_mb": rss,
        "files": rows,
        "sheets": sheet_rows,
    }


if __name__ == "__main__":
    main()
