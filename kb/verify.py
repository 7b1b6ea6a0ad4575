"""Checking claims against passages: lexical support, citations and best quotes. Pure functions
over the text primitives of kb.text."""

from __future__ import annotations

import re

from kb.text import STOPWORDS, Span, canonical_number, content_terms, normalize, number_words, numbers, split_sentences

# "[1]", "[1, 2]", and the "[Source 1]" / "[source 2; 3]" some instruction-tuned models write.
_CITE = re.compile(
    r"\[(?:(?:sources?|documents?|doc)\s*)?(\d+(?:\s*[,;]\s*(?:(?:sources?|documents?)\s*)?\d+)*)\]", re.I
)
_CITE_AND_SPACE = re.compile(r"\s*" + _CITE.pattern, re.IGNORECASE)
# How models name the documents they read in prose: "Based on the information provided in Document 1, ...",
# "According to documents 2 and 3, ...", "... (Document 2)." The numbers are citations, not claims.
_NAMED = r"(?:the\s+)?(?:documents?|sources?|passages?|context)(?:\s+(?P<ids>\d+(?:\s*(?:,|and|&)\s*\d+)*))?"
_LEAD_IN = re.compile(
    r"^(?:(?:according\s+to|based\s+on|as\s+(?:stated|mentioned|described|shown)\s+in|from|in)\s+"
    r"(?:the\s+)?(?:information|details?|text)?\s*(?:(?:provided|given|found)\s+)?(?:in\s+)?"
    + _NAMED
    + r"(?:\s+(?:provided|given))?\s*[,:]\s*)",
    re.I,
)
_PAREN = re.compile(r"\s*\((?:see\s+|from\s+|in\s+)?" + _NAMED + r"\)", re.I)
_TRAIL = re.compile(
    r",?\s+(?:according\s+to|as\s+(?:stated|mentioned)\s+in|in)\s+" + _NAMED + r"(?=\s*[.!]?\s*$)", re.I
)


def _ids(raw: str | None) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", raw or "")]


def parse_citations(text: str, valid: set[int]) -> tuple[str, list[int]]:
    """Strip citation markers from a sentence ([n], [n, m], [Source n], and prose such as "According
    to Document 2, ..." or "(Document 1)"); return (clean text, valid ids in order)."""
    ids: list[int] = []

    def note(found: list[int]) -> None:
        ids.extend(n for n in found if n in valid and n not in ids)

    for m in _CITE.finditer(text):
        note(_ids(m.group(1)))
    clean = _CITE_AND_SPACE.sub("", text).strip()
    for pattern in (_LEAD_IN, _PAREN, _TRAIL):
        for m in pattern.finditer(clean):
            note(_ids(m.group("ids")))
        clean = pattern.sub("", clean).strip()
    if clean[:1].islower():
        clean = clean[0].upper() + clean[1:]
    return clean, ids


# A figure with a scale word ("$1.8 billion", "2.7 bn") matches a table's figure in thousands or
# millions ("1,834" in a statement "in millions") when it rounds to it at the claim's precision.
_SCALED = re.compile(r"(\d+(?:[.,]\d+)*)\s*(thousand|million|billion|trillion|bn|mn|m|k)\b", re.IGNORECASE)
_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "m": 1e6, "billion": 1e9, "bn": 1e9, "trillion": 1e12}


def _scaled_numbers(claim: str) -> dict[str, tuple[float, float]]:
    """Claim numbers written with a scale word: canonical form -> (value, half a unit of its last digit)."""
    out = {}
    for m in _SCALED.finditer(normalize(claim)):
        raw = m.group(1).replace(",", "")
        try:
            value = float(raw)
        except ValueError:
            continue
        decimals = len(raw.split(".")[1]) if "." in raw else 0
        scale = _SCALE[m.group(2).lower()]
        out[canonical_number(m.group(1))] = (value * scale, 0.5 * 10**-decimals * scale)
    return out


def unbacked_numbers(claim: str, passage: str) -> set[str]:
    """The numbers a claim states in digits that the passage does not: not written the same way
    (`canonical_number`), not spelled out ("6" for "six"), and not the same figure at another scale
    ("1.8 billion" for "1,834" millions)."""
    wanted = numbers(claim)
    if not wanted:
        return set()
    have = numbers(passage) | number_words(passage)
    missing = wanted - have
    if missing:
        scaled = _scaled_numbers(claim)
        values = [float(n) for n in have if re.fullmatch(r"\d+(?:\.\d+)?", n)]
        for n in list(missing):
            if n in scaled:
                value, tol = scaled[n]
                if any(abs(v * k - value) <= tol for v in values for k in (1.0, 1e3, 1e6, 1e9)):
                    missing.discard(n)
    return missing


ECHO_WEIGHT = 0.5  # weight of a claim's word that repeats the question (see joint_support)

# Words that compare or conclude: an answer that rests on two passages ("X is older than Y",
# "Yes, both are American") takes them from neither; they are not asked of the passages.
RELATION_WORDS = frozenset(
    content_terms(
        "yes both neither either also older oldest younger youngest earlier earliest later latest first last "
        "before after more most fewer fewest less least larger largest bigger biggest smaller smallest longer "
        "longest shorter shortest taller tallest higher highest lower lowest greater greatest same different "
        "than compared whereas while whereas"
    )
)


