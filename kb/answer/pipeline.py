"""The answer pipeline: retrieve (with hops), rank the evidence, gate, generate, attribute and
verify, compose; or refuse."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from kb.answer.attribute import (
    Attributed,
    Backing,
    check_answer,
    document_name,
    link_bridge,
    rests_on_top_sentence,
)
from kb.answer.compare import contradicts
from kb.answer.compose import compose, refusal
from kb.answer.entities import Entity, mentions
from kb.answer.gate import MARGIN_POOL, PARTIAL_BAND, judge
from kb.answer.generate import build_messages, excerpt, is_dont_know, pack_evidence
from kb.answer.glossary import FINANCE, Term, terms_for
from kb.answer.glossary import meanings as glossary_meanings
from kb.answer.rank import (
    SENTENCE_VECTORS,
    SentenceScorer,
    complete_span,
    figures_witness,
    rank_sentences,
    rerank_by_likelihood,
    same_sentence,
    second_witness,
    supporting_sentences,
    term_weights,
)
from kb.answer.retrieve import Evidence, bridge_hop, context_of, gather, is_about, subject
from kb.answer.types import PARTIAL, Answer, Candidate, Sentence
from kb.errors import ModelNotFound
from kb.knowledge import KnowledgeBase
from kb.llm import LLM
from kb.retrieval import Hit, Retriever
from kb.text import content_terms, split_sentences

TOP_SENTENCES = 3  # a model's answer must rest on one of the sentences ranked this high
FIGURE_ROWS = 2  # most table rows an extractive answer quotes for the measures a question asks for
MAX_SENTENCES = 3  # the model is asked for one to three sentences; generation stops when a fourth begins


class _Enough(Exception):
    """Raised from the token callback to stop generation; `at` is where the answer's text ends."""

    def __init__(self, at: int) -> None:
        super().__init__(at)
        self.at = at


def _scorer_or_none(settings, warnings: list[str]) -> SentenceScorer | None:
    """The packaged model as sentence scorer; without it (a user who installed only their own
    GGUF) answers go on without re-scoring, and a warning says so."""
    from kb.llm import load_scorer

    try:
        return load_scorer(settings)
    except ModelNotFound as exc:
        warnings.append(f"sentences are not re-scored ({exc}); set rerank_sentences = 0 to silence this")
        return None


