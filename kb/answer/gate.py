"""The refusal gate: whether the retrieved passages answer the question at all."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from kb.answer.entities import Entity, mentions
from kb.answer.rank import idf
from kb.answer.retrieve import Evidence, context_of
from kb.answer.types import Candidate
from kb.retrieval import STOPWORDS, Hit
from kb.store import Store

_WORDS = re.compile(r"\w+", re.UNICODE)


# answerability = SENTENCE x best sentence score + COVERAGE x question coverage by a top passage
# + MARGIN x how far the best passage's document stands out; weights chosen on 700 COVID-QA
# questions (seed 5) with the sample questions, checked on the other COVID-QA questions (README).
SENTENCE_WEIGHT, COVERAGE_WEIGHT, MARGIN_WEIGHT = 0.6, 0.2, 0.1


MARGIN_POOL = 10  # passages retrieved to judge the document margin (answers use the top_k best)
PARTIAL_BAND = 0.1  # how far below min_answerability an answer is still given, saying it is partial
ABSENT_WORD_WEIGHT = 0.25  # share of its IDF a question word no passage holds counts against coverage
ANCHOR_WEIGHT = 0.2  # weight of the specificity of a question name that anchors the evidence


def question_coverage(question: str, hits: list[Hit], store: Store, n: int, top: int = 3) -> float:
    """How much of the question's meaning-bearing words one of the best passages contains, 0-1.

    Words are weighted by their rarity among the knowledge base's `n` passages (`idf`), so the
    specific terms of a question count most. This catches questions about something the
    documents never mention even when a passage is on a related topic and close in embedding
    space. A word found nowhere in the knowledge base weighs only `ABSENT_WORD_WEIGHT` of its
    IDF: no passage can match it word for word, so whether the documents say it in other words
    ("vacation days" for "annual leave") is left to the sentence similarity, and a name the
    documents never mention is caught by `judge`.
    """
    terms = list(dict.fromkeys(w.lower() for w in _WORDS.findall(question) if w.lower() not in STOPWORDS))
    if not terms or not hits:
        return 0.0
    ids = [h.chunk.id for h in hits[:top]]
    weights, present = {}, {}
    for t in terms:
        df, found = store.term_matches(t, ids)
        weights[t] = idf(df, n) * (ABSENT_WORD_WEIGHT if df == 0 else 1.0)
        present[t] = found
    total = sum(weights.values()) or 1.0
    return max(sum(weights[t] for t in terms if cid in present[t]) / total for cid in ids)


def document_margin(hits: list[Hit]) -> float:
    """How far the best passage's document stands out: 1 - (best score of any other document) /
    (best score), over the retrieved passages; 1 when no other document was retrieved.

    When the document that answers a question is in the knowledge base, its passages usually
    outscore every other document's; when it is missing, several look-alike documents score
    about the same (COVID-QA: the margin alone separates the two with AUC 0.76).
    """
    if not hits or hits[0].score <= 0:
        return 0.0
    doc = hits[0].chunk.doc_id
    other = max((h.score for h in hits if h.chunk.doc_id != doc), default=0.0)
    return max(0.0, 1.0 - max(0.0, other) / hits[0].score)


def answerability(best: Candidate, coverage: float, margin: float) -> float:
    """The score the refusal gate compares with `min_answerability` (the README, How an answer is made)."""
    return SENTENCE_WEIGHT * best.score + COVERAGE_WEIGHT * coverage + MARGIN_WEIGHT * margin


@dataclass(frozen=True)
class Verdict:
    """What the gate decided: answer, answer but say the documents only partly answer, or refuse."""

    answer: bool
    partial: bool
    score: float
    reason: str  # why kb refuses (or answers only in part), for the user
    signals: dict


def anchoring(
    evidence: Evidence, ranked: list[Candidate], store: Store, top: int = 3
) -> tuple[list[Entity], float, bool]:
    """The question's names that a passage holding one of the `top` best sentences mentions (in its
    text, headings, title or file name); how strongly the best of them anchors the evidence; and
    whether one names the document itself (its title, file name or headings).

    A question that names what a document is about ("Does Adobe have an improving operating
    margin?") is covered by it even when no sentence restates the question. The anchor counts by
    how specific the name is (1 for a name only one document mentions, falling towards 0 for one
    every document does), in full when the name is the document's subject (title, file name,
    headings) and by half when the passage only mentions it: a name mentioned in passing (a board
    member's other company) says little about what the document covers."""
    passages = [evidence.hits[n - 1] for n in dict.fromkeys(c.n for c in ranked[:top])]
    anchored = [e for e in evidence.names if any(mentions(e, context_of(h)) for h in passages)]
    total = max(1, store.document_count())
    best, subject = 0.0, False
    for e in anchored:
        docs = max(1, store.phrase_documents(e.text, prefix=True))
        specific = 1.0 - math.log(docs) / math.log(total + 1)
        titled = any(mentions(e, _subject_of(h)) for h in passages)
        subject = subject or titled
        best = max(best, specific * (1.0 if titled else 0.5))
    return anchored, best, subject


def _subject_of(hit: Hit) -> str:
    """What a passage's document and section are called: title, file name, headings."""
    c = hit.chunk
    return "\n".join([c.title, c.path.rsplit("/", 1)[-1], " ".join(c.heading_path)])


def judge(
    question: str,
    evidence: Evidence,
    ranked: list[Candidate],
    store: Store,
    n: int,
    min_answerability: float,
    partial_band: float = PARTIAL_BAND,
) -> Verdict:
    """Whether the evidence answers the question.

    Two cases are told apart. The documents do not cover what the question is about when a
    name it asks about ("General Mills", "JPM") is mentioned nowhere in the knowledge base and no
    name of the question anchors the evidence: kb refuses and says which. Otherwise the
    answerability score decides, where a specific name of the question that the best evidence
    mentions counts for the question being covered (`anchoring`): at `min_answerability` or above
    kb answers; a little below (within `partial_band`), when the best evidence's document is about
    a name of the question, it answers and says the documents only partly answer; below that it
    refuses.
    """
    best = ranked[0]
    coverage = question_coverage(question, evidence.hits, store, n)
    margin = document_margin(evidence.pool)
    anchored, specificity, subject = anchoring(evidence, ranked, store)
    score = answerability(best, coverage, margin) + ANCHOR_WEIGHT * specificity
    absent = [e.text for e in evidence.names if e not in anchored and store.phrase_documents(e.text, prefix=True) == 0]
    signals = {
        "best_sentence": round(best.score, 3),
        "similarity": round(best.similarity, 3),
        "coverage": round(coverage, 3),
        "margin": round(margin, 3),
        "names": [e.text for e in evidence.names],
        "names_anchored": [e.text for e in anchored],
        "name_specificity": round(specificity, 3),
        "names_absent": absent,
        "subject": subject,
    }
    parts = (
        f"best sentence {best.score:.2f}, question coverage {coverage:.2f}, document margin {margin:.2f}, "
        f"name specificity {specificity:.2f}"
    )
    if absent and not anchored:
        what = " and ".join(f'"{a}"' for a in absent)
        return Verdict(False, False, score, f"the documents never mention {what}", signals)
    if score >= min_answerability:
        return Verdict(True, False, score, "", signals)
    if subject and score >= min_answerability - partial_band:
        why = f"the evidence is weak (answerability {score:.2f} < {min_answerability:.2f}: {parts})"
        return Verdict(True, True, score, why, signals)
    why = (
        "the closest passages do not match the question well enough "
        f"(answerability {score:.2f} < {min_answerability:.2f}: {parts})"
    )
    return Verdict(False, False, score, why, signals)


def _phrase(text: str) -> str:
    """A name as an FTS5 phrase: its words only."""
    return " ".join(_WORDS.findall(text))
