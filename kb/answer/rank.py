"""Evidence: every sentence of the retrieved passages scored as a possible answer, best first, and
the sentences an extractive answer quotes."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

import numpy as np

from kb.answer.entities import Entity
from kb.answer.retrieve import is_about
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


class SentenceVectors:
    """The vectors of texts embedded before, by embedding model and exact text, least recently
    used dropped first: a resident process (`kb serve`, `kb chat`, `kb eval qa`) ranks the
    sentences of the same passages question after question, and embedding them was most of the
    ranking's time. The same text and model give the same vector, so nothing stale can be served.
    """

    def __init__(self, size: int = 50_000) -> None:
        import threading

        from kb.embeddings import VectorCache

        self._vectors = VectorCache(size)
        self._lock = threading.Lock()

    def embedding(self, embed: Callable[[list[str]], np.ndarray], model: str) -> Callable[[list[str]], np.ndarray]:
        """`embed` answering from the store of vectors where it can, embedding only the rest."""

        def cached(texts: list[str]) -> np.ndarray:
            found: dict[str, np.ndarray] = {}
            with self._lock:
                for t in texts:
                    v = self._vectors.get((model, t))
                    if v is not None:
                        found[t] = v
            missing = [t for t in dict.fromkeys(texts) if t not in found]
            if missing:
                new = embed(missing)
                with self._lock:
                    for t, v in zip(missing, new, strict=True):
                        found[t] = v
                        self._vectors.put((model, t), v)
            return np.stack([found[t] for t in texts]) if texts else embed(texts)

        return cached


SENTENCE_VECTORS = SentenceVectors()


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
    spans: list[tuple[int, Span, str, str]] = []  # (passage, sentence, context for shared words, table reading)
    for n, hit in enumerate(hits, start=start):
        injected = {sp.start for sp in injection_spans(hit.chunk.text)}
        headers = table_headers(hit.chunk.text)
        for sp in split_sentences(hit.chunk.text):
            if sp.start in injected or headers.get(sp.start) == ():
                continue  # an instruction to a model, or a table's header row
            reading = read_row(sp.text, headers[sp.start]) if sp.start in headers else named_row(sp.text)
            text = reading or sp.text
            if len(content_terms(text)) >= 3 and not _is_heading(sp.text) and not is_boilerplate(sp.text):
                spans.append((n, sp, under_heading(hit, text), reading))
    if not spans:
        return []
    vecs = embed([question] + [reading or sp.text for _, sp, _, reading in spans])
    sims = vecs[1:] @ vecs[0]
    q_terms = content_terms(question)
    weight = {t: (weights or {}).get(t, 1.0) for t in q_terms}
    total = sum(weight.values()) or 1.0
    out = []
    for (n, sp, ctx, reading), sim in zip(spans, sims, strict=True):
        overlap = sum(weight[t] for t in q_terms & content_terms(ctx)) / total
        shown = (
            (focus_named_row(reading, question) if _NAMED_PAIR.match(reading) else focus_row(reading, question))
            if reading
            else ""
        )
        # Meaning first; shared words break near-ties; the passage's rank adds a small prior.
        out.append(Candidate(n, sp, float(sim) + 0.25 * overlap + 0.2 / (n + 4), float(sim), shown))
    return _distinct(sorted(out, key=lambda c: -c.score), hits, start)


def _distinct(ranked: list[Candidate], hits: list[Hit], start: int) -> list[Candidate]:
    """The ranking without the repeats that overlapping passages of one document make: a sentence
    (or the cut-off start of one, "Up to 5 days of unused leave") that a better-ranked sentence of
    the same document contains would take a place among the best sentences twice."""
    out: list[Candidate] = []
    kept: dict[int, list[str]] = {}
    for c in ranked:
        doc = hits[c.n - start].chunk.doc_id
        text = " ".join(c.span.text.split())
        if any(text in other for other in kept.get(doc, ())):
            continue
        kept.setdefault(doc, []).append(text)
        out.append(c)
    return out


_CELL_SPLIT = re.compile(r"\s+\|\s+")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in _CELL_SPLIT.split(line.strip().strip("|").strip())]


def table_headers(passage: str) -> dict[int, tuple[str, ...]]:
    """For each row of a "a | b | c" table in the passage, by the offset where it starts, the
    column headers it is read under; a header row itself maps to (). A table is a run of lines
    with the same number of cells (at least two); its first line is the header when no cell of
    it is a figure."""
    out: dict[int, tuple[str, ...]] = {}
    lines = [(m.start(), m.group()) for m in re.finditer(r"[^\n]+", passage)]
    i = 0
    while i < len(lines):
        start, line = lines[i]
        cells = _cells(line) if " | " in line else []
        j = i + 1
        while len(cells) >= 2 and j < len(lines) and " | " in lines[j][1] and len(_cells(lines[j][1])) == len(cells):
            j += 1
        if len(cells) >= 2 and j - i >= 2 and not any(re.search(r"\d", c) for c in cells[1:]):
            header = tuple(cells)
            out[start + len(line) - len(line.lstrip())] = ()
            for row_start, row in lines[i + 1 : j]:
                out[row_start + len(row) - len(row.lstrip())] = header
        i = max(j, i + 1)
    return out


def read_row(row: str, header: tuple[str, ...]) -> str:
    """A table row read with its column headers: "Munich, Frankfurt, Hamburg: Per diem, full day
    EUR 28; Hotel limit per night EUR 170"."""
    cells = _cells(row)
    if len(cells) != len(header):
        return ""
    pairs = [f"{h} {c}" for h, c in zip(header[1:], cells[1:], strict=True) if c]
    return f"{cells[0]}: " + "; ".join(pairs)