class Answerer:
    """Answers questions from one knowledge base with one LLM (or none, in extractive mode).

    The gate (kb.answer.gate) decides whether the documents answer at all; the model writes the
    answer in plain sentences; kb attributes each sentence to the passages that back it, drops
    what nothing backs, and falls back to quoting the best sentences when the model's answer
    does not hold.
    """

    def __init__(
        self,
        retriever: Retriever,
        llm: LLM | None,
        *,
        top_k: int = 6,
        min_relevance: float = 0.2,
        min_answerability: float = 0.56,
        partial_band: float = PARTIAL_BAND,
        max_answer_tokens: int = 256,
        evidence_tokens: int | None = None,
        excerpt_sentences: int = 0,
        extractive_sentences: int = 3,
        temperature: float = 0.0,
        mode: str = "hybrid",
        scorer: SentenceScorer | None = None,
        rerank_sentences: int = 0,
        hops: bool = True,
        terms: tuple[Term, ...] = FINANCE,
    ) -> None:
        self.retriever = retriever
        self.llm = llm
        self.top_k = top_k
        self.min_relevance = min_relevance
        self.min_answerability = min_answerability
        self.partial_band = partial_band
        self.max_answer_tokens = max_answer_tokens
        self.evidence_tokens = evidence_tokens
        self.excerpt_sentences = excerpt_sentences
        self.extractive_sentences = extractive_sentences
        self.temperature = temperature
        self.mode = mode
        self.scorer = scorer
        self.rerank_sentences = rerank_sentences
        self.hops = hops
        self.terms = terms
        self.warnings: list[str] = []  # said once, by the caller (the library never prints)
        self._titles: tuple[int, list[tuple[int, str]]] | None = None  # (store generation, document titles)

    @classmethod
    def for_kb(cls, kb: KnowledgeBase, *, extractive: bool = False, background: bool = False) -> Answerer:
        """An answerer over a knowledge base, configured by its settings (LLM loaded unless
        extractive; with `background`, loaded in a thread while the first question is searched)."""
        from kb.llm import BackgroundLLM, load_llm

        s = kb.settings
        rerank = 0 if extractive else s.rerank_sentences
        warnings: list[str] = []
        answerer = cls(
            Retriever(kb),
            None if extractive else BackgroundLLM(lambda: load_llm(s)) if background else load_llm(s),
            top_k=s.top_k,
            min_relevance=s.min_relevance,
            min_answerability=s.min_answerability,
            max_answer_tokens=s.max_answer_tokens,
            evidence_tokens=s.evidence_tokens,
            excerpt_sentences=s.excerpt_sentences,
            extractive_sentences=s.extractive_sentences,
            temperature=s.temperature,
            mode=s.search_mode,
            scorer=_scorer_or_none(s, warnings) if rerank else None,
            rerank_sentences=rerank,
            terms=terms_for(s.glossary),
        )
        answerer.warnings = warnings
        return answerer

    def ask(
        self,
        question: str,
        *,
        extractive: bool = False,
        on_token: Callable[[str], None] | None = None,
        on_sentence: Callable[[Sentence], None] | None = None,
        allow: Collection[int] | None = None,
    ) -> Answer:
        """Answer a question with cited sources, or refuse.

        `on_token` receives the model's text as it is generated; `on_sentence` receives each
        sentence of the answer once it is verified (and only those that the answer keeps); `allow`
        is the document ids the caller may see (None: all), applied to every search, hops included.
        """
        t0 = time.perf_counter()
        only: dict[str, Any] = {} if allow is None else {"allow": allow}
        search = lambda q, k: self.retriever.search(q, k, self.mode, **only)
        visible = None if allow is None else set(allow)
        search_in = lambda q, k, docs: self.retriever.search(
            q, k, self.mode, allow=docs if visible is None else docs & visible
        )
        meanings = glossary_meanings(question, self.terms)
        if self.hops:
            evidence = gather(search, question, self.top_k, MARGIN_POOL, meanings, self._documents_about, search_in)
        else:
            evidence = _plain(search, question, self)
        answer = self._answer(question, evidence, search, t0, extractive, on_token, on_sentence)
        answer.retrieved = [h.chunk.id for h in evidence.hits]
        answer.hops = list(evidence.hops)
        return answer

    def _documents_about(self, entity: Entity) -> set[int]:
        """Ids of the documents whose title or file name names `entity` (`kb.answer.retrieve.route`)."""
        store = self.retriever.kb.store
        generation = store.generation()
        if self._titles is None or self._titles[0] != generation:
            self._titles = (generation, [(d.id, subject(d.title, d.path)) for d in store.documents()])
        return {doc for doc, title in self._titles[1] if mentions(entity, title)}

    def _answer(
        self,
        question: str,
        evidence: Evidence,
        search: Callable[[str, int], list[Hit]],
        t0: float,
        extractive: bool,
        on_token: Callable[[str], None] | None,
        on_sentence: Callable[[Sentence], None] | None,
    ) -> Answer:
        hits = evidence.hits
        timings = {"retrieve": time.perf_counter() - t0}
        relevance = max((h.dense or 0.0 for h in hits), default=0.0)
        if not hits or relevance < self.min_relevance:
            return refusal(question, hits, f"no passage is relevant enough (best {relevance:.2f})", timings)
        store = self.retriever.kb.store
        n = store.chunk_count()  # for the IDF of the question's words, in ranking and coverage
        weights = term_weights(question, store, n)
        embed = SENTENCE_VECTORS.embedding(self.retriever.embed_queries, self.retriever.kb.embedder.fingerprint)
        ranked = rank_sentences(question, hits, embed, weights)
        if ranked and self.hops:
            # A second hop for the names the best evidence brings in (multi-hop questions).
            best_text = " ".join(c.span.text for c in ranked[:2])
            first_new = len(hits) + 1
            if bridge_hop(search, question, evidence, best_text):
                more = rank_sentences(question, hits[first_new - 1 :], embed, weights, start=first_new)
                ranked = sorted(ranked + more, key=lambda c: -c.score)
        timings["rank_sentences"] = time.perf_counter() - t0 - timings["retrieve"]
        if not ranked:
            return refusal(question, hits, "the closest passages hold no sentence to answer with", timings)
        verdict = judge(question, evidence, ranked, store, n, self.min_answerability, self.partial_band)
        if not verdict.answer:
            answer = refusal(question, hits, verdict.reason, timings)
            answer.answerability = verdict.score
            answer.signals = verdict.signals
            return answer
        if self.scorer is not None and self.rerank_sentences and not extractive:
            # After the gate: the answerability threshold keeps its meaning whatever reranks.
            t1 = time.perf_counter()
            ranked = rerank_by_likelihood(question, ranked, hits, self.scorer, self.rerank_sentences)
            timings["rerank"] = time.perf_counter() - t1
        if extractive or self.llm is None:
            answer = self._extractive(question, evidence, ranked)
            if on_sentence:
                for s in answer.sentences:
                    on_sentence(s)
        else:
            answer = self._generative(question, evidence, ranked, weights, timings, on_token, on_sentence)
        if verdict.partial:
            answer.partial = True
            answer.note = (PARTIAL + " " + answer.note).strip() + f" ({verdict.reason})"
        answer.timings.update(timings)
        answer.timings["total"] = time.perf_counter() - t0
        answer.answerability = verdict.score
        answer.signals = verdict.signals
        return answer

    def _generative(
        self,
        question: str,
        evidence: Evidence,
        ranked: list[Candidate],
        weights: dict[str, float],
        timings: dict[str, float],
        on_token: Callable[[str], None] | None,
        on_sentence: Callable[[Sentence], None] | None,
    ) -> Answer:
        assert self.llm is not None
        hits = evidence.hits
        # The passages holding the best-ranked sentences go first: within the evidence budget the
        # model sees the likely answers, and a small model leans on the first document.
        # Then the passages that hops added (a bridge, a statement table), which were fetched for
        # what the first passages lack.
        top = ranked[:TOP_SENTENCES] + best_of_hops(ranked[TOP_SENTENCES:], evidence)
        order = list(dict.fromkeys([c.n for c in top] + list(range(1, len(hits) + 1))))
        shown: dict[int, str] = {}
        if self.excerpt_sentences:
            # The model reads the best sentences in their surroundings, not every passage whole.
            keep: dict[int, set[int]] = {}
            for c in top + ranked[: self.excerpt_sentences]:
                keep.setdefault(c.n, set()).add(c.span.start)
            order = [n for n in order if n in keep]
            shown = _excerpts(hits, order, keep)
            order = [n for n in order if shown[hits[n - 1].chunk.id]]
        packed = pack_evidence(
            question, [hits[n - 1] for n in order], self.llm, self.max_answer_tokens, self.evidence_tokens, shown
        )
        if self.excerpt_sentences:
            # What fits was chosen in order of importance; it is shown with each document's
            # excerpts in the document's own order, documents in the order of their best passage,
            # so it reads as written ("28 days of annual leave" before "after five years, 29 days").
            first_of: dict[int, int] = {}
            for i, h in enumerate(packed):
                first_of.setdefault(h.chunk.doc_id, i)
            packed.sort(key=lambda h: (first_of[h.chunk.doc_id], h.chunk.ordinal))
            index = {h.chunk.id: n for n, h in enumerate(hits, start=1)}
            shown = _excerpts(hits, [index[h.chunk.id] for h in packed], keep)
            packed = [h for h in packed if shown[h.chunk.id]]
        t1 = time.perf_counter()
        first: list[float] = []
        stream = _SentenceStream(question, packed, hits, top, on_sentence)

        pieces: list[str] = []

        def token(piece: str) -> None:
            if not first:
                first.append(time.perf_counter() - t1)
            pieces.append(piece)
            units = split_sentences("".join(pieces))
            if len(units) > MAX_SENTENCES:
                raise _Enough(units[MAX_SENTENCES].start)
            if on_token:
                on_token(piece)
            stream.feed(piece)

        try:
            raw = self.llm.chat(
                build_messages(question, packed, shown),
                max_tokens=self.max_answer_tokens,
                temperature=self.temperature,
                on_token=token,
                stop=["\nQuestion:", "\n\n\n", "<<<"],
            )
        except _Enough as enough:
            # The answer was asked for in one to three sentences: a fourth is not waited for.
            raw = "".join(pieces)[: enough.at].rstrip()
        timings["generate"] = time.perf_counter() - t1
        if first:
            timings["first_token"] = first[0]
        checked = [
            link_bridge(a, question, packed, hits, top) if a.sentence.supported else a
            for a in _verified(raw, packed, question, hits)
        ]
        kept = [a for a in checked if a.sentence.supported]
        # Lexical support alone lets a fluent answer built from an off-question passage through
        # (samples: "Which city stores customer data?" answered from the security policy). The
        # model's answer must also rest on one of the sentences ranked best for the question,
        # judged independently of the model.
        grounded = any(rests_on_top_sentence(a, question, packed, hits, top) for a in kept)
        model = {"text": raw, "accepted": bool(kept) and grounded, "reason": ""}
        if kept and grounded:
            figures = self._figures(evidence, ranked, packed, kept)
            packed, witnesses = _witnesses(evidence, ranked, packed, kept)
            packed, near = _near_ties(evidence.hits, ranked, packed, kept + witnesses, weights)
            kept = kept + figures + witnesses + near
            stream.finish(kept)
            reported = [a.sentence for a in checked + figures + witnesses + near]
            answer = compose(question, kept, reported, packed, "generative")
            answer.model = model
            return answer
        model["reason"] = _rejection(raw, checked, kept)
        fallback = self._extractive(question, evidence, ranked)
        if on_sentence:
            for s in fallback.sentences:
                on_sentence(s)
        fallback.note = (
            f"The model's answer could not be verified against the sources ({model['reason']}); "
            "showing the best-matching sentences from the documents instead."
        )
        # The model's unsupported sentences are shown flagged, without citations: their numbers
        # referred to the model's sources, not to the fallback's.
        fallback.sentences = fallback.sentences + [
            Sentence(a.sentence.text, (), False, a.sentence.support) for a in checked
        ]
        fallback.model = model
        return fallback

    @staticmethod
    def _figures(
        evidence: Evidence, ranked: list[Candidate], packed: list[Hit], kept: list[Attributed]
    ) -> list[Attributed]:
        """For a question that asks for a measure, when the model's answer cites none of the
        statement passages its line items were read from: up to FIGURE_ROWS rows of those passages
        with the figures the measure is computed from, quoted and cited (`figures_witness`). A
        small model's prose about a margin rarely states the figures; the answer shows them."""
        index = {h.chunk.id: i for i, h in enumerate(packed, start=1)}
        if not evidence.line_items or any(
            packed[b.n - 1].chunk.id in evidence.line_items for a in kept for b in a.backing
        ):
            return []
        rows = evidence.line_items & set(index)
        out = []
        for c in figures_witness(ranked, evidence.hits, ranked[:1], rows, evidence.meanings, FIGURE_ROWS):
            hit = evidence.hits[c.n - 1]
            out.append(_quoted(c, hit, index[hit.chunk.id]))
        return out

    def _extractive(self, question: str, evidence: Evidence, ranked: list[Candidate]) -> Answer:
        """The best-ranked sentences of the retrieved passages, quoted, no LLM; for a question that
        needs two documents, the best sentence of the second one too."""
        hits = evidence.hits
        chosen = supporting_sentences(ranked, hits, self.extractive_sentences)
        if chosen:
            cited = {hits[c.n - 1].chunk.doc_id for c in chosen}
            chosen += second_witness(ranked, hits, cited, _wanted_documents(evidence, ranked[0]))
            if evidence.line_items:
                chosen += figures_witness(ranked, hits, chosen, evidence.line_items, evidence.meanings, FIGURE_ROWS)
        picked = [_quoted(c, hits[c.n - 1], c.n) for c in chosen]
        return compose(question, picked, [a.sentence for a in picked], hits, "extractive")


