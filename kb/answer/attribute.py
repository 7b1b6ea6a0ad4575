"""Attribution and verification of a model's answer: the model writes, kb cites.

Each sentence of the answer is tied to the passage sentence(s) that back it: one or two
consecutive sentences of one passage, or, for a claim that rests on two passages (a comparison,
a bridge: "X is older than Y", "the city where X lies has N people"), one such run in each.
A sentence is kept only when that backing holds most of its content words and every number it
states; what nothing backs is dropped. `[n]` markers the model writes are read as hints, never
trusted.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from kb.answer.compare import option_match
from kb.answer.entities import Entity, extract_entities, mentions
from kb.answer.rank import complete_span, table_headers
from kb.answer.types import Candidate, Sentence
from kb.guard import mask
from kb.retrieval import Hit
from kb.text import Span, content_terms, numbers, split_sentences
from kb.verify import (
    RELATION_WORDS,
    is_question,
    joint_support,
    parse_citations,
    support,
    unbacked_numbers,
    windows,
)

SUPPORT_THRESHOLD = 0.6  # share of a sentence's content words its backing must contain
JOINT_THRESHOLD = 0.75  # the same, for a claim backed by two passages together

# Lead-ins small models put before the answer proper ("The answer is: 14 characters.").
_FILLER = re.compile(
    r"^(?:the answer is|answer|the source number is|according to (?:the )?(?:source|document|passage)s? ?\d*|"
    r"based on (?:the )?(?:documents?|sources?|context|passages?)(?: provided)?)\s*[:,]?\s*",
    re.I,
)
_YES_NO = re.compile(r"^(yes|no)\b[,.!]?\s*", re.I)


@dataclass(frozen=True)
class Backing:
    """Where a claim comes from: passage `n` (1-based among the hits), the run of its text quoted."""

    n: int
    quote: Span


@dataclass(frozen=True)
class Attributed:
    """One sentence of the model's answer, checked."""

    sentence: Sentence
    backing: tuple[Backing, ...]
    reason: str = ""  # why it is not supported, when it is not


def _answer_units(raw: str) -> list[str]:
    """The sentences of the model's reply; a bare "Yes." or "No." goes with the sentence after it,
    which is what backs it."""
    units = [s.text for s in split_sentences(raw)]
    out: list[str] = []
    carry = ""
    for u in units:
        if re.fullmatch(r"(?i)(yes|no)[.!]?", u.strip()):
            carry = u.strip()
            continue
        out.append(f"{carry} {u}".strip() if carry else u)
        carry = ""
    if carry:
        out.append(carry)
    return out


def _alternatives(question: str) -> list[str]:
    """The options a choice question offers ("Who is older, X or Y?" -> X, Y), lower-cased."""
    m = option_match(question, "or|and")
    return [m.group(1).lower(), m.group(2).lower()] if m else []


def says_something(text: str, question: str) -> bool:
    """Whether a sentence adds to the question: "The revised definition of pneumonia is." restates
    it and answers nothing. A yes or no, or the choice of one of the options the question offers,
    does answer."""
    if _YES_NO.match(text):
        return True
    if content_terms(text) - content_terms(question) - RELATION_WORDS:
        return True
    low = text.lower()
    options = _alternatives(question)
    return bool(options) and any(low.startswith(o) or low.find(o) == low.find(o.split()[0]) == 0 for o in options)


def _names_backed(names: list[Entity], text: str) -> bool:
    """Every name the claim states is in the backing (or its document's title, file name or headings):
    a right figure under a wrong name ("Munich" for the row of Germany) is still wrong."""
    return all(mentions(e, text) for e in names)


