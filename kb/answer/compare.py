"""Comparisons of dates, checked: "Who was born first, X or Y?" answered "X was born first."
rests on the pages about X and about Y, and the years they give must agree with the choice.

Word checks cannot judge a choice between two options: "Y was born first" holds the same words
as "X was born first". The pages about each option state its year near the top ("X (born 7 June
1974) is ...", "Y is a 1971 film", "Z formed in 1994"), so the choice is read off them.
"""

from __future__ import annotations

import re

from kb.answer.entities import Entity, mentions
from kb.answer.retrieve import is_about
from kb.retrieval import Hit

# What a question compares, and which end of time wins.
_EARLIER = re.compile(r"\b(?:born first|older|oldest|first|earlier|earliest|sooner|before)\b", re.I)
_LATER = re.compile(r"\b(?:younger|youngest|later|latest|more recent(?:ly)?|most recent(?:ly)?|after)\b", re.I)
_DEATH = re.compile(r"\b(?:died|death|dead)\b", re.I)
_YEAR = re.compile(r"(?<![\d,.])(1[0-9]{3}|20[0-9]{2})(?![\d,])")


def option_match(question: str, joiners: str = "or") -> re.Match[str] | None:
    """The two options a question ends with, after a comma, a colon or "between", joined by one
    of `joiners` (a regex alternation: "or", or "or|and" for "Are both X and Y ...?")."""
    return re.search(rf"(?:,|:|\bbetween)\s*([^,?]+?)\s+(?:{joiners})\s+([^,?]+?)\s*\??$", question.strip(), re.I)


def options(question: str) -> tuple[str, str] | None:
    """The two options of a choice question ("Who was born first, X or Y?" -> X, Y)."""
    m = option_match(question)
    if not m:
        return None
    a, b = (re.sub(r"^(?:the)\s+", "", o.strip(" \"'“”‘’"), flags=re.I) for o in m.groups())
    return (a, b) if a and b else None


def direction(text: str) -> str | None:
    """ "earlier" or "later": which end of time a sentence or question picks; None for neither or both."""
    early, late = bool(_EARLIER.search(text)), bool(_LATER.search(text))
    return "earlier" if early and not late else "later" if late and not early else None


def first_year(hits: list[Hit], name: str) -> int | None:
    """The first year the opening passage of the page about `name` states, past its title: a
    person's birth, a film's release, a band's forming."""
    entity = Entity(name, "name")
    pages = sorted((h for h in hits if is_about(h, entity)), key=lambda h: h.chunk.ordinal)
    if not pages:
        return None
    text, title = pages[0].chunk.text.lstrip(), pages[0].chunk.title
    if title and text.startswith(title):
        text = text[len(title) :]
    m = _YEAR.search(text)
    return int(m.group(1)) if m else None


def contradicts(claim: str, question: str, hits: list[Hit]) -> bool:
    """Whether a claim's choice between the two options of a date comparison is the one the pages
    about them contradict. False whenever it cannot tell: not a comparison of dates, a question
    about deaths (the first year of a life is its birth), an option's page or year missing, the
    same year for both, or a claim that names neither option or makes no choice in its own words."""
    pair = options(question)
    asked = direction(question)
    if pair is None or asked is None or _DEATH.search(question):
        return False
    low = claim.lower()
    at = [low.find(o.lower()) if mentions(Entity(o, "name"), claim) else -1 for o in pair]
    named = [i for i in (0, 1) if at[i] >= 0]
    if not named:
        return False
    chosen = min(named, key=lambda i: at[i])  # the option the claim is about: named first
    # The claim's own words must make the choice ("X was born first", "X is older than Y"): a
    # sentence that states one option's date ("Y was born in 1906") chooses nothing.
    says = direction(claim.replace(pair[chosen], "").replace(pair[1 - chosen], ""))
    years = [first_year(hits, o) for o in pair]
    if says is None or years[0] is None or years[1] is None or years[0] == years[1]:
        return False
    earlier = 0 if years[0] < years[1] else 1
    right = earlier if says == "earlier" else 1 - earlier
    return chosen != right
