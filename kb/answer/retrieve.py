"""Evidence retrieval for an answer: the passages closest to the question, then the ones a
single search misses.

- A name of the question that no retrieved passage mentions ("Who is older, Ferdi Taygan or
  Mahesh Bhupathi?" finds one player's page, not the other's) is looked up on its own.
- A name that the best evidence brings in and the question does not (the bridge of a multi-hop
  question: "the city in which Kirton End is located" -> Boston) is looked up in a second hop,
  so both passages can be read and cited.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from kb.answer.entities import Entity, bridge_entities, extract_entities, mentions
from kb.retrieval import Hit

Search = Callable[[str, int], list[Hit]]
SearchIn = Callable[[str, int, set[int]], list[Hit]]  # a search among the given documents only
ROUTE_MOST_DOCUMENTS = 10  # a name that more documents are about than this is no route
ROUTED = 2  # passages the question's search adds from the documents about a name of the question


def context_of(hit: Hit) -> str:
    """What a passage says about itself and its document: its text, headings, title and file name."""
    c = hit.chunk
    return "\n".join([c.text, " ".join(c.heading_path), c.title, c.path.rsplit("/", 1)[-1]])


@dataclass
class Evidence:
    """The passages an answer is made from."""

    hits: list[Hit]  # the passages read for the answer, best first, then the ones hops added
    pool: list[Hit]  # the first search's wider list (the refusal gate judges the document margin on it)
    names: list[Entity] = field(default_factory=list)  # the question's names
    hops: list[str] = field(default_factory=list)  # what later searches looked up
    first: int = -1  # how many of `hits` the first search gave (the rest came from hops); -1: all
    meanings: list[str] = field(default_factory=list)  # the line-item words the question's measures are read as
    line_items: set[int] = field(default_factory=set)  # chunk ids that `line_item_hop` added
    looked_up: dict[int, str] = field(default_factory=dict)  # chunk id -> the name a hop added it for
    routed: set[int] = field(default_factory=set)  # ids of the documents about a name that `route` searched

    def is_about_hop(self, hit: Hit) -> bool:
        """Whether a passage was added by a hop for its document's own subject (the page of the
        name looked up: "Boston, Lincolnshire" for Boston) or for the line items of a measure;
        not one that merely mentions the name ("the main entrance" for Main)."""
        cid = hit.chunk.id
        if cid in self.line_items:
            return True
        name = self.looked_up.get(cid)
        return name is not None and is_about(hit, Entity(name, "name"))

    def __post_init__(self) -> None:
        if self.first < 0:
            self.first = len(self.hits)

    def mentioned(self, entity: Entity) -> bool:
        """Whether a passage of the evidence (or its document's title or file name) names `entity`."""
        return any(mentions(entity, context_of(h)) for h in self.hits)


def subject(title: str, path: str) -> str:
    """What names a document's subject: its title and file name."""
    return title + " " + path.rsplit("/", 1)[-1]


def is_about(hit: Hit, entity: Entity) -> bool:
    """Whether the passage's document is about `entity`: its title or file name names it."""
    return mentions(entity, subject(hit.chunk.title, hit.chunk.path))


def _add(evidence: Evidence, found: list[Hit], wanted: Callable[[Hit], bool]) -> bool:
    have = {h.chunk.id for h in evidence.hits}
    for h in found:
        if h.chunk.id not in have and wanted(h):
            evidence.hits.append(h)
            return True
    return False


def _mentioning(entity: Entity) -> Callable[[Hit], bool]:
    return lambda h: mentions(entity, context_of(h))


def gather(
    search: Search,
    question: str,
    k: int,
    pool_size: int,
    meanings: list[str] | None = None,
    about: Callable[[Entity], set[int]] | None = None,
    search_in: SearchIn | None = None,
) -> Evidence:
    """The `k` best passages for the question, plus the best of the question's own search among
    the documents about a name of it (`route`, when `about` and `search_in` are given), plus one
    for each name of the question that none of them mentions
    (searched for by the name and the question together), plus the passages that hold the line
    items of the measures the question asks for (`meanings`, see `line_item_hop`)."""
    pool = search(question, max(k, pool_size))
    names = extract_entities(question)
    hits = list(pool[:k])
    routed: set[int] = set()
    if about is not None and search_in is not None:
        hits, routed = route(search_in, question, hits, names, about)
    evidence = Evidence(hits, pool, names)
    evidence.routed = routed
    for entity in evidence.names:
        if evidence.mentioned(entity):
            continue
        if _add(evidence, search(f"{entity.text} {question}", 3), _mentioning(entity)):
            evidence.hops.append(entity.text)
            evidence.looked_up[evidence.hits[-1].chunk.id] = entity.text
    if meanings:
        line_item_hop(search, question, evidence, meanings, search_in=search_in)
    return evidence


def route(
    search_in: SearchIn, question: str, hits: list[Hit], names: list[Entity], about: Callable[[Entity], set[int]]
) -> tuple[list[Hit], set[int]]:
    """The hits with the best passages of the question's own search among the documents about a
    name of the question added; and the ids of those documents.

    A question that names its subject ("Roughly how many times has JnJ sold its inventory in
    FY2022?") is about the documents whose title or file name names it (JOHNSON_JOHNSON_2022_10K).
    When the search found none of them (its words matched another company's filing better), their
    passages come first, and what else it found is kept only where it names a name of the
    question. A name that many documents are about (a company name on every page of an intranet)
    routes nothing.
    """
    routed: set[int] = set()
    missed = False
    for entity in names:
        docs = about(entity)
        if not docs or len(docs) > ROUTE_MOST_DOCUMENTS:
            continue
        routed |= docs
        have = {h.chunk.id for h in hits}
        # Within its own documents the name says nothing, and keyword search would favour the
        # passages that spell it ("www.jnj.com") over the ones that answer.
        asked = re.sub(rf"(?i)\b{re.escape(entity.text)}(?:'s|’s)?(?!\w)", " ", question)
        found = [h for h in search_in(asked, ROUTED + len(have), docs) if h.chunk.id not in have][:ROUTED]
        if any(h.chunk.doc_id in docs for h in hits):
            hits = hits + found
        else:
            hits, missed = found + hits, missed or bool(found)
    if missed:
        hits = [h for h in hits if h.chunk.doc_id in routed or any(mentions(e, context_of(h)) for e in names)]
    return hits, routed


def line_item_hop(
    search: Search,
    question: str,
    evidence: Evidence,
    meanings: list[str],
    each: int = 2,
    search_in: SearchIn | None = None,
) -> list[Hit]:
    """Passages for the question read with the words of its measures (kb.answer.glossary: "operating
    margin" -> operating income, total revenue), `each` per measure, from the documents already in
    the evidence when they hold any, appended to the evidence; returns them. The statement table
    that holds the figures rarely shares the question's words."""
    query, most = " ".join([question, *meanings]), 2 * each * len(meanings) + len(evidence.hits)
    found = search(query, most)
    have = {h.chunk.id for h in evidence.hits}
    if (
        evidence.routed
        and search_in
        and not any(h.chunk.doc_id in evidence.routed for h in found if h.chunk.id not in have)
    ):
        found = search_in(query, most, evidence.routed)  # the named company's own tables, not another's
    # The figures of the documents the question's own search found (the company it names), when
    # they hold any: another filing's table lists the same line items. Documents about a name of
    # the question (`route`) come before the rest.
    docs = evidence.routed or {h.chunk.doc_id for h in evidence.hits}
    new = [h for h in found if h.chunk.id not in have]
    added = ([h for h in new if h.chunk.doc_id in docs] or new)[: each * len(meanings)]
    if added:
        evidence.hits.extend(added)
        evidence.hops.extend(meanings)
        evidence.meanings.extend(meanings)
        evidence.line_items.update(h.chunk.id for h in added)
    return added


def bridge_hop(search: Search, question: str, evidence: Evidence, best_text: str, most: int = 2) -> list[Hit]:
    """Passages about the names the best evidence brings in (`bridge_entities`), one per name,
    appended to the evidence; returns them."""
    added: list[Hit] = []
    for name in bridge_entities(best_text, question, most):
        entity = Entity(name, "name")
        found = search(f"{name} {question}", 5)
        # A passage whose document is about the name comes first ("Boston, Lincolnshire"), then
        # one that mentions it in another document.
        about = lambda h, e=entity: is_about(h, e)
        docs = {h.chunk.doc_id for h in evidence.hits}
        other = lambda h, e=entity, d=docs: h.chunk.doc_id not in d and mentions(e, context_of(h))
        if _add(evidence, found, about) or _add(evidence, found, other):
            evidence.hops.append(name)
            evidence.looked_up[evidence.hits[-1].chunk.id] = name
            added.append(evidence.hits[-1])
    return added