def _runs(
    claim: str, passage: str, context: str, names: list[Entity], check_numbers: bool, echoed: frozenset[str]
) -> tuple[float, Span | None]:
    """The run of the passage (at most two sentences, or a table row read under its headers) that
    backs the claim best and names every name it states."""
    best: tuple[float, Span | None] = (0.0, None)
    if is_question(claim):
        return best
    candidates = [(w, w.text) for w in windows(passage)]
    for start, header in table_headers(passage).items():
        if header:
            end = passage.find("\n", start)
            row = passage[start : len(passage) if end < 0 else end].rstrip()
            candidates.append((Span(row, start, start + len(row)), " | ".join(header) + "\n" + row))
    for span, text in candidates:
        # A passage is read under its document's title and headings ("It was hosted by John
        # Waters." on the page "18th Independent Spirit Awards").
        score = support(claim, text + "\n" + context, RELATION_WORDS, check_numbers, echoed)
        if score > best[0] and _names_backed(names, text + "\n" + context):
            best = (score, span)
    return best


def attribute(
    text: str,
    passages: list[str],
    hints: list[int] | None = None,
    contexts: list[str] | None = None,
    question: str = "",
) -> tuple[float, tuple[Backing, ...]]:
    """The best backing for one claim among the passages (1-based numbers), with its support.

    One passage is tried first: the run of at most two sentences (or a table row under its
    headers) that holds most of the claim. When none holds enough, pairs of passages are tried:
    the best run of one and the run of the other that adds most of what it lacks; both must add a
    word, and together they must hold `JOINT_THRESHOLD` of the claim's words (words that compare
    or conclude excused) and every number. Every name the claim states must be in its backing
    (`contexts`: each passage's title, file name and headings count too). Words the claim repeats
    from the `question` count half. `hints` (the `[n]` the model wrote) win ties.
    """
    echoed = frozenset(content_terms(question))
    claim = _YES_NO.sub("", text).strip() or text
    contexts = contexts or [""] * len(passages)
    names = [e for e in extract_entities(claim) if e.kind != "quoted"]
    singles: list[tuple[float, float, int, Span]] = []  # (support, words-only support, n, run)
    for n, (passage, context) in enumerate(zip(passages, contexts, strict=True), start=1):
        words_score, run = _runs(claim, passage, context, [], False, echoed)
        if run is None or words_score <= 0:
            continue
        score, full_run = _runs(claim, passage, context, names, True, echoed)
        bonus = 1e-6 if hints and n in hints else 0.0
        singles.append((score + bonus, words_score + bonus, n, full_run or run))
    singles.sort(key=lambda t: -t[0])
    if singles and singles[0][0] >= SUPPORT_THRESHOLD:
        score, _, n, span = singles[0]
        return min(1.0, score), (Backing(n, span),)
    best: tuple[float, tuple[Backing, ...]] = (singles[0][0] if singles else 0.0, ())
    best_about = -1
    terms = content_terms(claim) - RELATION_WORDS
    claim_numbers = numbers(claim)
    wanted = terms | claim_numbers
    by_words = sorted(singles, key=lambda t: -t[1])
    pool = by_words[:4]
    for e in names:
        # The page about a name of the claim (else the passage naming it) is a candidate half
        # however few of the other words it holds ("X and Y are both in Istanbul": Y's page, among
        # pages that mention Y and Istanbul).
        pages = [t for t in by_words if mentions(e, contexts[t[2] - 1])]
        naming = [t for t in by_words if mentions(e, passages[t[2] - 1])]
        for holder in (pages or naming)[:1]:
            if holder not in pool:
                pool.append(holder)
    for (_, _, n1, w1), (_, _, n2, _) in itertools.combinations(pool, 2):
        # Each passage's best run for the claim by words, then the other's run that adds most of
        # what it lacks (numbers count as what it lacks too).
        lacking = (terms - content_terms(w1.text)) | (claim_numbers - numbers(w1.text))
        w2 = max(
            windows(passages[n2 - 1]),
            key=lambda w: (
                len(lacking & (content_terms(w.text) | numbers(w.text))),
                len(wanted & (content_terms(w.text) | numbers(w.text))),  # the sentence, not its heading
                -len(w.text),
            ),
        )
        adds = lacking & (content_terms(w2.text) | numbers(w2.text))
        own = wanted & (content_terms(w1.text) | numbers(w1.text))
        if not adds or not own - (content_terms(w2.text) | numbers(w2.text)):
            continue  # both must hold a part the other lacks
        both = "\n".join([w1.text, w2.text, contexts[n1 - 1], contexts[n2 - 1]])
        if not _names_backed(names, both):
            continue
        joint = joint_support(claim, [w1.text, w2.text], RELATION_WORDS, echoed=echoed)
        # Between pairs that hold the claim equally, the one from the documents about its names.
        # (Preferring those pages over a better-holding pair let invented claims through: two pages
        # about the names hold the words of "X is located at a population of 4 mi from Y" too.)
        about = sum(any(mentions(e, contexts[n - 1]) for e in names) for n in (n1, n2))
        if joint >= JOINT_THRESHOLD and (joint, about) > (best[0], best_about):
            best, best_about = (joint, (Backing(n1, w1), Backing(n2, w2))), about
    return best


