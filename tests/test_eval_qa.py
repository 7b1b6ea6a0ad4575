"""`kb eval qa`: loading SQuAD/JSONL, held-out documents, scoring, and the command end to end
(hashing embedder, extractive answers: no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.app import app
from kb.eval.qa import contains_gold, held_out, load_qa, shown_as_sentence

DOCS = {
    "leave": "Annual leave. Full-time employees receive 28 days of paid annual leave per calendar year.",
    "travel": "Travel rules. Mileage for private cars is reimbursed at EUR 0.30 per kilometre driven.",
    "security": "Security. Passwords must be at least 14 characters long and are never shared.",
    "parking": "Parking. The staff car park opens at 6 am and visitors park on level two only.",
    "canteen": "Canteen. Lunch is served in the canteen between noon and two in the afternoon.",
}
QUESTIONS = {
    "leave": ("How many days of paid annual leave do full-time employees receive?", "28 days"),
    "travel": ("At what rate is mileage for private cars reimbursed per kilometre?", "EUR 0.30"),
    "security": ("How many characters long must passwords be at least?", "14 characters"),
    "parking": ("When does the staff car park open?", "6 am"),
    "canteen": ("When is lunch served in the canteen?", "between noon and two"),
}


def _squad(tmp_path):
    data = {
        "data": [
            {
                "title": key,
                "paragraphs": [
                    {
                        "context": text,
                        "qas": [
                            {
                                "id": key,
                                "question": QUESTIONS[key][0],
                                "answers": [{"text": QUESTIONS[key][1]}],
                                "is_impossible": False,
                            }
                        ],
                    }
                ],
            }
            for key, text in DOCS.items()
        ]
    }
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(data))
    return path


def _eval_args(tmp_path) -> list[str]:
    """`kb eval qa` on the small SQuAD set, one of five documents held out, extractive, JSON."""
    return ["eval", "qa", str(_squad(tmp_path)), "--extractive", "--holdout", "0.2", "--seed", "3",
            "--kb", str(tmp_path / "kb"), "--json"]  # fmt: skip


def test_load_squad_and_jsonl(tmp_path):
    data = load_qa(_squad(tmp_path))
    assert len(data.items) == 5 and set(data.corpus) == set(DOCS)
    assert data.items[0].doc == "leave.txt" and data.items[0].answers == ("28 days",)
    jl = tmp_path / "q.jsonl"
    jl.write_text(
        '{"question": "Q?", "answer": "A", "doc": "x/leave.txt"}\n\n'
        '{"id": 7, "question": "R?", "answers": ["B", "C"]}\n'
    )
    items = load_qa(jl).items
    assert items[0].doc == "leave.txt" and items[0].answers == ("A",)
    assert items[1].id == "7" and items[1].answers == ("B", "C") and items[1].doc is None
    assert items[0].answerable and items[1].answerable


def test_unanswerable_questions_are_loaded_not_dropped(tmp_path):
    jl = tmp_path / "q.jsonl"
    jl.write_text(
        '{"question": "Dog?", "answer": null, "file": null}\n'
        '{"question": "Cat?", "answers": [], "doc": "leave.txt", "answerable": false}\n'
        '{"question": "Bird?", "answers": ["x"], "is_impossible": true}\n'
        '{"question": "Leave?", "answers": [], "doc": "leave.txt"}\n'
    )
    assert [i.answerable for i in load_qa(jl).items] == [False, False, False, True]
    squad = json.loads(_squad(tmp_path).read_text())
    squad["data"][0]["paragraphs"][0]["qas"].append(
        {"id": "x", "question": "Who won the cup?", "answers": [], "is_impossible": True}
    )
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(squad))
    items = load_qa(path).items
    assert len(items) == 6 and [i.id for i in items if not i.answerable] == ["x"]


def test_contains_gold_ignores_case_space_punctuation():
    assert contains_gold("They get 28  Days of leave.", ("28 days",))
    assert not contains_gold("They get 30 days.", ("28 days",))


def test_held_out_is_seeded_and_sized():
    keys = [f"d{i}" for i in range(10)]
    assert held_out(keys, 0.2, 1) == held_out(keys, 0.2, 1)
    assert len(held_out(keys, 0.2, 1)) == 2 and held_out(keys, 0.0, 1) == set()


def test_eval_qa_command_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("KB_EMBED_MODEL", "fake:")
    monkeypatch.setenv("KB_MIN_RELEVANCE", "0.05")
    monkeypatch.setenv("KB_MIN_ANSWERABILITY", "0.3")
    out = tmp_path / "per-question.jsonl"
    result = CliRunner().invoke(app, [*_eval_args(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert m["questions"] == 5 and m["questions_doc_excluded"] == 1 and m["documents_indexed"] == 4
    assert m["unretrieved_citations"] == 0
    assert m["evidence_recall"] == 1.0 and m["answer_recall"] == 1.0 and m["citation_precision"] == 1.0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and {r["id"] for r in rows} == set(DOCS)
    excluded = [r for r in rows if r["doc_excluded"]]
    assert len(excluded) == 1 and not excluded[0]["cites_gold_doc"]


def test_unanswerable_questions_are_scored_as_refusals(tmp_path, monkeypatch):
    """A JSONL set over a corpus folder: the rows without answer and document must be refused
    and are reported apart from the held-out ones; they do not count as answerable."""
    monkeypatch.setenv("KB_EMBED_MODEL", "fake:")
    monkeypatch.setenv("KB_MIN_RELEVANCE", "0.05")
    monkeypatch.setenv("KB_MIN_ANSWERABILITY", "0.3")
    corpus = tmp_path / "docs"
    corpus.mkdir()
    rows = []
    for key, text in DOCS.items():
        (corpus / f"{key}.md").write_text(text)
        rows.append({"id": key, "question": QUESTIONS[key][0], "answer": QUESTIONS[key][1], "file": f"{key}.md"})
    rows.append({"id": "moon", "question": "What is the distance from the earth to the moon?", "answer": None})
    # Like samples/: the questions and notes sit in the corpus folder, the notes in .kbignore.
    (corpus / "notes.md").write_text("The moon is 384,400 km from the earth.")
    (corpus / ".kbignore").write_text("notes.md\n")
    qa = corpus / "q.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rows.jsonl"
    args = ["eval", "qa", str(qa), "--corpus", str(corpus), "--holdout", "0", "--extractive",
            "--kb", str(tmp_path / "kb"), "--json", "--out", str(out), "--thresholds", "0.3,9"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert m["questions_doc_present"] == 5 and m["questions_unanswerable"] == 1 and m["documents_indexed"] == 5
    assert m["refusal_rate_doc_excluded"] is None and m["refusal_rate_unanswerable"] == 1.0
    assert m["evidence_recall"] == 1.0 and m["answered_when_doc_present"] == 1.0
    assert [r["refusal_rate_unanswerable"] for r in m["sweep"]] == [1.0, 1.0]
    moon = [json.loads(line) for line in out.read_text().splitlines()][-1]
    assert moon["id"] == "moon" and not moon["answerable"] and moon["answer"]["refused"]
    text = CliRunner().invoke(app, [*args[:-5], "--thresholds", "0.3"])
    lines = {line.rsplit("  ", 1)[0].strip(): line.split()[-1] for line in text.stdout.splitlines() if line.strip()}
    assert lines["refused when unanswerable"] == "1.000" and lines["refused when the doc is held out"] == "n/a"


def test_thresholds_score_one_run_as_if_asked_at_each(tmp_path, monkeypatch):
    monkeypatch.setenv("KB_EMBED_MODEL", "fake:")
    monkeypatch.setenv("KB_MIN_RELEVANCE", "0.05")
    monkeypatch.setenv("KB_MIN_ANSWERABILITY", "0.3")
    out = tmp_path / "rows.jsonl"
    args = _eval_args(tmp_path)
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--thresholds", "0.0,0.3,2"])
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    scores = [json.loads(line)["answer"]["answerability"] for line in out.read_text().splitlines()]
    low, mid, high = m["sweep"]
    assert [r["min_answerability"] for r in m["sweep"]] == [0.0, 0.3, 2.0]
    assert low["answered_when_doc_present"] >= mid["answered_when_doc_present"]
    assert high["answered_when_doc_present"] == 0.0 and high["refusal_rate_doc_excluded"] == 1.0
    assert high["evidence_recall"] == 0.0
    # The headline is scored at the setting (0.3) and equals a run asked at 0.3.
    plain = json.loads(CliRunner().invoke(app, args).stdout)
    assert m["min_answerability"] == plain["min_answerability"] == 0.3
    for key in ("answered_when_doc_present", "refusal_rate_doc_excluded", "evidence_recall", "citation_precision"):
        assert m[key] == plain[key] == mid[key]
    assert all(s is not None for s in scores)  # every non-refused answer carries its score


def test_jsonl_with_several_gold_documents_and_gold_pages(tmp_path, monkeypatch):
    """`docs` (several gold files) and `pages` are read, and the page hit, "all gold documents
    cited" and the answer modes are reported."""
    jl = tmp_path / "q.jsonl"
    jl.write_text(
        '{"id": "m", "question": "Q?", "answers": ["x"], "docs": ["a.md", "dir/b.md"]}\n'
        '{"id": "p", "question": "R?", "doc": "c.pdf", "pages": [3, 4]}\n'
        '{"id": "s", "question": "S?", "answer": "y", "file": "d.txt", "page": 2}\n'
    )
    multi, paged, single = load_qa(jl).items
    assert multi.gold_docs == ("a.md", "b.md") and multi.doc == "a.md" and multi.pages == ()
    assert paged.gold_docs == ("c.pdf",) and paged.pages == (3, 4) and paged.answerable
    assert single.pages == (2,)

    monkeypatch.setenv("KB_EMBED_MODEL", "fake:")
    monkeypatch.setenv("KB_MIN_RELEVANCE", "0.05")
    monkeypatch.setenv("KB_MIN_ANSWERABILITY", "0.3")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for key, text in DOCS.items():
        (corpus / f"{key}.txt").write_text(text)
    questions = tmp_path / "multi.jsonl"
    questions.write_text(
        json.dumps({"question": QUESTIONS["leave"][0] + " " + QUESTIONS["travel"][0], "answers": ["28 days"],
                    "docs": ["leave.txt", "travel.txt"]}) + "\n"
        + json.dumps({"question": QUESTIONS["security"][0], "answers": ["14 characters"], "doc": "security.txt"}) + "\n"
    )  # fmt: skip
    args = ["eval", "qa", str(questions), "--corpus", str(corpus), "--holdout", "0", "--extractive",
            "--kb", str(tmp_path / "kb"), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert m["gold_doc_cited"] == 1.0
    assert m["all_gold_docs_cited"] in (0.0, 1.0)  # one question has two gold files: a share of one
    assert m["gold_page_cited"] is None  # no question names pages
    assert m["modes"]["extractive"] == 2 and m["unsupported_sentences_shown"] == 0


def test_a_gold_page_is_hit_by_the_page_of_the_quote():
    from kb.answer import Answer, Source
    from kb.eval.qa import QAItem, QARecord
    from kb.retrieval import Hit
    from kb.store import ChunkRow
    from kb.text import Span

    text = "Revenue rose. Operating income was 6,098."
    chunk = ChunkRow(1, 1, "/f/ADOBE.pdf", "", 0, text, 0, len(text), 53, 54, (), {"pages": [[0, 53], [14, 54]]})
    item = QAItem("q", "Q?", (), "ADOBE.pdf", True, ("ADOBE.pdf",), (54,))
    on_54 = Answer(
        "Q?", "x", False, "extractive", sources=[Source(1, Hit(chunk, 1.0, 1), Span(text[14:], 14, len(text)))]
    )
    on_53 = Answer("Q?", "x", False, "extractive", sources=[Source(1, Hit(chunk, 1.0, 1), Span(text[:13], 0, 13))])
    name = lambda p: p.rsplit("/", 1)[-1]
    assert QARecord(item, False, on_54, 0.1).flags(name)["cites_gold_page"] is True
    assert QARecord(item, False, on_53, 0.1).flags(name)["cites_gold_page"] is False


def test_a_rejected_sentence_counts_as_shown_only_when_the_answer_shows_it():
    text = "Up to 5 days may be carried over. [1] The rest lapses on 31 March. [2]"
    assert not shown_as_sentence("2", text)  # the marker [2] is not the sentence "2"
    assert not shown_as_sentence("You can add 4 days.", text)
    assert shown_as_sentence("The rest lapses on 31 March.", text)
    assert shown_as_sentence("Up to 5 days may be carried over.", text)


def test_a_rejected_fragment_inside_a_verified_quote_is_not_counted_as_shown():
    from kb.answer import Answer, Sentence
    from kb.eval.qa import QAItem, QARecord

    quote = "Paramount Pictures, Inc., 334 US 131 (1948) was a landmark antitrust case."
    item = QAItem("q1", "Which case came first?", ("Craig v. Boren",), "a.md")

    def unsupported_shown(text: str, rejected: str) -> int:
        sentences = [Sentence(quote, (1,), True, 1.0), Sentence(rejected, (), False, 0.4)]
        answer = Answer("Q?", text, False, "extractive", sentences=sentences)
        return QARecord(item, False, answer, 0.1).flags(lambda p: p)["unsupported_shown"]

    # The model's rejected "Paramount Pictures, Inc." is part of the verified quote, not a claim.
    assert unsupported_shown(f"{quote} [1]", "Paramount Pictures, Inc.") == 0
    assert unsupported_shown(f"{quote} [1] Paramount Pictures came first.", "Paramount Pictures came first.") == 1


def test_a_sweep_keeps_the_partial_band_of_the_gate():
    from kb.answer import Answer
    from kb.eval.qa import QAItem, QARecord, refused_at

    def record(score: float, subject: bool) -> QARecord:
        answer = Answer("q", "a", False, "extractive", answerability=score, signals={"subject": subject})
        return QARecord(QAItem("1", "q", ("a",), "d.txt"), False, answer, 0.1)

    # 0.05 below the threshold: given as partial when the document is about a name of the question.
    assert not refused_at(record(0.51, True), 0.56)
    assert refused_at(record(0.51, False), 0.56)
    assert refused_at(record(0.45, True), 0.56)
    assert not refused_at(record(0.60, False), 0.56)


def test_a_knowledge_base_holding_other_documents_is_refused_and_left_as_it_is(tmp_path, monkeypatch):
    """A second run on the same --kb with the same files in another folder would score a knowledge
    base holding two copies of the corpus: it is refused, and nothing stored is deleted."""
    from kb.config import Settings
    from kb.knowledge import KnowledgeBase

    monkeypatch.setenv("KB_EMBED_MODEL", "fake:")
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"question": QUESTIONS["leave"][0], "answers": ["28 days"], "doc": "leave.txt"}) + "\n"
    )
    codes = []
    for folder in ("one", "two"):
        corpus = tmp_path / folder
        corpus.mkdir()
        for key, text in DOCS.items():
            (corpus / f"{key}.txt").write_text(text)
        args = ["eval", "qa", str(questions), "--corpus", str(corpus), "--holdout", "0", "--extractive",
                "--kb", str(tmp_path / "kb"), "--json"]  # fmt: skip
        result = CliRunner().invoke(app, args)
        codes.append(result.exit_code)
    assert codes[0] == 0 and codes[1] != 0
    assert "not in the corpus" in str(result.exception) and "/one/" in str(result.exception)
    with KnowledgeBase(Settings.load().with_overrides(home=tmp_path / "kb")) as base:
        stored = [Path(d.path) for d in base.store.documents()]
    assert {str(p.parent) for p in stored} == {str((tmp_path / "one").resolve())} and len(stored) == len(DOCS)