NEAR_TIES = 1  # most sentences a model's answer quotes from other passages of its best sentence's document


def _near_ties(
    hits: list[Hit], ranked: list[Candidate], packed: list[Hit], kept: list[Attributed], weights: dict[str, float]
) -> tuple[list[Hit], list[Attributed]]:
    """The sentences of other passages of the best sentence's document that rank nearly as high
    (`supporting_sentences`, the same rule as an extractive answer's) and state the question's
    rarest word, quoted and cited, when the model's answer cites none of their passages: up to
    NEAR_TIES of them. An answer often spans passages (a figure in one, the definition in the
    next), and a model that rests its sentence on one passage leaves the reader, and the citation,
    without the other. A near-tie without that word is about something else of the same page
    ("Owner: Priya Raman" beside "The data protection officer is Stefan Albers")."""
    cited = {packed[b.n - 1].chunk.id for a in kept for b in a.backing}
    quotes = [b.quote.text for a in kept for b in a.backing]
    rarest = max(weights, key=lambda t: weights[t], default=None)
    picks = [
        c
        for c in supporting_sentences(ranked, hits, 1 + NEAR_TIES)[1:]
        if hits[c.n - 1].chunk.id not in cited
        and not any(same_sentence(c.span.text, q) for q in quotes)
        and rarest is not None
        and rarest in content_terms(c.reading or c.span.text)
    ]
    return _quote_all(picks, hits, packed)