def focus_row(reading: str, question: str) -> str:
    """A row's reading cut to the columns the question asks about (all of them when it names none)."""
    head, _, rest = reading.partition(": ")
    parts = rest.split("; ")
    asked = content_terms(question)
    shared = [len(content_terms(p) & asked) for p in parts]
    most = max(shared, default=0)
    wanted = [p for p, k in zip(parts, shared, strict=True) if most and k == most]
    return f"{head}: " + "; ".join(wanted or parts)


# A row written as its columns' names and values: "Destination: Munich; Hotel limit per night: EUR 170".
_NAMED_PAIR = re.compile(r"^[^:;\n]{1,60}:\s*[^;\n]+(?:;\s*[^:;\n]{1,60}:\s*[^;\n]*){2,}$")


def named_row(sentence: str) -> str:
    """The sentence when it is a table row of named values (at least three), else ""."""
    return sentence.strip() if _NAMED_PAIR.match(sentence.strip()) else ""


def focus_named_row(row: str, question: str) -> str:
    """A row of named values cut to its first value and the ones the question asks about."""
    pairs = [p.strip() for p in row.split(";") if p.strip()]
    asked = content_terms(question)
    shared = [len(content_terms(p.split(":", 1)[0]) & asked) for p in pairs[1:]]
    most = max(shared, default=0)
    wanted = [p for p, k in zip(pairs[1:], shared, strict=True) if most and k == most]
    return "; ".join([pairs[0], *(wanted or pairs[1:])])


# Reference lists, links and page furniture: never an answer, whatever words they share.
_BOILERPLATE = re.compile(
    r"retrieved\s+(?:on\s+)?\d|archived\s+from\s+the\s+original|\bisbn\b|\bdoi:|jump to (?:navigation|search)|"
    r"all rights reserved|cookie (?:policy|settings)|privacy policy|terms of (?:use|service)|\[edit\]",
    re.IGNORECASE,
)
_URL = re.compile(r"(?:https?://|www\.)\S+|\b\S+\.(?:com|org|net|gov|edu|co\.uk)/\S*", re.IGNORECASE)
_CITATION_PARTS = re.compile(r"\(\d{4}[a-z]?\)|\b\d+\s*\(\d+\)\s*:\s*\d+|\bet al\.|\b[A-Z][a-z]+,\s+[A-Z]\.")


