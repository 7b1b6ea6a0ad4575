"""Text primitives shared by answers and summaries: sentences (with offsets), content words and
numbers. Pure functions; the rules that use them to check claims are in kb.verify."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

# Words that carry no meaning for matching: dropped from keyword queries (keeping
# OR-queries selective) and from the content words that claims are checked by.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not of off on once only or other our ours ourselves out over own same she should so some
    such than that the their theirs them themselves then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your yours
    yourself yourselves tell please know many much us""".split()  # noqa: SIM905 - a word list reads better
)

# Titles, Latin abbreviations and initials end with a period but not a sentence ("Dr. Weber",
# "Smith et al. (2019)", "e.g. Windows", "J. Smith", "U.S. Army", "Craig v. Boren").
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
        r"v\.",
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


# Hyphens, dashes and minus signs all read as "-": a record of "13-3" is the document's "13–3".
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"))


def normalize(text: str) -> str:
    """The text with every kind of dash as a plain hyphen (same length, so offsets hold)."""
    return text.translate(_DASHES)


def _stem(word: str) -> str:
    w = word.lower()
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def words(text: str) -> list[str]:
    """The words of a text as written (numbers with their separators stay one word)."""
    return _WORD.findall(normalize(text))


def _term(word: str) -> str:
    """A word as compared: a number in canonical form, any other word lower-cased and stemmed."""
    return canonical_number(word) if word[:1].isdigit() and _NUMBER.fullmatch(word) else _stem(word)


def content_terms(text: str) -> set[str]:
    """Lower-cased, lightly stemmed words that carry meaning (numbers canonical)."""
    return {_term(w) for w in words(text) if w.lower() not in STOPWORDS}


def content_words(text: str) -> dict[str, str]:
    """Each content term of `content_terms`, with the first word of the text it comes from."""
    out: dict[str, str] = {}
    for w in words(text):
        if w.lower() not in STOPWORDS:
            out.setdefault(_term(w), w.lower())
    return out


def canonical_number(raw: str) -> str:
    """A number as compared: thousands separators removed, and trailing decimal zeros ("0.30" is
    "0.3", "170.00" is "170"); times ("9:00") and codes stay as written."""
    n = raw.replace(",", "")
    if re.fullmatch(r"\d+\.\d+", n):
        n = n.rstrip("0").rstrip(".")
    return n


def numbers(text: str) -> set[str]:
    """The numbers written in digits, canonical (`canonical_number`), for exact matching."""
    return {canonical_number(n) for n in _NUMBER.findall(normalize(text))}


_UNITS = "zero one two three four five six seven eight nine ten eleven twelve".split()  # noqa: SIM905
_UNITS += "thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()  # noqa: SIM905
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}  # noqa: SIM905
_SCALES = {"hundred": 100, "thousand": 1000}
_NUMBER_WORD = re.compile(
    r"\b(?:(?:" + "|".join(_TENS) + r")(?:[- ](?:" + "|".join(_UNITS[1:10]) + r"))?|" + "|".join(_UNITS) + r")"
    r"(?:\s+(?:hundred|thousand))?\b",
    re.IGNORECASE,
)


def number_words(text: str) -> set[str]:
    """The numbers a text spells out ("twenty-eight" is "28", "six" is "6", "two hundred" is "200")."""
    out = set()
    for m in _NUMBER_WORD.finditer(normalize(text)):
        parts = re.split(r"[- \s]+", m.group().lower())
        value = 0
        for part in parts:
            if part in _SCALES:
                value = max(value, 1) * _SCALES[part]
            else:
                value += _TENS.get(part, _UNITS.index(part) if part in _UNITS else 0)
        out.add(str(value))
    return out