def support(
    claim: str,
    passage: str,
    excuse: frozenset[str] = frozenset(),
    check_numbers: bool = True,
    echoed: frozenset[str] = frozenset(),
) -> float:
    """How well a passage backs a claim, 0-1: share of the claim's content words it contains
    (words in `excuse` are not asked of it).

    A number in the claim that the passage lacks makes the support 0: a wrong figure is the
    most harmful kind of hallucination. A number word of the claim ("six") counts as present when
    the passage writes it in digits.
    """
    return joint_support(claim, [passage], excuse, check_numbers, echoed)


def joint_support(
    claim: str,
    passages: list[str],
    excuse: frozenset[str] = frozenset(),
    check_numbers: bool = True,
    echoed: frozenset[str] = frozenset(),
) -> float:
    """How well passages together back a claim: `support` over their union (a claim of two
    passages, each holding its part). Without `check_numbers`, only words count (to rank the
    passages that may back part of a claim). Words in `echoed` (the question's own, which an
    answer repeats: "vacation days" asked, "annual leave" written) count half: what the claim adds
    to the question is what must be backed."""
    joined = "\n".join(passages)
    if check_numbers and (unbacked_numbers(claim, joined) or swapped_attachment(claim, joined)):
        return 0.0
    terms = content_terms(claim) - excuse
    if _scaled_numbers(claim):
        terms -= set(_SCALE)  # "billion" is the scale of a figure that matched
    if not terms:
        return 0.0
    have = content_terms(joined)
    spelled = number_words(joined) | numbers(joined)
    weight = {t: ECHO_WEIGHT if t in echoed else 1.0 for t in terms}
    hit = sum(weight[t] for t in terms if t in have or t in spelled or (number_words(t) and number_words(t) <= spelled))
    return hit / sum(weight.values())


# Prepositions that attach a value to a thing ("BitLocker on Windows", "EUR 28 for Germany").
_ATTACH = frozenset({"on", "in", "for", "at", "with", "by", "under"})
_ARTICLES = frozenset({"the", "a", "an"})
_TOKEN = re.compile(r"\w+(?:[.,'-]\w+)*")


def _attachments(text: str) -> set[tuple[str, str, str]]:
    """(thing, preposition, value) for each "thing PREP [the] value" of a text, lower-cased."""
    tokens = _TOKEN.findall(text.lower())
    out = set()
    for i, word in enumerate(tokens[:-2]):
        if tokens[i + 1] not in _ATTACH or word in STOPWORDS:
            continue
        j = i + 2 + (tokens[i + 2] in _ARTICLES)
        if j < len(tokens) and tokens[j] not in STOPWORDS:
            out.add((word, tokens[i + 1], tokens[j]))
    return out


def swapped_attachment(claim: str, passage: str) -> str:
    """A pairing the claim makes that the passage makes the other way round, or "".

    "BitLocker on macOS" against "BitLocker on Windows and FileVault on macOS": every word is
    there, but the passage attaches BitLocker to Windows and macOS to FileVault. Small models
    mix up the rows of a list like this; counting words alone cannot see it."""
    said = _attachments(passage)
    for a, prep, b in _attachments(claim) - said:
        if any(x == a and y == prep and z != b for x, y, z in said) and any(
            z == b and y == prep and x != a for x, y, z in said
        ):
            return f"{a} {prep} {b}"
    return ""


_ASKS = re.compile(r"(?i)(who|what|when|where|which|why|how|is|are|do|does|did|can|could|will|would|should|has|have)\b")


def is_question(claim: str) -> bool:
    """A claim phrased as a question (an echoed FAQ line) backs nothing; a statement that merely
    ends with a question mark ("...from the original on 7 January?") is still a statement."""
    stripped = claim.strip()
    if stripped[:2].upper() == "Q:":
        return True
    return stripped.endswith("?") and bool(_ASKS.match(stripped))


def windows(passage: str, size: int = 2) -> list[Span]:
    """Runs of at most `size` consecutive sentences of a passage, as spans of it."""
    sentences = split_sentences(passage) or [Span(passage, 0, len(passage))]
    out = []
    for i in range(len(sentences)):
        for j in range(i, min(i + size, len(sentences))):
            a, b = sentences[i].start, sentences[j].end
            out.append(Span(passage[a:b], a, b))
    return out


def local_support(claim: str, passage: str, window: int = 2, excuse: frozenset[str] = frozenset()) -> float:
    """Like `support`, but the claim must be backed by at most `window` consecutive sentences.

    A claim stitched from words scattered over a passage (a figure from one sentence, the
    subject from another) is what a small model produces when it fails; a real answer is
    stated in one place. A claim phrased as a question backs nothing.
    """
    return best_window(claim, passage, window, excuse)[0]


def best_window(
    claim: str, passage: str, window: int = 2, excuse: frozenset[str] = frozenset(), check_numbers: bool = True
) -> tuple[float, Span | None]:
    """The run of at most `window` sentences of the passage that backs the claim best, with its support."""
    if is_question(claim):
        return 0.0, None
    best: tuple[float, Span | None] = (0.0, None)
    for w in windows(passage, window):
        score = support(claim, w.text, excuse, check_numbers)
        if score > best[0]:
            best = (score, w)
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
