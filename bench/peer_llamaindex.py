"""Peer comparison (not a test): ingest the same PDFs with kb and with LlamaIndex
(SimpleDirectoryReader + VectorStoreIndex, the same all-MiniLM-L6-v2 model through
HuggingFaceEmbedding), each in a fresh process, and print both rates side by side.

LlamaIndex is not a kb dependency: it runs from a separate virtual environment given with
--llama-python. One way to make it (from the package index; torch pinned to the CPU build):

    python3.11 -m venv /tmp/li-venv
    /tmp/li-venv/bin/pip install torch==2.13.0
    /tmp/li-venv/bin/pip install llama-index-core==0.14.25 llama-index-readers-file==0.7.0 \\
        llama-index-embeddings-huggingface==0.8.0
    python bench/peer_llamaindex.py --llama-python /tmp/li-venv/bin/python   # the financebench-dev filings
    python bench/peer_llamaindex.py --llama-python /tmp/li-venv/bin/python --folder DIR

Without --llama-python (or when that Python lacks llama_index) it says so and exits 2.
LlamaIndex reads PDFs with pypdf (llama-index-readers-file's PDFReader, one document per page)
and splits them with its default SentenceSplitter (1,024 tokens, which MiniLM truncates at 256).
"""

from __future__ import annotations

import argparse
import json
import os
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

# Run by the LlamaIndex interpreter: argv = folder, model folder, threads.
LLAMA_SCRIPT = r"""
import json, os, sys, time
folder, model, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
import torch
torch.set_num_threads(threads)
from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
import llama_index.core
started = time.perf_counter()
Settings.embed_model = HuggingFaceEmbedding(model_name=model, device="cpu")
Settings.llm = None
loaded = time.perf_counter()
docs = SimpleDirectoryReader(folder, recursive=True, required_exts=[".pdf"]).load_data()
read = time.perf_counter()
index = VectorStoreIndex.from_documents(docs)
done = time.perf_counter()
print(json.dumps({
    "version": llama_index.core.__version__,
    "documents": len(docs),
    "nodes": len(index.docstore.docs),
    "model_seconds": loaded - started,
    "read_seconds": read - loaded,
    "index_seconds": done - read,
    "seconds": done - loaded,
}))
"""


def run(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command: wall time, peak RSS (MB), exit code and output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})}, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return {
            "wall": wall,
            "rss_mb": usage.ru_maxrss / 1024,
            "code": os.waitstatus_to_exitcode(status),
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


def model_folder() -> str:
    """The packaged all-MiniLM-L6-v2 folder that kb uses."""
    sys.path.insert(0, str(REPO))
    from kb.embeddings import default_embed_model_dir

    return str(default_embed_model_dir())


def main() -> None:
    """Time both, print both."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llama-python", help="python of a virtual environment with llama-index installed")
    p.add_argument("--folder", type=Path, default=EVAL / "financebench-dev" / "pdfs", help="folder of PDFs")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    o = p.parse_args()
    if not o.llama_python:
        print("LlamaIndex is not installed with kb: give --llama-python (see --help); nothing measured.")
        sys.exit(2)
    probe = run([o.llama_python, "-c", "import llama_index.core, llama_index.embeddings.huggingface"])
    if probe["code"] != 0:
        print(f"{o.llama_python} cannot import llama_index ({probe['stderr'].strip().splitlines()[-1:]}); not run.")
        sys.exit(2)
    pdfs = sorted(o.folder.rglob("*.pdf"))
    print(f"{len(pdfs)} PDFs in {o.folder}; load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="kb-peer-") as tmp:
        k = run(
            [KB, "ingest", str(o.folder), "--kb", str(Path(tmp) / "kb"), "--json", "-q"], {"KB_THREADS": str(o.threads)}
        )
        if k["code"] not in (0, 2):
            raise SystemExit(f"kb ingest failed: {k['stderr'][-1500:]}")
        kd = json.loads(k["stdout"])
    li = run([o.llama_python, "-c", LLAMA_SCRIPT, str(o.folder), model_folder(), str(o.threads)])
    if li["code"] != 0:
        raise SystemExit(f"LlamaIndex failed: {li['stderr'][-1500:]}")
    ld = json.loads(li["stdout"].strip().splitlines()[-1])
    pages = kd["pages"]
    print(f"\n{'':34s} {'seconds':>8s} {'wall':>7s} {'pages/s':>8s} {'passages':>9s} {'pass./s':>8s} {'RSS MB':>7s}")
    print(
        f"{'kb ingest':34s} {kd['seconds']:8.1f} {k['wall']:7.1f} {pages / kd['seconds']:8.1f} "
        f"{kd['totals']['chunks']:9d} {kd['totals']['chunks'] / kd['seconds']:8.1f} {k['rss_mb']:7.0f}"
    )
    print(
        f"{'LlamaIndex ' + ld['version'] + ' (read + index)':34s} {ld['seconds']:8.1f} {li['wall']:7.1f} "
        f"{pages / ld['seconds']:8.1f} {ld['nodes']:9d} {ld['nodes'] / ld['seconds']:8.1f} {li['rss_mb']:7.0f}"
    )
    print(
        f"\nLlamaIndex: {ld['documents']} documents (pages) read in {ld['read_seconds']:.1f} s, indexed in "
        f"{ld['index_seconds']:.1f} s (model load {ld['model_seconds']:.1f} s not counted; kb's seconds include it)."
    )
    print(
        f"kb is {li['wall'] / k['wall']:.2f}x LlamaIndex's rate on these {pages} pages, by wall time of each fresh "
        f"process (start-up, imports and model load included for both); {ld['seconds'] / kd['seconds']:.2f}x by "
        "the seconds each reports."
    )
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
