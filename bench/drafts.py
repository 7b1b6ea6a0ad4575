"""Prompt-lookup drafting (`draft_tokens`) side by side: the default model answers the same sample
questions from the same passages with drafts of 0 (off), 3, 5 and 8 tokens, loaded once per
setting in one process and timed in alternating rounds. Reported per setting: the passes of the
model, the tokens written, the generation time, and whether the text is the same as without
drafts (it should be: the greedy choice decides every token).

    python bench/run.py --only drafts [--drafts 0,3,5,8] [--drafts-rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import csv, worker

NAME = "drafts"
DEFAULT = False  # a minute or two of LLM work: run it with --only drafts

# The questions and passages are the samples' (employee handbook, travel policy), as kb would give
# them to the model.
CONTEXT = """Document 1 (Employee Handbook, page 3):
Full-time employees are entitled to 28 days of paid annual leave per calendar year, based on a
five-day working week. Up to 5 days of unused leave may be carried over into the following year.
The deadline for taking carried-over days is 31 March of the following year.

Document 2 (Employee Handbook, page 4):
Core hours are 10:00 to 15:00 from Monday to Thursday and 10:00 to 13:00 on Fridays. Remote
working time is recorded in the time tracking tool.

Document 3 (Travel and Expense Policy):
Hotel limit per night: Munich, Frankfurt, Hamburg EUR 170; London EUR 220; other cities EUR 120.
Meal allowance per day: EUR 28."""
QUESTIONS = (
    "How many days of annual leave do full-time employees get, and until when can unused days be carried over?",
    "What are the core hours?",
    "What's the hotel limit per night in Munich and in London?",
    "What is the meal allowance per day?",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This section's options."""
    p.add_argument("--drafts", default="0,3,5,8", help="drafts section: draft_tokens values compared")
    p.add_argument("--drafts-rounds", type=int, default=3, help="drafts section: alternating rounds")


def w_drafts(a: dict[str, Any]) -> dict[str, Any]:
    """Each draft setting's model, loaded together, answering the questions in alternating rounds."""
    from kb.answer.generate import SYSTEM_PROMPT
    from kb.llm import LlamaCppLLM, conversion_for, converted_gguf, resolve_gguf

    path = converted_gguf(resolve_gguf("default"), conversion_for("default", "auto"))
    llms: dict[int, Any] = {}
    out: dict[str, Any] = {}
    for k in a["drafts"]:
        llm = LlamaCppLLM(Path(path), threads=a["threads"], draft_tokens=k)
        passes: list[int] = []
        library_eval = llm._llm.eval

        def counted(tokens: Any, ev: Any = library_eval, seen: list[int] = passes) -> None:
            seen.append(len(tokens))
            ev(tokens)

        llm._llm.eval = counted
        llms[k] = (llm, passes)
        out[str(k)] = {"seconds": [], "passes": 0, "texts": []}

    def messages(q: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"<<<\n{CONTEXT}\n>>>\n\nQuestion: {q}"},
        ]

    for llm, _ in llms.values():  # the shared prefix read once, before the clock starts
        llm.chat(messages("Who wrote the handbook?"), max_tokens=4)
    for r in range(a["rounds"]):
        order = list(llms)
        order = order[r % len(order) :] + order[: r % len(order)]
        for k in order:
            llm, passes = llms[k]
            texts = []
            t = time.perf_counter()
            start = len(passes)
            for q in QUESTIONS:
                texts.append(llm.chat(messages(q), max_tokens=160))
            out[str(k)]["seconds"].append(time.perf_counter() - t)
            out[str(k)]["passes"] = len(passes) - start  # the same every round: greedy
            out[str(k)]["texts"] = texts
    base = out[str(a["drafts"][0])]["texts"]
    for v in out.values():
        v["same_text"] = v["texts"] == base
        v["tokens"] = sum(llms[0][0].count_tokens(t) for t in v["texts"]) if 0 in llms else None
    return {"model": Path(path).name, "results": out}


WORKERS = {"drafts": w_drafts}


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """Measure, and store the figures in res[NAME]."""
    drafts = [int(k) for k in csv(o.drafts)]
    r = worker("drafts.drafts", {"drafts": drafts, "threads": o.threads, "rounds": o.drafts_rounds})
    res[NAME] = {"model": r["model"], "results": r["results"], "rounds": o.drafts_rounds}


def report(res: dict[str, Any]) -> list[str]:
    """The report's lines for this section."""
    d = res[NAME]
    lines = [
        f"\nPrompt-lookup drafts ({d['model']}, {len(QUESTIONS)} questions from one context, "
        f"{d['rounds']} alternating rounds; seconds best / median):"
    ]
    for k, v in d["results"].items():
        lines.append(
            f"  draft_tokens {k:>2}: {min(v['seconds']):5.2f} / {statistics.median(v['seconds']):5.2f} s, "
            f"{v['passes']} passes for {v['tokens']} tokens, same text as without drafts: {v['same_text']}"
        )
    return lines
