"""kb performance benchmark: runs the benchmark modules of bench/ one after another, prints their
figures side by side in one report, and appends one JSON line per run (with a description of the
machine) to bench/results.jsonl.

    python bench/run.py                        # every default section, SciFact at /work/shared/eval/scifact
    python bench/run.py --only embed,cold      # some sections
    python bench/run.py --corpus DIR --split test --vectors 200000
    make bench BENCH_ARGS="--only cold"

Every measurement runs in a fresh process (`kb ...` or a module's own workers), so peak RSS and
cold starts are those a user sees.

Adding a benchmark: write bench/<name>.py with
    NAME = "<name>"                                   the section name --only takes (and the res key)
    def add_arguments(p: argparse.ArgumentParser)     its options (optional)
    def run_section(o, tmp: Path, res: dict)          measure; store the figures in res[NAME]
    def report(res: dict) -> list[str]                the report's lines for res[NAME]
    WORKERS = {"x": fn}                               functions run in a fresh process by
                                                      bench.common.worker("<name>.x", args) (optional)
    DEFAULT = False                                   to run it only when --only names it (optional)
That is all: every module of bench/ with a run_section is found and runs after the sections of
SECTIONS below (which fixes the order of those: quality builds the knowledge bases that warm and
scale use), in name order. bench/common.py has the shared helpers (run, worker, kb, pct,
summary, demo_kb, quality_kb).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    # The repository, not bench/, goes first on the path: bench/ingest.py must not shadow the
    # `ingest` package, and the modules import each other as `bench.<name>`.
    sys.path[0] = str(REPO)

# These run first, in this order; any other module of bench/ with a run_section follows.
SECTIONS = (
    "embed",
    "quality",
    "ingest",
    "ingest_formats",
    "ray_ingest",
    "ray_ivf",
    "warm",
    "cold",
    "llm",
    "weights",
    "scale",
)
NOT_SECTIONS = {"__init__", "run", "common"}


def modules(folder: Path | None = None, package: str = "bench") -> dict[str, ModuleType]:
    """The benchmark modules by section name, in run order: SECTIONS, then any other module of the
    folder that has a run_section, by name."""
    folder = folder or Path(__file__).resolve().parent
    others = sorted(p.stem for p in folder.glob("*.py") if p.stem not in {*SECTIONS, *NOT_SECTIONS})
    found = {}
    for name in [*(n for n in SECTIONS if (folder / f"{n}.py").is_file()), *others]:
        mod = importlib.import_module(f"{package}.{name}")
        if not hasattr(mod, "run_section"):
            continue  # a helper module, not a benchmark
        if getattr(mod, "NAME", None) != name:
            raise RuntimeError(f"{folder / name}.py must set NAME = {name!r}")
        found[name] = mod
    return found


def parse(argv: list[str], mods: dict[str, ModuleType]) -> argparse.Namespace:
    """The shared options and every module's own."""
    from bench.common import RESULTS

    default = [n for n, m in mods.items() if getattr(m, "DEFAULT", True)]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(default), help=f"sections, comma-separated: {', '.join(mods)}")
    p.add_argument("--corpus", type=Path, default=Path("/work/shared/eval/scifact"), help="BEIR folder")
    p.add_argument("--split", default="train", help="qrels split scored for nDCG@10")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kb" / "bench",
        help="where quality knowledge bases are kept",
    )
    p.add_argument(
        "--chunk-tokens",
        type=int,
        default=256,
        help="chunk size of the quality knowledge bases (256, the model's window: SciFact abstracts "
        "mostly fit one chunk)",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON lines file the result is appended to")
    p.add_argument("--no-save", action="store_true", help="print the report only; append nothing to --out")
    for mod in mods.values():
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(p)
    o = p.parse_args(argv)
    o.only = [s for s in o.only.split(",") if s]
    bad = [s for s in o.only if s not in mods]
    if bad:
        p.error(f"unknown section {bad[0]} (sections: {', '.join(mods)})")
    return o


def report(res: dict[str, Any], mods: dict[str, ModuleType]) -> str:
    """The whole run as text: the machine, then each section that produced figures."""
    m = res["machine"]
    lines = [
        f"kb benchmark {res['date']}  commit {m['commit']}",
        f"machine: {m['cpu']} ({m['cpu_flags']}), {m['cores']} cores, {m['ram_gb']} GB RAM, {m['os']}, "
        f"Python {m['python']}; load average {m['load_avg_start'][0]:.1f} at start, "
        f"{res.get('load_avg_end', [0])[0]:.1f} at end",
        "packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
    ]
    for name, mod in mods.items():
        if res.get(name):
            lines += mod.report(res)
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """Run the chosen sections; one failed section does not lose the others' figures."""
    from bench.common import machine

    mods = modules()
    o = parse(argv, mods)
    o.cache.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "command": " ".join(["python", "bench/run.py", *argv]),
    }
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        for name, mod in mods.items():
            if name not in o.only:
                continue
            t = time.perf_counter()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            try:
                mod.run_section(o, Path(tmp), res)
            except Exception as exc:  # one failed section must not lose the others' results
                res.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"[-2000:]
                print(f"[bench] {name} failed: {exc}", file=sys.stderr, flush=True)
            res.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t, 1)
    res["load_avg_end"] = list(os.getloadavg())
    print(report(res, mods))
    for name, error in res.get("errors", {}).items():
        print(f"\nsection {name} FAILED: {error}")
    if o.no_save:
        return
    with open(o.out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(res) + "\n")
    print(f"\nappended to {o.out}", file=sys.stderr)


def run_worker(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """One module's worker ("module.worker"), in this fresh process."""
    module, fn = name.split(".", 1)
    return importlib.import_module(f"bench.{module}").WORKERS[fn](args)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        print(json.dumps(run_worker(sys.argv[2], json.loads(sys.argv[3]))))
    else:
        main(sys.argv[1:])