def is_boilerplate(sentence: str) -> bool:
    """A reference-list entry, a link, or page furniture ("Archived from the original on 7 January",
    "w.bbc.co.uk/news/health-51009328)", "Smith J, et al. (2019) Nature 12(3): 45-67")."""
    if _BOILERPLATE.search(sentence):
        return True
    urls = sum(len(m.group()) for m in _URL.finditer(sentence))
    if urls and urls > 0.25 * len(sentence.strip()):
        return True
    return len(_CITATION_PARTS.findall(sentence)) >= 2


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
            and all(c.n != x.n and not same_sentence(c.span.text, x.span.text) for x in chosen)
        ):
            chosen.append(c)
    return chosen


def second_witness(
    ranked: list[Candidate], hits: list[Hit], cited: set[int], wanted: dict[int, str]
) -> list[Candidate]:
    """For a question that needs two documents (a second name, a bridge), the best-ranked sentence of
    each document in `wanted` (doc id -> the name it was wanted for) that the answer does not cite
    yet (`cited`: doc ids) and that states that name.

    "Who is older, X or Y?" is answered by one sentence about X and one about Y; "the population of
    the city where X lies" by X's passage and the city's. The first document's sentences alone
    cite one of the two."""
    have = set(cited)
    out = []
    for doc, name in wanted.items():
        if doc in have:
            continue
        low = name.lower()
        own = [c for c in ranked if hits[c.n - 1].chunk.doc_id == doc]
        # The best sentence stating the name; in a document about the name (its title or file
        # name), its best sentence, which may call it otherwise ("Ibn ʿArabī", "he").
        about = bool(own) and is_about(hits[own[0].n - 1], Entity(name, "name"))
        pick = next((c for c in own if low in (c.reading or c.span.text).lower()), own[0] if about else None)
        if pick is not None:
            out.append(pick)
            have.add(doc)
    return out


def figures_witness(
    ranked: list[Candidate], hits: list[Hit], chosen: list[Candidate], rows: set[int], meanings: list[str], most: int
) -> list[Candidate]:
    """For a question that asks for a measure, up to `most` sentences or table rows with figures from
    the passages holding its line items (`rows`: their chunk ids) in the document of the answer's
    best sentence (`chosen[0]`), those naming most of the line items' words first ("Operating
    income 6,098 5,802 4,237" for an operating margin).

    The question's own words rank the prose that discusses the measure; the figures it is computed
    from are in the statement table, which an extractive answer would otherwise never quote."""
    wanted = content_terms(" ".join(meanings))
    # A line item is a phrase ("operating income", "total revenue"): a row naming one whole comes
    # before a row that shares single words with several ("Total liabilities and equity").
    phrases = {" ".join(pair) for m in meanings for pair in itertools.pairwise(_words(m))}
    seen = [x.span.text for x in chosen]
    doc = hits[chosen[0].n - 1].chunk.doc_id if chosen else None
    scored = []
    for i, c in enumerate(ranked):
        text = c.reading or c.span.text
        chunk = hits[c.n - 1].chunk
        if chunk.id not in rows or chunk.doc_id != doc or not any(ch.isdigit() for ch in text):
            continue
        named = len(content_terms(text) & wanted)
        if named:
            joined = " ".join(_words(text))
            whole = sum(1 for p in phrases if re.search(rf"\b{p}\b", joined))
            scored.append((-whole, -named, i, c))
    out: list[Candidate] = []
    for *_, c in sorted(scored, key=lambda t: t[:3]):
        if len(out) >= most:
            break
        if all(not same_sentence(c.span.text, t) for t in seen):
            out.append(c)
            seen.append(c.span.text)
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def same_sentence(a: str, b: str) -> bool:
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
