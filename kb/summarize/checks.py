"""The model's lines checked against the passages they cite: kept as points when the passages back
them (as answers are checked, and clause by clause), rejected otherwise."""

from __future__ import annotations

import re

from kb.answer import SUPPORT_THRESHOLD, Sentence, verify_answer
from kb.guard import sanitize
from kb.retrieval import Hit
from kb.store import ChunkRow
from kb.summarize.points import Cite, Point
from kb.summarize.sentences import MIN_TERMS, clean_reply, display_text, drop_heading_lines, usable
from kb.summarize.windows import Passage, narrow
from kb.text import Span, content_terms, split_sentences
from kb.verify import best_quote, support

CLAUSE_THRESHOLD = 0.5  # support each clause of a model's line needs on its own
# Small models describe the source instead of saying what it says; such lines share its words.
_META = re.compile(
    r"^(?:the|this) (?:document|text|passage|source|excerpt|author|(?:first|second|third|last|next) "
    r"(?:sentence|paragraph|source|passage))\b",
    re.IGNORECASE,
)
_CLAUSE = re.compile(
    r",\s+(?=(?:which|and|but|so|because|while|whereas|meaning|including|although)\b)|;\s+|\s+[-–—]\s+"
)


def _bare(text: str) -> str:
    return " ".join(re.findall(r"[^\W\d_]+", text.lower()))


def _as_hits(texts: list[str]) -> list[Hit]:
    # verify_answer reads only hit.chunk.text; wrap passages so answers and summaries share one check.
    return [Hit(ChunkRow(i, 0, "", "", i, t, 0, len(t), None, None, ()), 0.0, i + 1) for i, t in enumerate(texts)]


def verify_points(raw: str, window: list[Passage]) -> tuple[list[tuple[Point, list[int]]], list[tuple[str, float]]]:
    """The model's lines that the passages back, as points with the passage indices they cite; and the rest."""
    hits = _as_hits([p.evidence for p in window])
    kept: list[tuple[Point, list[int]]] = []
    rejected: list[tuple[str, float]] = []
    for s in verify_answer(clean_reply(raw), hits):
        if not usable(s.text) or _META.match(display_text(s.text)):
            continue
        if not s.supported:
            s = _recheck(s, window, hits)
        cited = [n - 1 for n in s.citations]
        if s.supported and _echo(s.text, window, cited):
            continue
        whole = whole_sentence(s.text, window, cited) if s.supported else None
        if whole is not None:
            # The model copied part of a sentence (often one wrapped line of a PDF): a part can
            # say the opposite of the whole, so the point becomes the whole sentence, quoted.
            i, span = whole
            if usable(span.text):
                point = Point(
                    display_text(span.text),
                    narrow(window[i], span.start, span.end),
                    (span.text,),
                    1.0,
                    "extractive",
                    window[i].order,
                )
                kept.append((point, [i]))
        elif s.supported and clauses_backed(s.text, sanitize("\n".join(window[i].evidence for i in cited))):
            kept.append((_generative_point(s, window, cited), cited))
        else:
            rejected.append((s.text, s.support))  # unbacked, or a backed sentence with an invented tail
    return kept, rejected


def _echo(text: str, window: list[Passage], cited: list[int]) -> bool:
    """Whether a line repeats what is not content: a piece of a sentence that chunking cut, or a
    passage's label (its section heading)."""
    flat = " ".join(display_text(text).split()).rstrip(".!")
    if any(flat and flat in part for i in cited for part in window[i].fragments()):
        return True
    return any(_bare(flat) in _bare(p.label) for p in window)


def _generative_point(s: Sentence, window: list[Passage], cited: list[int]) -> Point:
    quotes = [best_quote(s.text, window[i].evidence) for i in cited]
    cites = [narrow(window[i], q.start, q.end) for i, q in zip(cited, quotes, strict=True)]
    return Point(
        display_text(s.text),
        Cite.merge(cites),
        tuple(q.text for q in quotes),
        s.support,
        "generative",
        min(window[i].order for i in cited),
    )


def clauses_backed(text: str, evidence: str) -> bool:
    """Whether each clause with content of its own is backed, not only the sentence as a whole."""
    parts = [p for p in _CLAUSE.split(text) if len(content_terms(p)) >= MIN_TERMS]
    return len(parts) < 2 or all(support(p, evidence) >= CLAUSE_THRESHOLD for p in parts)


def whole_sentence(text: str, window: list[Passage], cited: list[int]) -> tuple[int, Span] | None:
    """(passage index, sentence) when `text` is a verbatim part, not all, of a sentence of a cited passage."""
    flat = " ".join(text.split()).rstrip(".!")
    for i in cited:
        for span in map(drop_heading_lines, split_sentences(window[i].evidence)):
            sentence = " ".join(span.text.split())
            if flat in sentence and len(flat) < len(sentence.rstrip(".!")):
                return i, span
    return None


def _recheck(s: Sentence, window: list[Passage], hits: list[Hit]) -> Sentence:
    """A second chance for a line its cited passages do not back one by one."""
    if len(s.citations) > 1:
        # A line that joins facts from several cited passages: check it against them together.
        joined = sanitize("\n".join(window[n - 1].evidence for n in s.citations))
        score = support(s.text, joined)
        if score >= SUPPORT_THRESHOLD:
            terms = content_terms(s.text)
            cites = tuple(n for n in s.citations if terms & content_terms(window[n - 1].evidence))
            return Sentence(s.text, cites, True, score)
    if s.citations:
        # A wrong [n]: let the passage that backs it best take it, as for an uncited line.
        again = verify_answer(s.text, hits)
        if again and again[0].supported:
            return again[0]
    return s