def _quote_all(picks: list[Candidate], hits: list[Hit], packed: list[Hit]) -> tuple[list[Hit], list[Attributed]]:
    """The picked sentences quoted and cited (`_quoted`), and the passages the answer may cite:
    `packed`, plus each pick's passage that the model's excerpts left out (it was retrieved all the
    same)."""
    out = []
    for c in picks:
        hit = hits[c.n - 1]
        n = next((i for i, h in enumerate(packed, start=1) if h.chunk.id == hit.chunk.id), 0)
        if not n:
            packed = [*packed, hit]
            n = len(packed)
        out.append(_quoted(c, hit, n))
    return packed, out


def _witnesses(
    evidence: Evidence, ranked: list[Candidate], packed: list[Hit], kept: list[Attributed]
) -> tuple[list[Hit], list[Attributed]]:
    """For a question that needs two documents ("Who is older, X or Y?", "the city where X lies"),
    when the model's answer cites only one of them: the best sentence of the other that states the
    name it is wanted for (`second_witness`), quoted and cited. A comparison or a bridge rests on
    both documents, and the answer shows both quotes; the model, having written one sentence about
    the option it chose, rarely cites the other.

    Returns the passages the answer may cite (`packed`, plus the witnesses' passages when the
    model's excerpts left them out: they were retrieved all the same) and the quoted witnesses."""
    hits = evidence.hits
    cited = {packed[b.n - 1].chunk.doc_id for a in kept for b in a.backing}
    wanted = _wanted_documents(evidence, ranked[0])
    first = hits[ranked[0].n - 1]
    first_name = next((e.text for e in evidence.names if is_about(first, e)), None)
    if wanted and first_name:
        # The document of the best sentence, about a name of the question, is one of the two,
        # whichever the model cited.
        wanted = {first.chunk.doc_id: first_name, **wanted}
    # A name the answer's own quotes already state needs no other witness ("... both in Istanbul").
    quoted = " ".join(b.quote.text + " " + context_of(packed[b.n - 1]) for a in kept for b in a.backing)
    wanted = {doc: name for doc, name in wanted.items() if not mentions(Entity(name, "name"), quoted)}
    return _quote_all(second_witness(ranked, hits, cited, wanted), hits, packed)


