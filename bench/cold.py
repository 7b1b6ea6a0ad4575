"""Cold starts: `kb --help`, `kb search` and `kb ask` in a new process each time, on the samples."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.common import KB, QUESTION, SEARCH, demo_kb, kb, run, summary

NAME = "cold"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument("--repeat", type=int, default=3, help="runs of each cold command")


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
    home = demo_kb(tmp)
    out: dict[str, Any] = {}
    helps = [run([KB, "--help"])["wall"] for _ in range(o.repeat)]
    out["help"] = summary(helps)
    searches = [kb(["search", SEARCH, "--kb", str(home)]) for _ in range(o.repeat)]
    out["search"] = summary([r["wall"] for r in searches]) | {"peak_rss_mb": max(r["rss_mb"] for r in searches)}
    # "ask" is the default (qwen2.5-coder-0.5b); "ask_iq4" the same model as IQ4_NL instead of
    # Q8_0; "ask_nodraft" without prompt-lookup drafts; "ask_passages" the same reading whole passages
    # instead of excerpts; "ask_smollm2" the same with SmolLM2-135M;
    # "ask_before" is SmolLM2 in the configuration before the F16 conversion and the evidence
    # budget (Q4_1 weights, every retrieved passage in the prompt), side by side; "ask_rerank"
    # adds the optional question-likelihood re-scoring of the best five sentences.
    before = {"KB_LLM_MODEL": "smollm2-135m", "KB_LLM_CONVERT": "off", "KB_EVIDENCE_TOKENS": "100000"}
    labels = (
        ("ask", [], {}),
        ("ask_iq4", [], {"KB_LLM_CONVERT": "iq4_nl"}),
        ("ask_nodraft", [], {"KB_DRAFT_TOKENS": "0"}),
        ("ask_passages", [], {"KB_EXCERPT_SENTENCES": "0"}),
        ("ask_smollm2", [], {"KB_LLM_MODEL": "smollm2-135m"}),
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


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for this section."""
    lines: list[str] = []
    c = res["cold"]
    lines.append("\nCold start, new process each time (median / best):")
    lines.append(f"  kb --help   {c['help']['median_s']:.2f} / {c['help']['min_s']:.2f} s")
    lines.append(
        f"  kb search   {c['search']['median_s']:.2f} / {c['search']['min_s']:.2f} s "
        f"(peak RSS {c['search']['peak_rss_mb']:.0f} MB)"
    )
    for label, name in (
        ("ask", "kb ask     "),
        ("ask_iq4", "kb ask, llm_convert = iq4_nl (4-bit weights instead of Q8_0)"),
        ("ask_nodraft", "kb ask, draft_tokens = 0 (no prompt-lookup drafts)"),
        ("ask_passages", "kb ask, excerpt_sentences = 0 (whole passages)"),
        ("ask_smollm2", "kb ask, llm_model = smollm2-135m"),
        ("ask_rerank", "kb ask, rerank_sentences = 5"),
        ("ask_before", "kb ask (SmolLM2 Q4_1, all passages, as before)"),
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
    return lines
