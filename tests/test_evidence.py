"""What the model reads, where the evidence comes from, and what a sentence is checked against:
excerpts of the passages around the best sentences, the question's search routed to the
documents about a name it asks about, and a passage read under its document's title."""

from __future__ import annotations

import pytest

from kb.answer import Answerer
from kb.answer.attribute import check_answer, main_clause
from kb.answer.entities import Entity
from kb.answer.generate import excerpt
from kb.answer.retrieve import ROUTED, route
from kb.retrieval import Hit, Retriever
from kb.store import ChunkRow
from kb.text import Span, content_terms, split_sentences
from tests.fakes import ScriptedLLM, make_hit

TEXT = "Alpha is first. Beta is second. Gamma is third. Delta is fourth. Epsilon is fifth."
TABLE = "Limits by city.\nCity | Hotel limit\nBerlin | EUR 130\nMunich | EUR 170\nRome | EUR 150\nAsk the desk."


def _start(text: str, sentence: str) -> int:
    return next(sp.start for sp in split_sentences(text) if sp.text.startswith(sentence))


def test_excerpt_keeps_the_sentence_and_its_neighbours_and_marks_the_cuts():
    assert excerpt(TEXT, {_start(TEXT, "Gamma")}) == "… Beta is second. Gamma is third. Delta is fourth. …"
    assert excerpt(TEXT, {_start(TEXT, "Alpha")}, around=0) == "Alpha is first. …"
    two = excerpt(TEXT, {_start(TEXT, "Alpha"), _start(TEXT, "Epsilon")}, around=0)
    assert two == "Alpha is first.\n…\nEpsilon is fifth."
    assert excerpt(TEXT, {_start(TEXT, "Beta"), _start(TEXT, "Delta")}) == TEXT  # nothing cut


def test_excerpt_reads_a_table_row_under_its_header_row():
    shown = excerpt(TABLE, {_start(TABLE, "Rome")}, around=0)
    assert shown.splitlines() == ["… City | Hotel limit", "…", "Rome | EUR 150 …"]


def test_excerpt_leaves_out_what_an_earlier_excerpt_showed():
    seen: set[str] = set()
    first = excerpt(TEXT, {_start(TEXT, "Beta")}, seen=seen)
    assert "Gamma is third." in first
    # An overlapping passage of the same document repeats "Gamma is third."
    overlap = "Gamma is third. Delta is fourth. Zeta is sixth."
    assert excerpt(overlap, {_start(overlap, "Delta")}, seen=seen) == "… Delta is fourth. Zeta is sixth."
    assert excerpt(overlap, {_start(overlap, "Gamma")}, around=0, seen=seen) == ""


@pytest.fixture
def kb(kb_of):
    # The other company's filing shares the question's words; the named company's does not.
    files = {
        "OTHER_CO_2022.txt": "How many widgets did the company sell in 2022? The company sold widgets, many "
        "widgets, to customers.",
        "JOHNSON_JOHNSON_2022.txt": "Units shipped in fiscal 2022 were 5,000 gadgets in total.",
        "leave.txt": "Annual leave. Full-time employees receive 28 days of paid annual leave per year.",
    }
    with kb_of(files) as base:
        yield base


def test_a_named_subject_routes_the_search_to_its_documents(kb):
    question = "How many widgets did JnJ sell in 2022?"
    llm = ScriptedLLM(["JnJ shipped 5,000 gadgets in fiscal 2022."])
    answerer = Answerer(Retriever(kb), llm, top_k=1, min_relevance=0.0, min_answerability=0.0)
    first = answerer.retriever.search(question, 1)
    assert first[0].chunk.path.endswith("OTHER_CO_2022.txt")  # the question's words match the other filing
    ans = answerer.ask(question)
    paths = {s.hit.chunk.path.rsplit("/", 1)[-1] for s in ans.sources}
    assert "JOHNSON_JOHNSON_2022.txt" in paths
    assert "5,000 gadgets" in llm.prompts[0][1]["content"]


