"""Deterministic stand-ins for the models, so logic is tested without loading any."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from kb.embeddings import HashingEmbedder
from kb.retrieval import Hit
from kb.store import ChunkRow


def make_hit(cid: int, doc: int, text: str, title: str = "") -> Hit:
    """A retrieved passage of document `doc` (file /d/DOC.txt), without a store."""
    return Hit(ChunkRow(cid, doc, f"/d/{doc}.txt", title, 0, text, 0, len(text), None, None, ()), 1.0, cid, dense=0.5)


class FakeEmbedder(HashingEmbedder):
    """kb's hashing embedder (texts sharing words get similar vectors), counting its calls; each
    call takes `delay` seconds more, like a real model's."""

    def __init__(self, dim: int = 64, delay: float = 0.0) -> None:
        super().__init__(f"fake:dim={dim}")
        self.calls = 0
        self.delay = delay

    def embed(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """One normalised vector per text."""
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return super().embed(texts, batch_size=batch_size)


class ScriptedLLM:
    """Returns queued replies in order and records the prompts it was given."""

    name = "scripted"

    def __init__(self, replies: list[str], n_ctx: int = 2048) -> None:
        self.replies = list(replies)
        self.n_ctx = n_ctx
        self.prompts: list[list[dict[str, str]]] = []

    def count_tokens(self, text: str) -> int:
        """Whitespace words, a stand-in for real tokens."""
        return len(text.split())

    def chat(
        self,
        messages,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        on_token: Callable[[str], None] | None = None,
        stop=None,
    ) -> str:
        """The next queued reply."""
        self.prompts.append(messages)
        reply = self.replies.pop(0) if self.replies else "I don't know."
        if on_token:
            on_token(reply)
        return reply


class KeywordScorer:
    """A question scorer (kb.llm.QuestionScorer's role) that favours sentences holding `word`,
    recording what it was asked."""

    def __init__(self, word: str, gain: float = 1.0) -> None:
        self.word = word.lower()
        self.gain = gain
        self.calls: list[tuple[list[str], str]] = []

    def gains(self, sentences: list[str], question: str) -> list[float]:
        """`gain` for a sentence holding the word, 0 for the others."""
        self.calls.append((list(sentences), question))
        return [self.gain if self.word in s.lower() else 0.0 for s in sentences]


class QuotingLLM:
    """A stand-in LLM that answers by quoting the first sentence of the first document it is given,
    streams it word by word (optionally slowly), and answers rewrite prompts from a queue.
    It records every prompt, so tests can check what reached the model."""

    name = "quoting"

    def __init__(self, rewrites: list[str] | None = None, delay: float = 0.0, n_ctx: int = 2048) -> None:
        self.rewrites = list(rewrites or [])
        self.delay = delay
        self.n_ctx = n_ctx
        self.prompts: list[list[dict[str, str]]] = []

    def count_tokens(self, text: str) -> int:
        """Whitespace words."""
        return len(text.split())

    def chat(self, messages, *, max_tokens: int, temperature: float = 0.0, on_token=None, stop=None) -> str:
        """A quote of the first document, or the next queued rewrite."""
        import re
        import time

        self.prompts.append(messages)
        user = messages[-1]["content"]
        if user.rstrip().endswith("Standalone question:"):
            reply = self.rewrites.pop(0) if self.rewrites else "I don't know."
        else:
            m = re.search(r"Document 1 \([^\n]*\):\n(.+?)(?:\n\nDocument 2 \(|\n>>>)", user, re.S)
            body = " ".join(m.group(1).split()) if m else ""
            first = re.split(r"(?<=[.!?])\s", body)[0] if body else ""
            reply = f"{first.rstrip('.')}." if first else "I don't know."
        for word in reply.split(" "):
            if self.delay:
                time.sleep(self.delay)
            if on_token:
                on_token(word + " ")
        return reply
