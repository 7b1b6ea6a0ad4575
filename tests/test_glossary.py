"""The glossary: an analyst's measure is searched for as the line items it is computed from."""

from __future__ import annotations

import pytest

from kb.answer import Answerer
from kb.answer.glossary import FINANCE, meanings, parse_glossary, terms_for
from kb.errors import ConfigError
from kb.retrieval import Retriever
from tests.fakes import ScriptedLLM

PROSE = (
    "Management discussion. We believe our margin profile reflects the strength of our operating model. "
    "Our operating discipline and margin focus continue to guide how we invest in the business."
)
TABLE = (
    "Consolidated statements of income. Total revenue 17,606 15,785 12,868. Cost of revenue 2,165 1,865 1,722. "
    "Operating income 6,098 5,802 4,237. Net income 4,756 4,822 5,260."
)


def test_a_measure_is_read_as_its_line_items():
    found = meanings("Does Adobe have an improving operating margin profile as of FY2022?")
    assert len(found) == 1 and "operating income" in found[0] and "total revenue" in found[0]
    assert "accounts payable" in " ".join(meanings("What is Amazon's FY2017 days payable outstanding (DPO)?"))
    assert "purchases of property and equipment" in " ".join(meanings("Is CVS Health a capital-intensive business?"))
    # Several measures in one question each add their words; word boundaries hold ("debtor" is not debt).
    assert len(meanings("Compare the quick ratio and the gross margin.")) == 2
    assert meanings("Who is the debtor named in the contract?") == []


def test_a_question_without_a_measure_has_no_meanings():
    assert meanings("How many days of annual leave do full-time employees get?") == []


def test_user_terms_come_first_and_match_whole_words(tmp_path):
    path = tmp_path / "glossary.txt"
    path.write_text("# our words\nrun rate | annual recurring revenue\n\nNPS | net promoter score survey\n")
    terms = terms_for(str(path))
    assert terms[2:] == FINANCE
    assert meanings("What is the run rate and the NPS?", terms)[:2] == [
        "annual recurring revenue",
        "net promoter score survey",
    ]
    assert meanings("Who runs rate cards?", terms) == []


def test_a_bad_glossary_line_names_the_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r"g\.txt:2: expected 'term \| the words it is read as'"):
        parse_glossary("ok | fine\njust a term\n", "g.txt")
    with pytest.raises(ConfigError, match="cannot read the glossary"):
        terms_for(str(tmp_path / "missing.txt"))


@pytest.fixture
def filing(kb_of):
    with kb_of({"discussion.txt": PROSE, "statements.txt": TABLE}) as base:
        yield base


def test_the_statement_table_is_read_for_a_measure(filing):
    # One passage from the question's own search: the prose that repeats its words. The measure's
    # line items bring in the table the margin is computed from, and an answer from its figures
    # is kept and cites it.
    reply = "Operating income rose to 6,098 from 5,802."
    answerer = Answerer(Retriever(filing), ScriptedLLM([reply]), top_k=1, min_relevance=0.0, min_answerability=0.0)
    answer = answerer.ask("Is our operating margin profile improving?")
    paths = [c.path.rsplit("/", 1)[-1] for c in filing.store.chunks(answer.retrieved).values()]
    assert sorted(paths) == ["discussion.txt", "statements.txt"]
    assert answer.hops and "operating income" in answer.hops[0]
    assert answer.mode == "generative" and "6,098" in answer.text
    assert [s.hit.chunk.path.rsplit("/", 1)[-1] for s in answer.sources] == ["statements.txt"]


def test_a_model_answer_about_a_measure_shows_the_figures_it_is_computed_from(kb_of):
    # One filing: the model answers from its prose only, and the answer also quotes its statement rows.
    reply = "Our margin profile reflects the strength of our operating model."
    with kb_of({"annual-report.txt": PROSE + "\n\n" + TABLE}) as base:
        llm = ScriptedLLM([reply])
        answerer = Answerer(Retriever(base), llm, top_k=1, min_relevance=0.0, min_answerability=0.0)
        answer = answerer.ask("Is our operating margin profile improving?")
    assert answer.mode == "generative" and answer.text.startswith(reply)
    quotes = [s.quote.text for s in answer.sources if s.quote]
    assert any(q.startswith(("Operating income 6,098", "Total revenue 17,606")) for q in quotes), quotes
    assert all(s.supported for s in answer.sentences) and len(answer.sentences) > 1


def test_without_the_glossary_only_the_prose_is_read(filing):
    answerer = Answerer(
        Retriever(filing), ScriptedLLM(["x"]), top_k=1, min_relevance=0.0, min_answerability=0.0, terms=()
    )
    answer = answerer.ask("Is our operating margin profile improving?")
    assert [c.path.rsplit("/", 1)[-1] for c in filing.store.chunks(answer.retrieved).values()] == ["discussion.txt"]
    assert answer.hops == []


def test_an_extractive_answer_quotes_the_figures_of_the_measure(kb_of):
    # One filing, its discussion and its statement table; another company's table lists the same
    # line items.
    other = TABLE.replace("6,098", "1,234").replace("17,606", "9,999")
    with kb_of({"annual-report.txt": PROSE + "\n\n" + TABLE, "other-company.txt": other}) as base:
        answerer = Answerer(Retriever(base), None, top_k=1, min_relevance=0.0, min_answerability=0.0)
        answer = answerer.ask("Is our operating margin profile improving?")
    assert answer.mode == "extractive"
    assert {s.hit.chunk.path.rsplit("/", 1)[-1] for s in answer.sources} == {"annual-report.txt"}
    # The prose first (it matches the question's words), then the rows the margin is computed from.
    assert "margin" in answer.sources[0].quote.text
    rows = [s.quote.text for s in answer.sources[1:]]
    assert any(r.startswith(("Operating income 6,098", "Total revenue 17,606")) for r in rows), rows


def test_the_rows_naming_a_whole_line_item_are_quoted_before_rows_sharing_its_words():
    from kb.answer.rank import figures_witness
    from kb.answer.types import Candidate
    from kb.text import split_sentences
    from tests.fakes import make_hit

    prose = make_hit(1, 7, "Our operating margin declined in fiscal 2022.")
    table = make_hit(
        2,
        7,
        "Total liabilities and stockholders' equity 27,165 27,241\n"
        "Total current liabilities 8,128 8,325\nOperating income 6,098 6,475\nTotal revenue 17,606 15,785",
    )
    hits = [prose, table]
    spans = split_sentences(table.chunk.text)
    ranked = [Candidate(1, split_sentences(prose.chunk.text)[0], 0.9, 0.9)] + [
        Candidate(2, sp, 0.5 - i / 10, 0.5) for i, sp in enumerate(spans)
    ]
    meanings = ["operating income total revenue net sales consolidated statements of income operations"]
    picked = figures_witness(ranked, hits, ranked[:1], {2}, meanings, 2)
    assert [c.span.text for c in picked] == ["Operating income 6,098 6,475", "Total revenue 17,606 15,785"]
