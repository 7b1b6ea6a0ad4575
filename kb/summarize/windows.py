"""Passages shown to the model, and windows of them planned to fit its context.

A document's chunks become passages citing their pages (or sections); repeated overlap and running
headers are not shown; passages too long for a prompt are cut at sentences; consecutive passages are
packed into windows within the token budget. The sentences of a window that may be quoted as points
are found here too."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ingest.types import Chunk
from kb.guard import injection_spans, sanitize
from kb.summarize.points import Cite, page_label
from kb.summarize.sentences import MAX_POINT_WORDS, MIN_TERMS, display_text, drop_heading_lines, usable
from kb.text import Span, content_terms, split_sentences

MIN_CENTRAL_TERMS = 4
_DANGLING = re.compile(r"(?:it|its|this|these|they|their|he|she|such|that|those)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Passage:
    """A numbered source shown to the model: a chunk (or piece of one), a point, or a file summary."""

    shown: str  # what the model reads
    evidence: str  # what a claim drawn from it must be backed by
    label: str  # where it is, as the model is told
    cite: Cite
    order: int
    offset: int | None = None  # where `evidence` starts in the document text, when it is a slice of it
    clean_start: bool = True  # False when it may begin mid-sentence (a chunk cut inside the overlap)
    clean_end: bool = True  # False when its last sentence may go on in the next chunk

    def fragments(self) -> list[str]:
        """Its first and last sentences, flattened, when they may be pieces of sentences cut by chunking."""
        spans = split_sentences(self.evidence)
        ends = ([spans[0]] if not self.clean_start else []) + ([spans[-1]] if not self.clean_end else [])
        return [" ".join(x.text.split()) for x in ends if spans]

    def is_fragment(self, index: int, count: int) -> bool:
        """Whether sentence `index` of `count` may be a piece of a sentence cut by chunking."""
        return (index == 0 and not self.clean_start) or (index == count - 1 and not self.clean_end)


def chunk_passages(chunks: list[Chunk]) -> list[Passage]:
    """A document's chunks as passages citing their pages, or their sections when there are none."""
    out = []
    prev_end = -1
    prev: Chunk | None = None
    furniture = running_lines(chunks)
    for i, c in enumerate(chunks):
        if c.page_start:
            pages = tuple(range(c.page_start, (c.page_end or c.page_start) + 1))
            cite, where = Cite(pages=pages, spans=((c.start, c.end),)), page_label(pages)
        else:
            section = " > ".join(c.heading_path[1:] or c.heading_path) or f"part {c.ordinal + 1} of {len(chunks)}"
            cite, where = Cite(sections=(section,), spans=((c.start, c.end),)), f"§ {section}"
        skip = overlap_skip(c, prev_end)
        text = c.text[skip:]
        shown = "\n".join(x for x in text.split("\n") if _line_shape(x) not in furniture) if furniture else text
        shown = sanitize(shown)  # document text is data: what addresses the model is not shown to it
        clean = skip > 0 or prev is None or c.start >= prev.end or _sentence_ends_at(prev, c.start)
        nxt = chunks[i + 1] if i + 1 < len(chunks) else None
        clean_end = nxt is None or nxt.start >= c.end or c.text.rstrip()[-1:] in ".!?:"
        out.append(Passage(shown.strip() or text, text, where, cite, c.ordinal, c.start + skip, clean, clean_end))
        prev_end, prev = max(prev_end, c.end), c
    return out


def _sentence_ends_at(prev: Chunk, offset: int) -> bool:
    """Whether the document text at `offset` (inside `prev`) follows a sentence end or a blank line."""
    before = prev.text[: max(0, offset - prev.start)]
    kept = before.rstrip()
    return not kept or kept[-1] in ".!?:" or before[len(kept) :].count("\n") >= 2


def _line_shape(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.lower().split()))


def running_lines(chunks: list[Chunk]) -> set[str]:
    """Short lines found in many chunks (page headers and footers, digits ignored): not shown to the model,
    which otherwise copies them as points."""
    seen: dict[str, int] = {}
    for c in chunks:
        for shape in {_line_shape(x) for x in c.text.split("\n") if 0 < len(x.split()) <= 15}:
            seen[shape] = seen.get(shape, 0) + 1
    return {k for k, n in seen.items() if n >= 3 and n >= 0.2 * len(chunks)}