def _quoted(c: Candidate, hit: Hit, n: int) -> Attributed:
    """A ranked sentence of passage `hit` as an answer sentence citing it as source `n`: the
    sentence completed where the split cut it short, or a table row as read under its headers."""
    span = c.span if c.reading else complete_span(hit.chunk.text, c.span)
    return Attributed(Sentence(c.reading or span.text, (n,), True, 1.0), (Backing(n, span),))


def _wanted_documents(evidence: Evidence, best: Candidate) -> dict[int, str]:
    """Documents a second witness may come from, each with the name it is wanted for: those of the
    question's other names, and those a hop found for a bridge name (doc id -> name)."""
    from kb.answer.entities import Entity, mentions

    hits = evidence.hits
    first = hits[best.n - 1]
    out: dict[int, str] = {}
    for e in evidence.names:
        # The document about the name ("Who is older, X or Y?": Y's page), even when the first
        # passage mentions Y in passing.
        about = [h for h in hits if is_about(h, e)]
        if about and not any(h.chunk.doc_id == first.chunk.doc_id for h in about):
            out.setdefault(about[0].chunk.doc_id, e.text)
            continue
        if mentions(e, context_of(first)):
            continue
        for h in hits:
            if h.chunk.doc_id != first.chunk.doc_id and mentions(e, context_of(h)):
                out.setdefault(h.chunk.doc_id, e.text)
                break
    for name in evidence.hops:
        # The page of the bridge itself ("Summerlin, Nevada" for Summerlin), not a page whose name
        # contains it ("Argentine PGA Championship" for Argentine).
        entity = Entity(name, "name")
        for h in hits:
            if (
                h.chunk.doc_id != first.chunk.doc_id
                and mentions(entity, h.chunk.title + " " + h.chunk.path)
                and mentions(Entity(document_name(h), "name"), name)
            ):
                out.setdefault(h.chunk.doc_id, name)
                break
    return out


def _excerpts(hits: list[Hit], order: list[int], keep: dict[int, set[int]]) -> dict[int, str]:
    """The excerpt of each passage (1-based numbers in `order`) around its `keep` sentences, by
    chunk id; in that order, so what an earlier passage of the same document showed is not repeated."""
    seen: dict[str, set[str]] = {}
    out: dict[int, str] = {}
    for n in order:
        chunk = hits[n - 1].chunk
        out[chunk.id] = excerpt(chunk.text, keep[n], seen=seen.setdefault(chunk.path, set()))
    return out


