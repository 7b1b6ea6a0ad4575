"""Names in questions and passages: what a question is about ("General Mills", "JnJ", "Kirton
End"), whether a passage or document mentions it, and the new names a passage brings in (the
bridge of a multi-hop question). Pure functions, no model."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.text import STOPWORDS, normalize

# Words that start questions and instructions, capitalised only because they come first
# ("According to...", "Using the cash flow statement, ...").
_LEADING = frozenset(
    """according among answer are based calculate can compare could define describe did do does explain
    find following give given has have how if in is list looking name on please roughly show state tell
    using was were what when where which who whom whose why will would considering assuming provide
    identify summarize summarise by for from of the a an as at with""".split()  # noqa: SIM905
)
# Capitalised words that name times, units and document parts rather than what a question is about.
_GENERIC = frozenset(
    """fy q1 q2 q3 q4 h1 h2 usd eur gbp january february march april may june july august september
    october november december monday tuesday wednesday thursday friday saturday sunday i ii iii iv
    table figure section page appendix note""".split()  # noqa: SIM905
)
# Lower-case words inside a name ("Bank of the West", "Ludwig van Beethoven"); "the" only after "of".
_CONNECTORS = frozenset({"of", "the", "&", "de", "da", "van", "von", "der", "la", "le", "du", "al", "bin"})
_TOKEN = re.compile(r"[\w&][\w&.'’-]*", re.UNICODE)
_QUOTED = re.compile(r"[\"“”]([^\"“”]{2,60})[\"“”]")


@dataclass(frozen=True)
class Entity:
    """A name of the question: `kind` is "name" (capitalised words), "acronym" (JnJ, JPM, PPNE) or
    "quoted" (a phrase in quotes)."""

    text: str
    kind: str


def _is_capitalised(token: str) -> bool:
    return token[:1].isupper() or (token[:1].isdigit() and any(ch.isupper() for ch in token))


def _is_acronym(token: str) -> bool:
    letters = [ch for ch in token if ch.isalpha()]
    return 2 <= len(letters) <= 6 and sum(ch.isupper() for ch in letters) >= 2 and not token.isdigit()


def _clean(token: str) -> str:
    token = token.rstrip(".'’-")
    return re.sub(r"['’]s$", "", token)


def _sentence_starts(text: str) -> set[int]:
    """Token positions where a sentence or clause starts (after . ? ! : or an opening quote)."""
    return {0} | {m.end() for m in re.finditer(r"[.?!:;]\s+|\(\s*", text)}


def extract_entities(text: str) -> list[Entity]:
    """The names a text mentions, longest first within a run ("American Water Works", not "Water").

    A capitalised word at the start of a sentence counts only when it is not a question or
    instruction word; times, currencies and units (FY2022, Q2, USD) are not names.
    """
    text = normalize(text)
    starts = _sentence_starts(text)
    out: list[Entity] = []
    seen: set[str] = set()

    def add(words: list[str]) -> None:
        while words and words[-1].lower() in _CONNECTORS:
            words = words[:-1]
        while words and words[0].lower() in _CONNECTORS | _LEADING:
            words = words[1:]
        if not words:
            return
        phrase = " ".join(words)
        key = phrase.lower()
        if key in seen or key in STOPWORDS or _generic(phrase):
            return
        seen.add(key)
        kind = "acronym" if len(words) == 1 and _is_acronym(words[0]) else "name"
        out.append(Entity(phrase, kind))

    for m in _QUOTED.finditer(text):
        out.append(Entity(m.group(1).strip(), "quoted"))
        seen.add(m.group(1).strip().lower())
    run: list[str] = []
    prev_end = 0
    for m in _TOKEN.finditer(text):
        token = _clean(m.group())
        first = m.start() in starts
        if run and text[prev_end : m.start()].strip():  # punctuation between words ends a name
            add(run)
            run = []
        prev_end = m.start() + len(m.group())
        if token and _generic(token):
            if run:
                add(run)
            run = []
            continue
        if token and _is_capitalised(token) and not (first and token.lower() in _LEADING | STOPWORDS):
            run.append(token)
            continue
        if run and token.lower() in _CONNECTORS and not first and (token.lower() != "the" or run[-1].lower() == "of"):
            run.append(token)
            continue
        if run:
            add(run)
        run = []
    if run:
        add(run)
    return out


def _generic(phrase: str) -> bool:
    """FY2022, Q2, USD, a month, a bare number: not what a question is about."""
    low = phrase.lower()
    if low in _GENERIC or re.fullmatch(r"(fy|q[1-4]|h[12])?\s*'?\d{2,4}", low):
        return True
    return all(w in _GENERIC or w.isdigit() or re.fullmatch(r"fy\d{2,4}", w) for w in low.split())


def _initials(words: list[str]) -> str:
    return "".join(w[0] for w in words if w and w[0].isalpha()).lower()


# What may stand between the words of a name: spaces and punctuation, and a possessive the
# question dropped ("Darling Waterfront Pavilion" for "Darling's Waterfront Pavilion").
_JOINS = re.compile(r"(?:['’]s|\ss)?[\s._'’-]+")


def mentions(entity: Entity, text: str) -> bool:
    """Whether a text names the entity: the phrase itself (any case, a possessive 's allowed), or
    for an acronym, capitalised words whose initials spell it ("JnJ": "Johnson & Johnson",
    "JOHNSON_JOHNSON")."""
    text = normalize(text).replace("_", " ")  # file names: "JOHNSON_JOHNSON_2022_10K.pdf"
    # Words joined by any run of spaces or punctuation: "P. J. O'Rourke", "P J O'Rourke" and the
    # file name "P_J_O_Rourke.md" name the same person.
    parts = [re.escape(w) for w in _JOINS.split(normalize(entity.text)) if w]
    if not parts:
        return False
    phrase = _JOINS.pattern.join(parts)
    if re.search(rf"(?<![\w]){phrase}(?![\w])", text, re.IGNORECASE):
        return True
    if entity.kind != "acronym":
        return False
    target = "".join(ch for ch in entity.text if ch.isupper()).lower()
    if len(target) < 2:
        return False
    words = [w for w in re.split(r"[^\w]+", text) if w]
    caps = [w for w in words if w[:1].isupper()]
    for i in range(len(caps)):
        for j in range(i + 2, min(i + len(target), len(caps)) + 1):
            # The capitalised words must be adjacent in the text, not scattered over a page.
            joined = r"[\s&-]+(?:and\s+)?".join(map(re.escape, caps[i:j]))
            if _initials(caps[i:j]) == target and re.search(joined, text):
                return True
    # Or a capitalised word that the acronym begins ("JPM": "JPMorgan").
    return bool(re.search(rf"(?<![\w]){re.escape(entity.text)}[A-Za-z]", text))


def bridge_entities(text: str, question: str, most: int = 2) -> list[str]:
    """Names in `text` (the best evidence) that the question does not name: what a second
    retrieval hop should look up ("the city in which Kirton End is located" -> "Boston")."""
    asked = question.lower()
    out = []
    for e in extract_entities(text):
        if e.kind == "quoted" or e.text.lower() in asked:
            continue
        if any(w.lower() in asked for w in e.text.split() if len(w) > 3):
            continue  # a longer form of a name the question already has
        out.append(e.text)
        if len(out) >= most:
            break
    return out
