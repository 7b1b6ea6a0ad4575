"""The packaged LLM: converted once to F16 (same weights, faster kernels) and cached; its question scorer."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kb.llm import LlamaCppLLM, conversion_for, converted_gguf, resolve_gguf


def test_auto_converts_only_the_packaged_models_it_was_measured_to_help():
    assert conversion_for("smollm2-135m", "auto") == "f16"
    assert conversion_for("qwen2.5-coder-0.5b", "auto") == "q8_0"
    assert conversion_for("qwen2.5-coder-1.5b", "auto") == "off"
    assert conversion_for("/models/mistral-7b.Q4_K_M.gguf", "auto") == "off"
    assert conversion_for("/models/mistral-7b.Q4_K_M.gguf", "q8_0") == "q8_0"
    assert conversion_for("qwen2.5-coder-0.5b", "iq4_nl") == "iq4_nl"
    assert conversion_for("smollm2-135m", "off") == "off"
    with pytest.raises(ValueError):
        conversion_for("default", "q2")


def test_off_returns_the_file_untouched(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    assert converted_gguf(model, "off", tmp_path / "cache") == model
    assert not (tmp_path / "cache").exists()


def test_a_file_llama_cpp_cannot_convert_falls_back_with_one_line(tmp_path, capfd):
    model = tmp_path / "broken.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    assert converted_gguf(model, "f16", tmp_path / "cache") == model
    err = capfd.readouterr().err.strip().splitlines()
    assert err and str(model) in err[-1] and "not converted" in err[-1]
    assert not any(p.name.endswith(".gguf") for p in (tmp_path / "cache").iterdir())  # no half-written model


@pytest.mark.models
def test_f16_conversion_is_cached_and_keeps_the_model(tmp_path):
    src = resolve_gguf("smollm2-135m")
    out = converted_gguf(src, "f16", tmp_path)
    assert out != src and out.parent == tmp_path and out.read_bytes()[:4] == b"GGUF"
    mtime = os.stat(out).st_mtime_ns
    assert converted_gguf(src, "f16", tmp_path) == out and os.stat(out).st_mtime_ns == mtime  # made once
    # Same weights: the next-token choice agrees almost everywhere with the Q4_1 original.
    text = "The employee handbook says that full-time employees receive twenty-eight days of paid annual leave. " * 4
    choices = []
    for path in (src, out):
        llm = LlamaCppLLM(path, n_ctx=512, threads=2)
        raw = llm._llm
        toks = raw.tokenize(text.encode())
        picks = []
        raw.reset()
        for t in toks[:60]:
            raw.eval([t])
            picks.append(int(np.argmax(raw.scores[raw.n_tokens - 1])))
        choices.append(np.array(picks))
    assert (choices[0] == choices[1]).mean() >= 0.9


@pytest.mark.models
def test_question_scorer_prefers_the_sentence_that_answers():
    from kb.config import Settings
    from kb.llm import load_scorer

    scorer = load_scorer(Settings())
    question = "How many days of paid annual leave do full-time employees receive?"
    gains = scorer.gains(
        [
            "Full-time employees receive 28 days of paid annual leave per year.",
            "Trains are booked in first class for journeys longer than four hours.",
            "x " * 2000,  # longer than the scorer's window: cut, not an error
        ],
        question,
    )
    assert gains[0] > gains[1] + 0.3 and gains[0] > 0
    assert all(np.isfinite(gains))
    assert scorer.gains([], question) == []


MESSAGES = [
    {"role": "system", "content": "You answer questions about company documents. Answer in one sentence."},
    {
        "role": "user",
        "content": "Document 1:\nFull-time employees receive 28 days of paid annual leave per year.\n\n"
        "Question: How many days of leave do employees get?",
    },
]


def _prompt_tokens_read(llm: LlamaCppLLM) -> int:
    import llama_cpp

    return int(llama_cpp.llama_perf_context(llm._llm._ctx.ctx).n_p_eval)


@pytest.mark.models
def test_the_system_prompt_is_read_once_and_kept_for_the_next_process(tmp_path):
    path = resolve_gguf("smollm2-135m")
    plain = LlamaCppLLM(path, n_ctx=512, threads=2)
    expected = plain.chat(MESSAGES, max_tokens=24)
    full = _prompt_tokens_read(plain)
    first = LlamaCppLLM(path, n_ctx=512, threads=2, prompt_cache=tmp_path)
    assert first.chat(MESSAGES, max_tokens=24) == expected
    assert len(list(tmp_path.glob("*.kv"))) == 1 and _prompt_tokens_read(first) == full
    # A new instance (a new `kb ask`) starts from the stored state and reads only the rest.
    second = LlamaCppLLM(path, n_ctx=512, threads=2, prompt_cache=tmp_path)
    assert second.chat(MESSAGES, max_tokens=24) == expected
    prefix = second._system_prefix(MESSAGES)
    assert prefix and _prompt_tokens_read(second) == full - len(prefix)
    # A damaged state file is recomputed, not trusted.
    for f in tmp_path.glob("*.kv"):
        f.write_bytes(b"not a state")
    third = LlamaCppLLM(path, n_ctx=512, threads=2, prompt_cache=tmp_path)
    assert third.chat(MESSAGES, max_tokens=24) == expected and _prompt_tokens_read(third) == full


def test_prompt_lookup_drafts_what_followed_the_latest_occurrence_of_the_last_tokens():
    from kb.llm import PromptLookup

    draft = PromptLookup(3)
    # ... 7 8 9 [1 2] 5 6 ... 1 2 | 3 4 ... 1 2 -> the latest "1 2" was followed by 3 4.
    assert draft(np.array([7, 8, 9, 1, 2, 5, 6, 0, 1, 2, 3, 4, 0, 1, 2])).tolist() == [3, 4, 0]
    # The longest n-gram wins over a later, shorter match: "4 1 2" occurred once, before "9".
    assert draft(np.array([4, 1, 2, 9, 9, 5, 1, 2, 7, 7, 4, 1, 2])).tolist() == [9, 9, 5]
    assert draft(np.array([1, 2, 3, 4, 5])).tolist() == []  # nothing repeats: no draft
    assert draft(np.array([1, 2, 8, 1, 2])).tolist() == [8, 1, 2]  # at most max_tokens
    assert PromptLookup(2)(np.array([5, 6, 1, 2, 3, 1, 2])).tolist() == [3, 1]


@pytest.mark.models
def test_drafting_writes_the_same_answer_in_fewer_passes(tmp_path):
    path = resolve_gguf("smollm2-135m")
    copying = [
        {"role": "system", "content": "Answer from the document, in its own words."},
        {
            "role": "user",
            "content": "Document: Full-time employees are entitled to 28 days of paid annual leave per calendar "
            "year. Up to 5 unused days may be carried over into the following year and must be taken by "
            "31 March.\n\nQuestion: How many days of annual leave do full-time employees get, and how "
            "many days can be carried over?",
        },
    ]
    passes = []
    texts = []
    for draft in (0, 4):
        llm = LlamaCppLLM(path, n_ctx=512, threads=2, draft_tokens=draft)
        calls = []
        library_eval = llm._llm.eval
        llm._llm.eval = lambda tokens, ev=library_eval, seen=calls: (seen.append(len(tokens)), ev(tokens))[1]
        texts.append(llm.chat(copying, max_tokens=48))
        passes.append(len(calls))
    assert texts[0] and texts[1] == texts[0]
    assert passes[1] < passes[0]


def test_stderr_is_restored_when_two_threads_silence_it_at_once():
    import subprocess
    import sys

    # In a process of its own: pytest's capture replaces sys.stderr, which the silencer leaves alone.
    script = """
import os, threading, time
from kb.llm import _quiet_stderr

def quiet(hold):
    with _quiet_stderr():
        os.write(2, b"hidden\\n")
        time.sleep(hold)

threads = [threading.Thread(target=quiet, args=(h,)) for h in (0.05, 0.2)]  # the first ends first
threads[0].start()
time.sleep(0.02)
threads[1].start()
for t in threads:
    t.join()
os.write(2, b"visible\\n")
"""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": repo}
    err = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True).stderr
    assert "visible" in err and "hidden" not in err
