"""LLM settings side by side: load time, time to first token and generation rate per configuration."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, worker

NAME = "llm"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument("--prompt-tokens", type=int, default=1200, help="LLM prompt length")


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
            model_path=str(converted_gguf(resolve_gguf("smollm2-135m"), a.get("weights", "off"))),
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


WORKERS = {"llm": w_llm}


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
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
        r = worker("llm.llm", {**c, "n_ctx": 4096, "prompt_tokens": o.prompt_tokens, "gen_tokens": 48})
        out.append({**c, **{k: r[k] for k in ("load_s", "prompt_tokens", "ttft_s", "prompt_tok_s", "gen_tok_s")}})
    res["llm"] = out


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for this section."""
    lines: list[str] = []
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
    return lines