def overlap_skip(c: Chunk, prev_end: int) -> int:
    """Characters to skip at a chunk's start: whole sentences the previous chunk already holds.

    Chunks overlap so that retrieval never splits a fact; here the overlap would show the model
    a sentence twice, and usually the tail of one first, which it then copies as a "point".
    """
    skip = 0
    for s in split_sentences(c.text):
        if c.start + s.end > prev_end:
            return s.start if skip else 0
        skip = s.end
    return 0  # the whole chunk repeats the previous one: keep it rather than show nothing


def format_passage(n: int, p: Passage) -> str:
    """How a passage is shown to the model."""
    return f"[{n}] ({p.label})\n{p.shown}"


def plan_windows(costs: list[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive [start, end) ranges covering every item, each summing to at most `budget` when it can."""
    windows: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, cost in enumerate(costs):
        if i > start and used + cost > budget:
            windows.append((start, i))
            start, used = i, 0
        used += cost
    if start < len(costs):
        windows.append((start, len(costs)))
    return windows


def split_to_fit(p: Passage, budget: int, count: Callable[[str], int]) -> list[Passage]:
    """A passage too long for one prompt, cut into sentence runs that fit (sentences cut as a last resort)."""
    if count(format_passage(99, p)) <= budget:
        return [p]
    header = count(format_passage(99, Passage("", "", p.label, p.cite, p.order))) + 2
    room = max(8, budget - header)
    pieces: list[tuple[int, int]] = []  # char ranges of p.evidence
    for s in split_sentences(p.evidence):
        for a, b in _cut(p.evidence, s.start, s.end, room, count):
            if pieces and count(p.evidence[pieces[-1][0] : b]) <= room:
                pieces[-1] = (pieces[-1][0], b)
            else:
                pieces.append((a, b))
    base = p.offset
    return [
        Passage(
            p.evidence[a:b],
            p.evidence[a:b],
            p.label,
            p.cite,
            p.order,
            None if base is None else base + a,
            p.clean_start or a > 0,
            p.clean_end or b < len(p.evidence.rstrip()),
        )
        for a, b in pieces
    ]


def _cut(text: str, a: int, b: int, room: int, count: Callable[[str], int]) -> Iterator[tuple[int, int]]:
    # A "sentence" longer than a whole prompt (a table, text without punctuation): halve it.
    if count(text[a:b]) <= room or b - a < 16:
        yield a, b
        return
    mid = text.rfind(" ", a, (a + b) // 2) + 1 or (a + b) // 2
    mid = mid if a < mid < b else (a + b) // 2
    yield from _cut(text, a, mid, room, count)
    yield from _cut(text, mid, b, room, count)


def quotable_sentences(window: list[Passage]) -> list[tuple[Passage, Span]]:
    """Sentences fit to stand alone as a point; running headers and footers (repeated lines) left out."""
    found = [
        (p, s)
        for p in window
        for i, s, n in _numbered_sentences(p)
        if usable(s.text)
        and len(content_terms(s.text)) >= MIN_CENTRAL_TERMS
        and not p.is_fragment(i, n)
        and not injection_spans(s.text)
    ]
    shape = [_line_shape(s.text) for _, s in found]
    seen = {k: shape.count(k) for k in shape}
    found = [f for f, k in zip(found, shape, strict=True) if seen[k] == 1 or len(k.split()) > 15]
    # Whole sentences read best; table rows and captions only when there is nothing else.
    whole = [(p, s) for p, s in found if s.text.rstrip("\"')]")[-1:] in ".!?"]
    # "It applies to all staff." means little out of its context: quote such sentences last.
    standalone = [(p, s) for p, s in whole if not _DANGLING.match(display_text(s.text))]
    if len(standalone) >= 3 or (standalone and len(standalone) == len(whole)):
        return standalone
    if whole or found:
        return whole or found
    # A page of headings, lists or tables: its most telling line beats saying nothing.
    return [
        (p, s)
        for p in window
        for i, s, n in _numbered_sentences(p)
        if len(content_terms(s.text)) >= MIN_TERMS
        and len(s.text.split()) <= MAX_POINT_WORDS
        and not p.is_fragment(i, n)
        and not injection_spans(s.text)
    ]


def _numbered_sentences(p: Passage) -> Iterator[tuple[int, Span, int]]:
    spans = split_sentences(p.evidence)
    for i, s in enumerate(spans):
        yield i, drop_heading_lines(s), len(spans)


def narrow(p: Passage, start: int, end: int) -> Cite:
    """The passage's citation narrowed to one span of its evidence (offsets into the document text)."""
    if p.offset is None:
        return p.cite
    return Cite(p.cite.pages, p.cite.sections, ((p.offset + start, p.offset + end),), p.cite.files)
