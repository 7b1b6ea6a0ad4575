"""The nouns of an answer: the sources it cites, its sentences, the answer itself, and the candidate
sentences it is chosen from."""

from __future__ import annotations

from dataclasses import dataclass, field

from kb.retrieval import Hit
from kb.text import Span

REFUSAL = "The documents do not answer this question."
PARTIAL = "The documents only partly answer this question."


@dataclass(frozen=True)
class Source:
    """A numbered passage given to the model, with the quote that backs the answer."""

    n: int
    hit: Hit
    quote: Span | None = None  # verbatim, offsets into the passage text

    @property
    def pages(self) -> tuple[int | None, int | None]:
        """The pages the quote lies on (the passage's pages when there is no quote)."""
        c = self.hit.chunk
        if self.quote is None:
            return c.page_start, c.page_end
        return c.pages_of(self.quote.start, self.quote.end)

    def to_json(self) -> dict:
        """The documented JSON form."""
        c = self.hit.chunk
        out = {
            "n": self.n,
            **c.location_json(),
            "score": self.hit.score,
            "relevance": self.hit.dense,
            "text": c.text,
        }
        if self.quote is not None:
            first, last = self.pages
            out["quote"] = {
                "text": self.quote.text,
                "start": self.quote.start,
                "end": self.quote.end,
                "doc_start": c.char_start + self.quote.start,
                "doc_end": c.char_start + self.quote.end,
                "page_start": first,
                "page_end": last,
            }
        return out


@dataclass(frozen=True)
class Sentence:
    """One sentence of the answer, the sources it cites and whether they back it."""

    text: str
    citations: tuple[int, ...]
    supported: bool
    support: float


@dataclass
class Answer:
    """The result of `kb ask`."""

    question: str
    text: str
    refused: bool
    mode: str  # "generative", "extractive" or "refusal"
    sentences: list[Sentence] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)  # the cited ones
    candidates: list[Source] = field(default_factory=list)  # closest passages, shown on refusal
    note: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    retrieved: list[int] = field(default_factory=list)  # chunk ids of every retrieved passage
    answerability: float | None = None  # the score the refusal gate compared with min_answerability
    partial: bool = False  # evidence weak but present: the answer says the documents only partly answer
    model: dict | None = None  # the model's own reply, whether kb accepted it, and why not
    signals: dict = field(default_factory=dict)  # what the refusal gate saw
    hops: list[str] = field(default_factory=list)  # names looked up in a second retrieval

    def to_json(self) -> dict:
        """The documented JSON form."""
        return {
            "question": self.question,
            "answer": self.text,
            "refused": self.refused,
            "mode": self.mode,
            "note": self.note,
            "sentences": [
                {
                    "text": s.text,
                    "citations": list(s.citations),
                    "supported": s.supported,
                    "support": round(s.support, 3),
                }
                for s in self.sentences
            ],
            "sources": [s.to_json() for s in self.sources],
            "closest": [s.to_json() for s in self.candidates] if self.refused else [],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "retrieved": self.retrieved,
            "answerability": None if self.answerability is None else round(self.answerability, 3),
            "partial": self.partial,
            "model_answer": self.model,
            "signals": self.signals,
            "hops": self.hops,
        }


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved passage, scored as a possible answer."""

    n: int  # 1-based index of its passage in the hits
    span: Span
    score: float  # meaning (cosine to the question) plus shared words
    similarity: float  # cosine to the question alone
    reading: str = ""  # a table row read with its column headers, as an answer shows it ("" = the sentence)
