"""Which sentences may stand as a point, how they are shown, and the model's reply cut into lines."""

from __future__ import annotations

import re

from kb.text import Span, content_terms

MIN_TERMS = 3  # a point with fewer content words says nothing ("Employee Handbook")
MAX_POINT_WORDS = 60  # longer "sentences" are tables or run-ons copied from the page
_BULLET = re.compile(r"^\s*(?:[-*•·]+|\d{1,2}[.)]|(?:key\s+)?point\s*\d*\s*:)\s*", re.IGNORECASE)
_PAGE_REF = re.compile(r"\s*\((?:[^()]*,\s*)?(?:pages?|pp?\.)\s*\d+(?:\s*[-–]\s*\d+)?\)", re.IGNORECASE)
_LEAD_MARK = re.compile(r"^(?:[-*•·]\s*|\(?\d{1,2}[.)]\s+)?(?:\[[ xX]?\]\s*)?(?:[QA]:\s*)?")
_LEADER = re.compile(r"\.\s?\.(?:\s?\.)*\s*\d*\s*$|\.{4,}")
_CITE_AFTER_STOP = re.compile(r"([.!?])\s*((?:\[\d+(?:\s*[,;]\s*\d+)*\]\s*)+)")


def clean_reply(raw: str) -> str:
    """The model's reply as one point per paragraph: list markers and page references removed."""
    lines = []
    for line in raw.splitlines():
        line = _PAGE_REF.sub("", _BULLET.sub("", line)).strip()
        if line:
            # "... leave. [2]" would split the marker off its sentence: move it before the stop.
            lines.append(_CITE_AFTER_STOP.sub(lambda m: f" {m.group(2).strip()}{m.group(1)}", line))
    return "\n\n".join(lines)


def usable(text: str) -> bool:
    """Whether a sentence is worth showing as a point: a whole statement, not a fragment, heading or footer."""
    words = display_text(text).split()
    if len(content_terms(text)) < MIN_TERMS or len(words) > MAX_POINT_WORDS:
        return False
    if not (words[0][0].isupper() or words[0][0].isdigit() or words[0][0] in "\"'(“‘"):
        return False  # starts mid-sentence: the tail of a sentence cut at a chunk boundary
    capitalised = sum(1 for w in words if w[0].isupper() or w[0].isdigit())
    if len(words) <= 8 and capitalised / len(words) >= 0.75:
        return False  # a title, even with a full stop: "The SIEGE OF VICKSBURG."
    if text.count("|") >= 2 or _LEADER.search(text):
        return False  # a table row, or a table-of-contents line with dot leaders
    if words[-1][-1] in ".!":
        return True
    if words[-1][-1] in ":;,?":
        return False  # a lead-in to a list or table, or an FAQ's question: not a statement
    # Without a full stop, a short line or one in Title Case is a heading, a label or an address.
    return len(words) >= 6 and capitalised / len(words) < 0.6


def display_text(text: str) -> str:
    """A sentence as shown: one line, without list, checkbox or Q/A markers."""
    return _LEAD_MARK.sub("", " ".join(text.split()))


def drop_heading_lines(span: Span) -> Span:
    """The span without leading short lines that end in no punctuation (a heading glued to its sentence),
    nor a trailing line that is only the number of the next numbered heading ("1.")."""
    text, start = span.text, span.start
    last = text.rsplit("\n", 1)
    if len(last) == 2 and re.fullmatch(r"\s*\d+(?:\.\d+)*[.)]?\s*", last[1]):
        text = last[0].rstrip()
    if len(text.split()) < 3 * (text.count("\n") + 1):
        return Span(text, start, start + len(text))  # a word or two per line (some PDFs): no headings to see
    for _ in range(2):
        if "\n" not in text:
            break
        first, rest = text.split("\n", 1)
        if len(first.split()) > 8 or first.rstrip()[-1:] in ".!?:;,":
            break
        skipped = len(first) + 1 + (len(rest) - len(rest.lstrip()))
        text, start = rest.lstrip(), start + skipped
    return Span(text, start, start + len(text))