def test_a_routed_search_stays_inside_the_documents_the_caller_may_see(kb):
    docs = {d.path.rsplit("/", 1)[-1]: d.id for d in kb.store.documents()}
    answerer = Answerer(Retriever(kb), None, top_k=1, min_relevance=0.0, min_answerability=0.0)
    allow = {docs["OTHER_CO_2022.txt"], docs["leave.txt"]}
    ans = answerer.ask("How many widgets did JnJ sell in 2022?", extractive=True, allow=allow)
    seen = {c.doc_id for c in kb.store.chunks(ans.retrieved).values()}
    assert seen and seen <= allow


def test_route_adds_the_named_documents_passages_first_or_after_and_skips_common_names():
    other, named = (
        make_hit(1, 10, "other"),
        [make_hit(2, 20, "named a"), make_hit(3, 20, "named b"), make_hit(4, 20, "named c")],
    )
    asked: list[tuple[str, set[int]]] = []

    def search_in(q: str, k: int, docs: set[int]) -> list[Hit]:
        asked.append((" ".join(q.split()), docs))
        return named[:k]

    acme = Entity("Acme", "name")
    hits, routed = route(search_in, "How did Acme's revenue grow?", [other], [acme], lambda e: {20})
    # Searched among Acme's documents without the name, which every passage of them implies.
    assert routed == {20} and asked == [("How did revenue grow?", {20})]
    # None of the hits came from its documents: their passages go first, and another document's
    # passage stays only when it names Acme.
    assert hits == named[:ROUTED]
    partner = make_hit(5, 30, "Acme and Globex signed the agreement.")
    assert route(search_in, "q", [other, partner], [acme], lambda e: {20})[0] == [*named[:ROUTED], partner]
    # One of them was found: the rest are added after what the search found.
    hits, _ = route(search_in, "q", [named[0], other], [acme], lambda e: {20})
    assert hits == [named[0], other, *named[1 : 1 + ROUTED]]
    hits, routed = route(search_in, "q", [other], [acme], lambda e: set(range(100)))
    assert hits == [other] and routed == set()  # a name most documents are about routes nothing


Q_FIESER = "James Fieser received his B.A. from what liberal arts college?"
FIESER = "James Fieser is professor of philosophy. He received his B.A. from Berea College in 1976."


def test_a_sentence_keeps_its_main_clause_when_only_its_added_clause_is_unbacked():
    hits = [make_hit(1, 1, FIESER)]
    (kept,) = check_answer(
        "James Fieser received his B.A. from Berea College, which was founded in 1855.", hits, Q_FIESER
    )
    assert kept.sentence.supported and kept.sentence.text == "James Fieser received his B.A. from Berea College."
    (wrong,) = check_answer("James Fieser received his B.A. from Yale, which is in Connecticut.", hits, Q_FIESER)
    assert not wrong.sentence.supported  # the main clause itself is not backed
    assert main_clause("Berea, which was founded in 1855.") == "Berea, which was founded in 1855."  # too little left


def test_a_passage_is_read_under_its_documents_title():
    text = "The awards were announced on March 22, 2003. It was hosted by John Waters."
    question = "Which film director hosted the Independent Spirit Awards in 2003?"
    claim = "John Waters hosted the 18th Independent Spirit Awards."
    (right,) = check_answer(claim, [make_hit(1, 1, text, title="18th Independent Spirit Awards")], question)
    assert right.sentence.supported and right.sentence.citations == (1,)
    (other,) = check_answer(claim, [make_hit(1, 1, text, title="28th Independent Spirit Awards")], question)
    assert not other.sentence.supported  # "18th" is on no page it was read from


