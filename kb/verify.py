"""Checking claims against passages: sentence splitting, lexical support, best quotes. Pure functions."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from kb.retrieval import STOPWORDS

# Titles, Latin abbreviations and initials end with a period but not a sentence ("Dr. Weber",
# "Smith et al. (2019)", "e.g. Windows", "J. Smith", "U.S. Army").
_NOT_END = "".join(
    rf"(?<!\b{a})"
    for a in (
        r"Dr\.",
        r"Mr\.",
        r"Mrs\.",
        r"Ms\.",
        r"Prof\.",
        r"St\.",
        r"vs\.",
        r"al\.",
        r"e\.g\.",
        r"i\.e\.",
        r"cf\.",
        r"Fig\.",
        r"approx\.",
        r"[A-Z]\.",
    )
)
_SENT_END = re.compile(rf"(?<=[.!?]){_NOT_END}[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n|\n(?=\s*[-*•]\s)|\n(?=#)")
_WORD = re.compile(r"[^\W_]+(?:[.,:/-][^\W_]+)*", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
# "[1]", "[1, 2]", and the "[Source 1]" / "[source 2; 3]" some instruction-tuned models write.
_CITE = re.compile(r"\[(?:sources?\s*)?(\d+(?:\s*[,;]\s*(?:sources?\s*)?\d+)*)\]", re.IGNORECASE)
_CITE_AND_SPACE = re.compile(r"\s*" + _CITE.pattern, re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    """A piece of text with its character offsets in the text it was cut from."""

    text: str
    start: int
    end: int


_LINE = re.compile(r"[^\n]*(?:\n|$)")


def _line_breaks(text: str, a: int, b: int) -> list[int]:
    """Offsets inside text[a:b] where a heading-like or table-row line ends.

    Text from PDFs and tables arrives with headings glued to the next sentence ("Annual
    Leave\nEntitlement\nFull-time employees ..."). A short line without closing punctuation
    followed by a line that starts a new thought is cut off as its own unit; a wrapped line
    of running text (the next line starts in lower case) is left alone.
    """
    cuts = []
    lines = [(m.start() + a, m.group()) for m in _LINE.finditer(text[a:b]) if m.group()]
    for (start, line), (_, nxt) in itertools.pairwise(lines):
        body = line.strip()
        if not body or not nxt.strip():
            continue
        short = len(body.split()) <= 6 or "|" in body
        if (
            short
            and body[-1] not in ".,;:"
            and (nxt.lstrip()[:1].isupper() or nxt.lstrip()[:1].isdigit() or "|" in nxt)
        ):
            cuts.append(start + len(line))
    return cuts


def split_sentences(text: str) -> list[Span]:
    """Sentences (and list items, headings, table rows) with offsets; whitespace trimmed."""
    bounds, pos = [], 0
    for m in _SENT_END.finditer(text):
        bounds.append((pos, m.start()))
        pos = m.end()
    bounds.append((pos, len(text)))
    spans: list[tuple[int, int]] = []
    for a, b in bounds:
        edges = [a, *_line_breaks(text, a, b), b]
        spans.extend(itertools.pairwise(edges))
    out = []
    for a, b in spans:
        seg = text[a:b]
        lead = len(seg) - len(seg.lstrip())
        seg = seg.strip()
        if seg:
            out.append(Span(seg, a + lead, a + lead + len(seg)))
    return out


def _stem(word: str) -> str:
    w = word.lower()
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def content_terms(text: str) -> set[str]:
    """Lower-cased, lightly stemmed words that carry meaning."""
    return {_stem(w) for w in _WORD.findall(text) if w.lower() not in STOPWORDS}


def content_words(text: str) -> dict[str, str]:
    """Each content term of `content_terms`, with the first word of the text it comes from."""
    out: dict[str, str] = {}
    for w in _WORD.findall(text):
        if w.lower() not in STOPWORDS:
            out.setdefault(_stem(w), w.lower())
    return out


def numbers(text: str) -> set[str]:
    """Numbers as written (thousand separators removed), for exact matching."""
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def parse_citations(text: str, valid: set[int]) -> tuple[str, list[int]]:
    """Strip [n] / [n, m] / [Source n] markers from a sentence; return (clean text, valid ids in order)."""
    ids: list[int] = []
    for m in _CITE.finditer(text):
        for part in re.split(r"[,;]", m.group(1)):
            n = int(re.sub(r"\D", "", part))
            if n in valid and n not in ids:
                ids.append(n)
    clean = _CITE_AND_SPACE.sub("", text).strip()
    return clean, ids


def support(claim: str, passage: str) -> float:
    """How well a passage backs a claim, 0-1: share of the claim's content words it contains.

    A number in the claim that the passage lacks makes the support 0: a wrong figure is the
    most harmful kind of hallucination.
    """
    claim_nums = numbers(claim)
    if claim_nums - numbers(passage):
        return 0.0
    terms = content_terms(claim)
    if not terms:
        return 0.0
    return len(terms & content_terms(passage)) / len(terms)


def local_support(claim: str, passage: str, window: int = 2) -> float:
    """Like `support`, but the claim must be backed by at most `window` consecutive sentences.

    A claim stitched from words scattered over a passage (a figure from one sentence, the
    subject from another) is what a small model produces when it fails; a real answer is
    stated in one place. A claim phrased as a question backs nothing.
    """
    stripped = claim.strip()
    if stripped.endswith("?") or stripped[:2].upper() == "Q:":
        return 0.0
    sentences = split_sentences(passage) or [Span(passage, 0, len(passage))]
    best = 0.0
    for i in range(len(sentences)):
        for j in range(i, min(i + window, len(sentences))):
            best = max(best, support(claim, passage[sentences[i].start : sentences[j].end]))
    return best


def best_quote(claim: str, passage: str, max_sentences: int = 2) -> Span:
    """The passage sentence(s) that best support the claim, verbatim, with offsets in the passage."""
    sentences = split_sentences(passage) or [Span(passage, 0, len(passage))]
    terms = content_terms(claim)
    nums = numbers(claim)

    def score(s: Span) -> float:
        st = content_terms(s.text)
        return len(terms & st) + 2 * len(nums & numbers(s.text)) - 0.01 * len(st)

    best_i = max(range(len(sentences)), key=lambda i: score(sentences[i]))
    first = last = best_i
    if max_sentences > 1 and len(sentences) > 1:
        covered = content_terms(sentences[best_i].text)
        # Add the neighbour that contributes most of what the best sentence misses.
        options = [i for i in (best_i - 1, best_i + 1) if 0 <= i < len(sentences)]
        gains = {i: len((terms - covered) & content_terms(sentences[i].text)) for i in options}
        if gains and max(gains.values()) > 0:
            j = max(gains, key=lambda i: gains[i])
            first, last = min(best_i, j), max(best_i, j)
    start, end = sentences[first].start, sentences[last].end
    return Span(passage[start:end], start, end)
