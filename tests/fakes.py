"""Deterministic stand-ins for the models, so logic is tested without loading any."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import numpy as np

from ingest.chunking import WhitespaceTokenizer

_WORD = re.compile(r"\w+")


class FakeEmbedder:
    """Bag-of-words hashed into a fixed number of dimensions, L2-normalised.

    Texts sharing words get similar vectors, which is all retrieval logic needs.
    """

    name = "fake-embedder"
    fingerprint = "fake0001"
    tokenizer_file = ""  # whitespace tokens
    max_tokens = 512

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.calls = 0

    def tokenizer(self) -> WhitespaceTokenizer:
        """Whitespace tokens."""
        return WhitespaceTokenizer()

    def embed(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """One normalised vector per text."""
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little")
                out[i, h % self.dim] += 1.0
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out


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

    def chat(self, messages, *, max_tokens: int, temperature: float = 0.0,  # noqa: ANN001
             on_token: Callable[[str], None] | None = None, stop=None) -> str:  # noqa: ANN001
        """The next queued reply."""
        self.prompts.append(messages)
        reply = self.replies.pop(0) if self.replies else "I don't know."
        if on_token:
            on_token(reply)
        return reply