def test_the_model_reads_an_excerpt_and_its_answer_is_verified_against_the_passage(kb_of):
    filler = " ".join(f"Rule {w} concerns item {w} only." for w in NAMES)
    passage = f"Office rules. {filler} The canteen serves lunch from noon. {filler.replace('Rule', 'Note')}"
    with kb_of({"rules.txt": passage}, chunk_tokens=250, chunk_overlap=0) as base:
        llm = ScriptedLLM(["The canteen serves lunch from noon."])
        answerer = Answerer(
            Retriever(base), llm, top_k=1, min_relevance=0.0, min_answerability=0.0, excerpt_sentences=1
        )
        ans = answerer.ask("When does the canteen serve lunch?")
    shown = llm.prompts[0][1]["content"]
    assert "The canteen serves lunch from noon." in shown and "…" in shown
    assert len(shown) < len(passage) / 2  # the best sentences and their neighbours, not the passage
    assert ans.mode == "generative" and ans.sources[0].quote is not None
    assert "canteen" in ans.sources[0].quote.text


NAMES = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa")


PIONEERS = {
    "Ada_Lovelace.txt": "Ada Lovelace was an English mathematician, born on 10 December 1815 in London.",
    "Grace_Hopper.txt": "Grace Hopper was an American computer scientist, born on 9 December 1906.",
}


def _ask_who_was_born_first(kb_of, reply: str, files: dict[str, str] = PIONEERS, top_k: int = 2):
    """The answer to "Who was born first, Ada Lovelace or Grace Hopper?" when the model replies `reply`."""
    with kb_of(files) as base:
        llm = ScriptedLLM([reply])
        answerer = Answerer(Retriever(base), llm, top_k=top_k, min_relevance=0.0, min_answerability=0.0)
        return answerer.ask("Who was born first, Ada Lovelace or Grace Hopper?")


def test_a_model_answer_to_a_choice_question_also_quotes_the_other_options_document(kb_of):
    leave = {"leave.txt": "Annual leave. Full-time employees receive 28 days of paid annual leave per year."}
    # The model writes one sentence about the option it chose, backed by that option's page.
    ans = _ask_who_was_born_first(kb_of, "Ada Lovelace was born first, on 10 December 1815.", PIONEERS | leave, 3)
    assert ans.mode == "generative"
    assert ans.sentences[0].text.startswith("Ada Lovelace was born first") and ans.sentences[0].supported
    # The comparison rests on both pages: the other option's birth date is quoted and cited too.
    cited = {s.hit.chunk.path.rsplit("/", 1)[-1]: s for s in ans.sources}
    assert set(cited) == {"Ada_Lovelace.txt", "Grace_Hopper.txt"}
    assert "9 December 1906" in cited["Grace_Hopper.txt"].quote.text
    assert "[2]" in ans.text and "1906" in ans.text


def test_a_model_answer_citing_both_documents_gets_no_extra_quote(kb_of):
    reply = "Ada Lovelace was born on 10 December 1815. Grace Hopper was born on 9 December 1906."
    ans = _ask_who_was_born_first(kb_of, reply)
    assert ans.mode == "generative"
    assert [s.text for s in ans.sentences] == [
        "Ada Lovelace was born on 10 December 1815.",
        "Grace Hopper was born on 9 December 1906.",
    ]
    assert len(ans.sources) == 2


