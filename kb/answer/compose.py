"""Composition: the kept sentences become the answer text with `[n]` markers, and each cited
passage a numbered source with the verbatim quote that backs it (and the page that quote lies on)."""

from __future__ import annotations

from kb.answer.attribute import Attributed, Backing
from kb.answer.types import REFUSAL, Answer, Sentence, Source
from kb.retrieval import Hit
from kb.verify import best_quote


def compose(
    question: str, kept: list[Attributed], shown: list[Sentence], hits: list[Hit], mode: str, note: str = ""
) -> Answer:
    """The answer from the kept sentences: sources renumbered 1..m in order of first citation, so
    the answer reads [1], [2]; `shown` is every sentence reported in the JSON (kept or not)."""
    order: list[int] = []
    for a in kept:
        order.extend(n for n in a.sentence.citations if n not in order)
    renum = {old: new for new, old in enumerate(order, start=1)}
    quotes: dict[int, Backing] = {}
    claims: dict[int, list[str]] = {}
    for a in kept:
        for b in a.backing:
            quotes.setdefault(b.n, b)
        for n in a.sentence.citations:
            claims.setdefault(n, []).append(a.sentence.text)
    sources = []
    for old in order:
        hit = hits[old - 1]
        quote = quotes[old].quote if old in quotes else best_quote(" ".join(claims[old]), hit.chunk.text)
        sources.append(Source(renum[old], hit, quote))

    def renumbered(s: Sentence) -> Sentence:
        return Sentence(s.text, tuple(renum[n] for n in s.citations if n in renum), s.supported, s.support)

    # Line breaks inside a sentence come from the page layout; the answer reads as prose.
    text = " ".join(
        " ".join(a.sentence.text.split()) + " " + "".join(f"[{renum[n]}]" for n in a.sentence.citations) for a in kept
    )
    return Answer(question, text, False, mode, [renumbered(s) for s in shown], sources, note=note)


def refusal(question: str, hits: list[Hit], why: str, timings: dict[str, float]) -> Answer:
    """kb declines: the documents do not answer; the closest passages are shown, and why."""
    closest = [Source(i, h, None) for i, h in enumerate(hits[:3], start=1)]
    return Answer(question, REFUSAL, True, "refusal", [], [], closest, note=why, timings=dict(timings))
