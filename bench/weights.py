"""LLM weight formats side by side: each packaged model as shipped against its F16, Q8_0 and
IQ4_NL conversions (what `llm_convert` chooses between), prompt and generation tokens/s, and how
closely each conversion keeps the model: over the first tokens of the sample documents, the share
of positions where its next-token choice is the shipped file's, and the mean KL divergence of its
next-token distribution from the shipped file's.

All three files of a model are loaded in one process and timed in alternating rounds with
llama.cpp's own counters (prompt evaluation and generation separately), so a change of machine
load during the run biases none of them. Converting the 1.5B model to F16 writes a 3.6 GB file
into the model cache once, so the section runs only when --only names it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, csv, worker

NAME = "weights"
DEFAULT = False
FORMATS = ["off", "f16", "q8_0", "iq4_nl"]
AGREEMENT_TOKENS = 600


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument(
        "--llm-models",
        default="smollm2-135m,qwen2.5-coder-0.5b,qwen2.5-coder-1.5b",
        help="weights section: packaged LLMs timed (kb models names; those not installed are skipped)",
    )
    p.add_argument("--weights-rounds", type=int, default=3, help="weights section: alternating rounds")
    p.add_argument("--weights-prompt", type=int, default=640, help="weights section: prompt tokens")
    p.add_argument("--weights-gen", type=int, default=48, help="weights section: generated tokens")


def w_weights(a: dict[str, Any]) -> dict[str, Any]:
    """One model's weight formats, loaded together and timed in alternating rounds."""
    import llama_cpp

    from kb.llm import _quiet_stderr, converted_gguf, resolve_gguf

    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # what kb.llm sets
    src = resolve_gguf(a["model"])
    llms: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for weights in a["weights"]:
        path = converted_gguf(src, weights)  # made (once) before the clock starts
        t = time.perf_counter()
        with _quiet_stderr():
            llms[weights] = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=4096,
                n_threads=a["threads"],
                n_threads_batch=a["threads"],
                n_batch=2048,
                n_ubatch=2048,
                flash_attn=True,
                verbose=False,
                seed=0,
            )
        out[weights] = {
            "file_mb": path.stat().st_size / 1e6,
            "load_s": time.perf_counter() - t,
            "prompt": [],
            "gen": [],
        }
    text = "\n\n".join(p.read_text(errors="replace") for p in sorted((REPO / "samples").glob("*.md")))
    for r in range(a["rounds"]):
        shift = r % len(a["weights"])
        for weights in a["weights"][shift:] + a["weights"][:shift]:
            llm = llms[weights]
            prompt = llm.tokenize(text.encode())[: a["prompt_tokens"]]
            llm.reset()  # no prompt prefix reused from the round before
            llama_cpp.llama_perf_context_reset(llm._ctx.ctx)
            with _quiet_stderr():
                for _ in llm.create_completion(prompt, max_tokens=a["gen_tokens"], top_k=1, stream=True):
                    pass
            perf = llama_cpp.llama_perf_context(llm._ctx.ctx)
            out[weights]["prompt"].append(perf.n_p_eval / (perf.t_p_eval_ms / 1000))
            out[weights]["gen"].append(perf.n_eval / (perf.t_eval_ms / 1000) if perf.n_eval else 0.0)
    del llms
    _agreement(src, a["weights"], text, a["threads"], out)
    return {"model": a["model"], "source": src.name, "results": out}


def _agreement(src: Path, formats: list[str], text: str, threads: int, out: dict[str, Any]) -> None:
    """Next-token agreement and KL divergence of each format against the file as shipped ("off"),
    one model at a time (each keeps logits for every position)."""
    import llama_cpp
    import numpy as np

    from kb.llm import _quiet_stderr, converted_gguf

    logprobs: dict[str, Any] = {}
    for weights in formats:
        with _quiet_stderr():
            llm = llama_cpp.Llama(
                model_path=str(converted_gguf(src, weights)),
                n_ctx=1024,
                n_batch=1024,
                n_ubatch=1024,
                n_threads=threads,
                logits_all=True,
                verbose=False,
            )
            tokens = llm.tokenize(text.encode())[:AGREEMENT_TOKENS]
            llm.eval(tokens)
        x = np.asarray(llm.scores[: len(tokens)], dtype=np.float64)
        x -= x.max(axis=1, keepdims=True)
        logprobs[weights] = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
        del llm
    ref = logprobs.get("off")
    if ref is None:
        return
    for weights, lp in logprobs.items():
        out[weights]["agreement"] = float((lp.argmax(axis=1) == ref.argmax(axis=1)).mean())
        out[weights]["kl_nats"] = float((np.exp(ref) * (ref - lp)).sum(axis=1).mean())


WORKERS = {"weights": w_weights}


def installed(name: str) -> bool:
    """Whether a packaged model's packages (or its joined file) are there."""
    from kb import models

    m = models.known_model(name)
    if m is None:
        return False
    return not models.part_paths(m)[1] or (m.split and models.assembled_path(m).is_file())


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
    out: dict[str, Any] = {"models": [], "skipped": []}
    for model in csv(o.llm_models):
        if not installed(model):
            out["skipped"].append(model)
            continue
        args = {"model": model, "weights": FORMATS, "threads": o.threads, "rounds": o.weights_rounds}
        r = worker("weights.weights", {**args, "prompt_tokens": o.weights_prompt, "gen_tokens": o.weights_gen})
        out["models"].append({k: r[k] for k in ("model", "source", "results")})
    out.update(prompt_tokens=o.weights_prompt, gen_tokens=o.weights_gen, rounds=o.weights_rounds)
    res[NAME] = out


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for this section."""
    w = res[NAME]
    lines = [
        f"\nLLM weight formats (llm_convert): each model as shipped and converted to F16 / Q8_0 / IQ4_NL, in one "
        f"process, {w['prompt_tokens']} prompt tokens and {w['gen_tokens']} generated, {w['rounds']} alternating "
        "rounds, tok/s best / median:"
    ]
    for m in w["models"]:
        for weights, v in m["results"].items():
            lines.append(
                f"  {m['model']:<18} {weights:<4} {v['file_mb']:>6.0f} MB  load {v['load_s']:5.2f} s  "
                f"prompt {max(v['prompt']):6.1f} / {statistics.median(v['prompt']):6.1f}  "
                f"gen {max(v['gen']):5.1f} / {statistics.median(v['gen']):5.1f}"
                + (
                    f"  next token as shipped {v['agreement']:.1%}, KL {v['kl_nats']:.4f} nats"
                    if "agreement" in v
                    else ""
                )
            )
    if w["skipped"]:
        lines.append(f"  not installed, not timed: {', '.join(w['skipped'])}")
    return lines