def verify_answer(raw: str, hits: list[Hit], question: str = "") -> list[Sentence]:
    """The model's answer, sentence by sentence, each attributed and checked (see `check_answer`)."""
    return [a.sentence for a in check_answer(raw, hits, question)]


def check_answer(raw: str, hits: list[Hit], question: str = "") -> list[Attributed]:
    """Split the model's answer into sentences, attribute each to the passages that back it, and
    say which hold.

    `[n]` markers to unknown sources are dropped; a sentence counts as supported when its backing
    holds enough of its content words and all of its numbers, and it says something the question
    does not.
    """
    valid = set(range(1, len(hits) + 1))
    passages = [mask(h.chunk.text) for h in hits]
    contexts = [" ".join([h.chunk.title, h.chunk.path.rsplit("/", 1)[-1], *h.chunk.heading_path]) for h in hits]
    out = []
    for unit in _answer_units(raw):
        text, hints = parse_citations(unit, valid)
        text = _FILLER.sub("", text).strip()
        if not text or not content_terms(text):
            continue
        checked = _check(text, hints, passages, contexts, question)
        main = main_clause(text)
        if not checked.sentence.supported and main != text:
            # "James Fieser received his B.A. from Berea College, which was founded in 1855.":
            # the main clause holds on its own; the clause that nothing backs is dropped.
            trimmed = _check(main, hints, passages, contexts, question)
            checked = trimmed if trimmed.sentence.supported else checked
        out.append(checked)
    return out


# Where a sentence's main clause ends and an added clause begins: ", which ...", ", who ...".
_ADDED_CLAUSE = re.compile(r",\s+(?:which|who|whose|where|while|making|although)\b", re.I)


def main_clause(text: str) -> str:
    """The sentence without a trailing added clause ("X is in Y, which was founded in 1855." ->
    "X is in Y."); the sentence itself when it has none, or when too little would be left."""
    m = _ADDED_CLAUSE.search(text)
    if not m:
        return text
    main = text[: m.start()].rstrip(" ,;:")
    return main + "." if len(content_terms(main)) >= 2 else text


def _check(text: str, hints: list[int], passages: list[str], contexts: list[str], question: str) -> Attributed:
    """One sentence of the answer attributed and judged (`check_answer`)."""
    score, backing = attribute(text, passages, hints, contexts, question)
    cites = tuple(b.n for b in backing)
    reason = ""
    if not backing or score < SUPPORT_THRESHOLD:
        reason = "no passage holds it" if score < 0.3 else "the passages hold only part of it"
        if any(unbacked_numbers(text, p) for p in passages) and not any(
            not unbacked_numbers(text, p) for p in passages
        ):
            reason = "a number it states is in no passage"
    elif not says_something(text, question):
        reason = "it only restates the question"
    supported = not reason
    return Attributed(Sentence(text, cites, supported, score), backing if supported else (), reason)