def best_of_hops(ranked: list[Candidate], evidence: Evidence) -> list[Candidate]:
    """The best-ranked sentence of each passage that a later search added for its document's own
    subject or for a measure's line items (`Evidence.is_about_hop`). A hop is run because the
    first evidence points to it, so the answer of a multi-hop question lies in the hop's passage
    ("Zaheer Khan was born 7 October 1978"), whose sentences rank below the first passages' for
    the question's own words. A passage that only mentions the name looked up does not count."""
    best: dict[int, Candidate] = {}
    for c in ranked:
        if c.n > evidence.first and evidence.is_about_hop(evidence.hits[c.n - 1]):
            best.setdefault(c.n, c)
    return list(best.values())


def _plain(search: Callable[[str, int], list[Hit]], question: str, answerer: Answerer) -> Evidence:
    """Evidence from one search, no hops."""
    from kb.answer.entities import extract_entities

    pool = search(question, max(answerer.top_k, MARGIN_POOL))
    return Evidence(list(pool[: answerer.top_k]), pool, extract_entities(question))


def _verified(raw: str, packed: list[Hit], question: str, hits: list[Hit]) -> list[Attributed]:
    """The sentences of the model's answer checked against the passages it read (`check_answer`),
    with a date comparison's wrong choice rejected (`kb.answer.compare`): "X was born first" is
    backed word for word even when the pages about X and Y give X the later year. The whole answer
    and the sentences streamed while it is written are verified alike."""
    out = []
    for a in check_answer(raw, packed, question):
        s = a.sentence
        if s.supported and contradicts(s.text, question, hits):
            a = Attributed(Sentence(s.text, (), False, s.support), (), "the years on the two pages say otherwise")
        out.append(a)
    return out


def _rejection(raw: str, checked: list[Attributed], kept: list[Attributed]) -> str:
    """Why the model's answer was not used, in a few words."""
    if is_dont_know(raw):
        return "it said it did not know"
    if not checked:
        return "it gave no sentence to check"
    if not kept:
        reasons = list(dict.fromkeys(a.reason for a in checked if a.reason))
        return "; ".join(reasons) or "nothing in it is backed by the passages"
    return "it does not rest on the sentences that best match the question"


class _SentenceStream:
    """Verifies the model's sentences as they are completed and passes on those the answer will
    keep: a sentence is passed on once it is backed and the answer has rested on one of the best
    sentences; the rest wait for the end."""

    def __init__(
        self,
        question: str,
        packed: list[Hit],
        hits: list[Hit],
        top: list[Candidate],
        on_sentence: Callable[[Sentence], None] | None,
    ) -> None:
        self.question, self.packed, self.hits, self.top = question, packed, hits, top
        self.on_sentence = on_sentence
        self.text = ""
        self.done = 0  # sentences of `text` already checked
        self.grounded = False
        self.sent: list[str] = []
        self.waiting: list[Attributed] = []
        self.renum: dict[int, int] = {}  # passage number -> source number, in order of first citation, as composed

    def feed(self, piece: str) -> None:
        if self.on_sentence is None:
            return
        self.text += piece
        units = _verified(self.text, self.packed, self.question, self.hits)
        # The last unit may be unfinished; the ones before it are complete.
        for a in units[self.done : max(self.done, len(units) - 1)]:
            self.done += 1
            if not a.sentence.supported:
                continue
            if not self.grounded and rests_on_top_sentence(a, self.question, self.packed, self.hits, self.top):
                self.grounded = True
            self.waiting.append(link_bridge(a, self.question, self.packed, self.hits, self.top))
            if self.grounded:
                self._flush()

    def _flush(self) -> None:
        for a in self.waiting:
            self._emit(a)
        self.waiting = []

    def _emit(self, a: Attributed) -> None:
        assert self.on_sentence is not None
        for n in a.sentence.citations:
            self.renum.setdefault(n, len(self.renum) + 1)
        s = a.sentence
        self.on_sentence(Sentence(s.text, tuple(self.renum[n] for n in s.citations), s.supported, s.support))
        self.sent.append(s.text)

    def finish(self, kept: list[Attributed]) -> None:
        """The answer was accepted: pass on the kept sentences not passed on yet."""
        if self.on_sentence is None:
            return
        for a in kept:
            if a.sentence.text not in self.sent:
                self._emit(a)
