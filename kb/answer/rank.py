"""Evidence: every sentence of the retrieved passages scored as a possible answer, best first, and
the sentences an extractive answer quotes."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

import numpy as np

from kb.answer.types import Candidate
from kb.guard import injection_spans
from kb.retrieval import Hit
from kb.store import Store
from kb.text import Span, content_terms, content_words, split_sentences

# A page number before a capitalised title ("34 Reliance Foundation"; "28 days" is a quantity)
# or after dot leaders ("Introduction ..... 12"; "Employees in Germany 1200" is a table row).
_PAGE_NUMBER = re.compile(r"^\d{1,4}\s+(?=[A-Z])|\s*\.{3,}\s*\d{1,4}$")


def _is_heading(text: str) -> bool:
    """A short line without punctuation, digits or cells: a title, not an answer. A line of a
    table of contents ("34 Reliance Foundation", "Introduction ..... 12") is one too, once its page
    number is set aside: it names a topic, and a question's words match it well (a PDF report's
    contents page answered "How many new jobs did Reliance create?" with "2 Reliance at a Glance")."""
    title = _PAGE_NUMBER.sub("", text.strip()) or text
    return len(title.split()) <= 6 and title[-1] not in ".!?:;)" and not any(ch.isdigit() or ch in "|@" for ch in title)


def idf(df: int, n: int) -> float:
    """Inverse document frequency of a word found in `df` of `n` passages; a word found nowhere
    weighs most."""
    return math.log((max(1, n) + 1) / (df + 0.5))


def term_weights(question: str, store: Store, n: int) -> dict[str, float]:
    """The IDF of each content term of the question among the knowledge base's `n` passages: the
    rare, specific words of a question ("fecal", "2014") weigh more than the ones every passage holds."""
    return {term: idf(store.term_matches(word, [])[0], n) for term, word in content_words(question).items()}


def under_heading(hit: Hit, sentence: str) -> str:
    """The sentence as a reader meets it: after the heading it sits under, if any
    ("Password requirements: Minimum length | 14 characters")."""
    heading = hit.chunk.heading_path[-1] if hit.chunk.heading_path else ""
    return f"{heading}: {sentence}" if heading else sentence


def rank_sentences(
    question: str,
    hits: list[Hit],
    embed: Callable[[list[str]], np.ndarray],
    weights: dict[str, float] | None = None,
    start: int = 1,
) -> list[Candidate]:
    """Every sentence of the passages, best answer candidates first.

    Similarity is measured on the bare sentence (adding its heading made off-topic questions
    look answerable on the samples: 43/47 against 45/47), while shared words are also counted
    in the heading it sits under ("Your first day" for "Please arrive at 9:00"). Shared words
    count by `weights` (`term_weights`, IDF) when given, else equally: on COVID-QA, IDF
    weighting chose a sentence of the right article more often (0.80 to 0.81) and raised
    evidence recall by 1-2 points on both halves of the articles.
    """
    spans: list[tuple[int, Span, str]] = []
    for n, hit in enumerate(hits, start=start):
        injected = {sp.start for sp in injection_spans(hit.chunk.text)}
        for sp in split_sentences(hit.chunk.text):
            if len(content_terms(sp.text)) >= 3 and not _is_heading(sp.text) and sp.start not in injected:
                spans.append((n, sp, under_heading(hit, sp.text)))
    if not spans:
        return []
    vecs = embed([question] + [sp.text for _, sp, _ in spans])
    sims = vecs[1:] @ vecs[0]
    q_terms = content_terms(question)
    weight = {t: (weights or {}).get(t, 1.0) for t in q_terms}
    total = sum(weight.values()) or 1.0
    out = []
    for (n, sp, ctx), sim in zip(spans, sims, strict=True):
        overlap = sum(weight[t] for t in q_terms & content_terms(ctx)) / total
        # Meaning first; shared words break near-ties; the passage's rank adds a small prior.
        out.append(Candidate(n, sp, float(sim) + 0.25 * overlap + 0.2 / (n + 4), float(sim)))
    return sorted(out, key=lambda c: -c.score)


def supporting_sentences(
    ranked: list[Candidate], hits: list[Hit], most: int, margin: float = 0.2, depth: int = 5
) -> list[Candidate]:
    """The best sentence, then up to `most - 1` more from other passages of the same document.

    An answer often spans passages (a definition in one, the figure in the next), and quoting
    the next-best sentences gives the reader, and the citation, more of it. They must rank among
    the top `depth`, be within `margin` cosine of the best, and come from the same document:
    a near-tie from another document is more often a look-alike than a second witness
    (COVID-QA: citing them lowered citation precision from 0.86 to 0.70). The same sentence
    seen again in an overlapping chunk is skipped.
    """
    if not ranked:
        return []
    best = ranked[0]
    doc = hits[best.n - 1].chunk.doc_id
    chosen = [best]
    for c in ranked[1:depth]:
        if len(chosen) >= most:
            break
        if (
            hits[c.n - 1].chunk.doc_id == doc
            and c.similarity >= best.similarity - margin
            and all(c.n != x.n and not _same_sentence(c.span.text, x.span.text) for x in chosen)
        ):
            chosen.append(c)
    return chosen


def _same_sentence(a: str, b: str) -> bool:
    """Whether one sentence repeats the other's words: overlapping chunks repeat their edges,
    whole or cut off ("Up to 5 days of unused leave" at the end of one chunk)."""
    ta, tb = content_terms(a), content_terms(b)
    return bool(ta and tb) and len(ta & tb) / min(len(ta), len(tb)) >= 0.8


def complete_span(passage: str, span: Span, max_units: int = 4) -> Span:
    """Extend a sentence that cannot stand alone: a question (FAQ) takes its answer, and a
    line ending in a colon takes the lines it introduces."""
    units = split_sentences(passage)
    idx = next((i for i, u in enumerate(units) if u.start == span.start), None)
    if idx is None:
        return span
    end = idx
    while end + 1 < len(units) and end - idx < max_units - 1 and units[end].text.rstrip().endswith(("?", ":")):
        end += 1
    if end == idx:
        return span
    return Span(passage[span.start : units[end].end], span.start, units[end].end)


LIKELIHOOD_WEIGHT = 1.0  # weight of the question-likelihood gain (nats per token) in a sentence's score


class SentenceScorer(Protocol):
    """What `rerank_by_likelihood` needs (kb.llm.QuestionScorer)."""

    def gains(self, sentences: list[str], question: str) -> list[float]: ...


def rerank_by_likelihood(
    question: str,
    ranked: list[Candidate],
    hits: list[Hit],
    scorer: SentenceScorer,
    n: int,
    weight: float = LIKELIHOOD_WEIGHT,
) -> list[Candidate]:
    """The `n` best candidates re-ordered by their score plus `weight` x how much more likely a
    language model finds the question after reading the sentence under its heading (a table
    row "Minimum length | 14 characters" answers "What is the minimum password length?" only
    under "Password requirements"); the rest keep their order.

    A bi-encoder ranks a sentence on the question's topic alike with the one that answers it
    ("two drugs, remdesivir and chloroquine, inhibited infection" against "CQ appears to be the
    drug of choice"); the question's likelihood can tell them apart. Measured with 5 candidates
    and weight 1 (the README, How an answer is made): on 811 COVID-QA questions the best sentence
    came from a passage holding the answer 56.1% of the time instead of 53.5%, but on the
    samples a small model preferred sentences that repeat the question's words to table rows
    that answer it, so `rerank_sentences` is off by default.
    """
    head, tail = ranked[:n], ranked[n:]
    if len(head) < 2:
        return ranked
    gains = scorer.gains([under_heading(hits[c.n - 1], c.span.text) for c in head], question)
    rescored = [replace(c, score=c.score + weight * g) for c, g in zip(head, gains, strict=True)]
    return sorted(rescored, key=lambda c: -c.score) + tail