def test_a_model_answer_also_quotes_a_near_tie_from_another_passage_of_its_document():
    from kb.answer.attribute import Attributed, Backing
    from kb.answer.pipeline import _near_ties
    from kb.answer.types import Candidate, Sentence

    figure = "The onset-to-death distribution is Gamma distributed with a mean of 18.8 days."
    definition = "Deaths follow an onset-to-death distribution (the time from the onset of symptoms to death)."
    other = "An onset-to-death distribution was also fitted in another study of influenza."
    hits = [make_hit(1, 1, figure), make_hit(2, 1, definition), make_hit(3, 2, other)]
    ranked = [
        Candidate(1, Span(figure, 0, len(figure)), 0.97, 0.97),
        Candidate(3, Span(other, 0, len(other)), 0.90, 0.90),  # a look-alike from another document
        Candidate(2, Span(definition, 0, len(definition)), 0.88, 0.88),
    ]
    answer = Attributed(
        Sentence("It is Gamma distributed with a mean of 18.8 days.", (1,), True, 1.0), (Backing(1, ranked[0].span),)
    )
    weights = {content_terms("onset-to-death").pop(): 3.0, content_terms("distribution").pop(): 1.0}
    packed, near = _near_ties(hits, ranked, [hits[0]], [answer], weights)
    assert [a.sentence.text for a in near] == [definition]
    assert packed == [hits[0], hits[1]] and near[0].sentence.citations == (2,)
    # An answer that already cites that passage gets no second quote of it.
    cites_both = Attributed(answer.sentence, (Backing(1, ranked[0].span), Backing(2, ranked[2].span)))
    assert _near_ties(hits, ranked, hits[:2], [cites_both], weights)[1] == []
    # A near-tie without the question's rarest word is about something else of the page.
    owner = "Owner: Priya Raman, Information Security."
    hits[1] = make_hit(2, 1, owner)
    ranked[2] = Candidate(2, Span(owner, 0, len(owner)), 0.88, 0.88)
    assert _near_ties(hits, ranked, [hits[0]], [answer], weights)[1] == []


def test_a_date_comparisons_wrong_choice_is_rejected_by_the_years_on_the_two_pages():
    from kb.answer.compare import contradicts

    def page(i: int, title: str, text: str) -> Hit:
        body = f"{title}\n\n{text}"
        return Hit(
            ChunkRow(i, i, f"/d/{title.replace(' ', '_')}.md", title, 0, body, 0, len(body), None, None, ()), 1.0, i
        )

    hits = [
        page(1, "Ferdi Taygan", "Ferdi Taygan (born December 5, 1956) is a former tennis player."),
        page(2, "Mahesh Bhupathi", "Mahesh Bhupathi (born 7 June 1974) is a retired Indian tennis player."),
    ]
    question = "Who is older, Ferdi Taygan or Mahesh Bhupathi?"
    assert not contradicts("Ferdi Taygan is older than Mahesh Bhupathi.", question, hits)
    assert contradicts("Mahesh Bhupathi is older than Ferdi Taygan.", question, hits)
    assert contradicts("Mahesh Bhupathi is older.", question, hits)
    assert not contradicts("Mahesh Bhupathi was born after Ferdi Taygan.", question, hits)
    assert contradicts("Ferdi Taygan was born after Mahesh Bhupathi.", question, hits)
    # A sentence that chooses nothing, a question about deaths, or one option's page missing: no verdict.
    assert not contradicts("Mahesh Bhupathi was born in 1974.", question, hits)
    assert not contradicts("Mahesh Bhupathi died first.", "Who died first, Ferdi Taygan or Mahesh Bhupathi?", hits)
    assert not contradicts("Mahesh Bhupathi is older.", question, hits[1:])


def test_a_model_answer_choosing_the_later_option_falls_back_to_quoting_both_pages(kb_of):
    ans = _ask_who_was_born_first(kb_of, "Grace Hopper was born first.")
    assert ans.mode == "extractive" and "years on the two pages" in ans.model["reason"]
    assert {s.hit.chunk.path.rsplit("/", 1)[-1] for s in ans.sources} == {"Ada_Lovelace.txt", "Grace_Hopper.txt"}
    assert not any(s.supported for s in ans.sentences if s.text == "Grace Hopper was born first.")


def test_a_wrong_date_choice_is_not_streamed_while_the_model_writes(kb_of):
    streamed: list[str] = []
    with kb_of(PIONEERS) as base:
        llm = ScriptedLLM(["Grace Hopper was born first. Ada Lovelace was born on 10 December 1815."])
        answerer = Answerer(Retriever(base), llm, top_k=2, min_relevance=0.0, min_answerability=0.0)
        ans = answerer.ask(
            "Who was born first, Ada Lovelace or Grace Hopper?", on_sentence=lambda s: streamed.append(s.text)
        )
    assert "Grace Hopper was born first." not in streamed
    assert "Grace Hopper was born first." not in ans.text
    assert streamed and all(t in ans.text for t in streamed)