def document_name(hit: Hit) -> str:
    """What a passage's document is about, by its title or file name, without a qualifier
    ("Boston, Lincolnshire" -> "Boston"; "Zaheer_Khan.md" -> "Zaheer Khan")."""
    c = hit.chunk
    name = c.title or c.path.rsplit("/", 1)[-1].rsplit(".", 1)[0].replace("_", " ")
    return re.split(r"[,(]", name, maxsplit=1)[0].strip(" .:;-")


def names_bridge_document(hit: Hit, tops: str, question: str) -> bool:
    """Whether the best sentences name the passage's document while the question does not: the
    passage is the second hop of a multi-hop question ("When was the cricketer who made his ODI
    debut in the 2000 ICC KnockOut Trophy born?": the top sentence names Zaheer Khan, and Zaheer
    Khan's page says when he was born), whichever search found it."""
    name = document_name(hit)
    if len(content_terms(name)) == 0:
        return False
    entity = Entity(name, "name")
    return mentions(entity, tops) and not mentions(entity, question)


def link_bridge(
    sentence: Attributed, question: str, packed: list[Hit], hits: list[Hit], top: list[Candidate]
) -> Attributed:
    """A sentence backed by a bridge document (`names_bridge_document`) also cites the top sentence
    that names it: the answer rests on both ("Zaheer Khan was born 7 October 1978" on Zaheer Khan's
    page, and on "Zaheer Khan ... made their ODI debuts during the competition")."""
    cited = set(sentence.sentence.citations)
    for b in sentence.backing:
        backing = packed[b.n - 1]
        for c in top:
            hit = hits[c.n - 1]
            span = complete_span(hit.chunk.text, c.span)
            p = next((i for i, h in enumerate(packed, start=1) if h.chunk.id == hit.chunk.id), None)
            if p is None or p in cited or hit.chunk.doc_id == backing.chunk.doc_id:
                continue
            if names_bridge_document(backing, span.text, question):
                s = sentence.sentence
                linked = Sentence(s.text, (*s.citations, p), s.supported, s.support)
                return Attributed(linked, (*sentence.backing, Backing(p, span)), sentence.reason)
    return sentence


def rests_on_top_sentence(
    sentence: Attributed, question: str, packed: list[Hit], hits: list[Hit], top: list[Candidate]
) -> bool:
    """Whether a supported sentence is drawn from `top`, the sentences ranked best for the question
    independently of the model: a quote that backs it overlaps one of them, and what it adds to the
    question (its other words, every number) is mostly in them.

    The second part catches a small model's favourite error: restating the question and
    completing it with a name or figure from a nearby sentence ("The cells that show the
    response are Vero cells" where the top sentence names RoNi/7.1 cells).

    A sentence backed by a passage of a document that the top sentences name and the question
    does not (`names_bridge_document`) rests on them too: it is the bridge's answer.
    """
    text = sentence.sentence.text
    tops = " ".join(complete_span(hits[c.n - 1].chunk.text, c.span).text for c in top)
    if any(names_bridge_document(packed[b.n - 1], tops, question) for b in sentence.backing):
        return True
    added = content_terms(text) - content_terms(question) - RELATION_WORDS
    if added and len(added & content_terms(tops)) / len(added) < SUPPORT_THRESHOLD:
        return False
    if not numbers(text) - numbers(question) <= numbers(tops):
        return False
    for b in sentence.backing:
        hit = packed[b.n - 1]
        for c in top:
            if hits[c.n - 1] is hit and c.span.start < b.quote.end and b.quote.start < c.span.end:
                return True
            # Overlapping passages of one document hold the same sentence: the quote may come from
            # the other one.
            quote, best = " ".join(b.quote.text.split()), " ".join(c.span.text.split())
            if hits[c.n - 1].chunk.doc_id == hit.chunk.doc_id and (best in quote or quote in best):
                return True
    return False
