"""Retrieval evaluation on a BEIR data set: build (and cache) a knowledge base from its corpus,
run every query in every mode, pool chunk hits into document rankings and score them.

Corpus entries are not files, so they skip discovery and parsing: each becomes a one-block
ParsedDocument, is chunked with the embedder's tokenizer exactly as a file would be, embedded
in large batches, and stored under the synthetic path `beir:<doc id>`. Re-running on the same
corpus only embeds entries that are new or changed, so an interrupted build resumes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ingest.chunking import chunk_document
from ingest.types import Block, Chunk, ParsedDocument
from kb.config import Settings
from kb.embeddings import Embedder, load_embedder
from kb.errors import InputError
from kb.eval.beir import BeirData, BeirDoc
from kb.eval.metrics import Run, evaluate_queries, evaluate_run
from kb.indexer import embedding_text
from kb.knowledge import KnowledgeBase
from kb.retrieval import MODES, Retriever

SOURCE_PREFIX = "beir:"
# Bump when the way corpus entries become chunks changes, so old caches are not reused.
BUILD_VERSION = 1
DOCS_PER_QUERY = 100  # deepest cutoff scored; every run lists this many distinct docs when it can
EMBED_CHUNKS = 1024  # chunks embedded per call: the model sorts them by length, wasting less padding
KS = (10, 100)
HEADLINE = ("ndcg@10", "recall@10", "recall@100", "mrr@10")

BuildProgress = Callable[[int, int], None]  # (documents done, documents in corpus)
QueryProgress = Callable[[str, int, int], None]  # (mode, queries done, queries)


@dataclass(frozen=True)
class BuildReport:
    """What building the evaluation knowledge base did."""

    folder: Path
    documents: int  # in the corpus
    embedded: int  # documents chunked and embedded in this run
    removed: int  # documents no longer in the corpus
    chunks: int  # in the knowledge base afterwards
    seconds: float


@dataclass(frozen=True)
class ModeResult:
    """One retrieval mode's document run over all queries, its scores and its speed."""

    mode: str
    run: Run  # qid -> [(doc id, score)], the doc's score being its best chunk's
    metrics: dict[str, float]  # mean over judged queries, e.g. "ndcg@10"
    per_query: dict[str, dict[str, float]]
    seconds: float  # wall time to answer every query (embedding included)

    @property
    def qps(self) -> float:
        """Queries answered per second."""
        return len(self.run) / self.seconds if self.seconds > 0 else float("inf")


def default_cache_root() -> Path:
    """Where evaluation knowledge bases are cached: $XDG_CACHE_HOME/kb/eval or ~/.cache/kb/eval."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kb" / "eval"


def cache_folder(data_folder: Path, settings: Settings, embedder: Embedder, root: Path | None = None) -> Path:
    """The cache folder for this corpus and everything that shapes its index (model, chunking)."""
    data_folder = Path(data_folder).resolve()
    key = "\0".join(
        (
            str(data_folder),
            embedder.fingerprint,
            str(settings.chunk_tokens),
            str(settings.chunk_overlap),
            str(BUILD_VERSION),
        )
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return (root or default_cache_root()) / f"{data_folder.name}-{digest}"


def doc_path(doc_id: str) -> str:
    """The synthetic path under which a corpus entry is stored."""
    return SOURCE_PREFIX + doc_id


def _doc_sha(doc: BeirDoc) -> str:
    return hashlib.sha256(f"{doc.title}\0{doc.text}".encode()).hexdigest()


def parsed_document(doc: BeirDoc) -> ParsedDocument:
    """A corpus entry as the parser would have produced it: one block of body text, titled."""
    return ParsedDocument(
        path=doc_path(doc.doc_id),
        format="beir",
        text=doc.text,
        blocks=(Block(0, len(doc.text)),),
        title=doc.title,
    )


def build_corpus_kb(
    kb: KnowledgeBase,
    corpus: Iterable[BeirDoc],
    *,
    total: int = 0,
    progress: BuildProgress | None = None,
) -> BuildReport:
    """Bring `kb` in step with a corpus: embed new or changed entries, drop vanished ones."""
    started = time.monotonic()
    _ = kb.vectors  # load (or rebuild) the cache before the store changes, as ingest does
    tokenizer = kb.embedder.tokenizer()
    size, overlap = kb.settings.chunk_tokens, kb.settings.chunk_overlap
    stored = {d.path: d.sha256 for d in kb.store.documents()}
    seen: set[str] = set()
    pending: list[tuple[BeirDoc, str, list[Chunk]]] = []
    done = embedded = 0

    def flush() -> None:
        nonlocal done, embedded
        if not pending:
            return
        texts = [embedding_text(doc.title, c.heading_path, c.text) for doc, _, chunks in pending for c in chunks]
        vectors = kb.embedder.embed(texts, batch_size=kb.settings.embed_batch)
        offset = 0
        for doc, sha, chunks in pending:
            vecs = vectors[offset : offset + len(chunks)]
            offset += len(chunks)
            removed, added = kb.store.replace_document(
                path=doc_path(doc.doc_id),
                sha256=sha,
                size=len(doc.text.encode()),
                mtime=0.0,
                format="beir",
                title=doc.title,
                n_pages=None,
                chunks=chunks,
                vectors=vecs,
            )
            kb.vectors.remove(removed)
            kb.vectors.add(added, vecs)
            done += 1
            embedded += 1
        pending.clear()
        if progress:
            progress(done, total)

    if progress:
        progress(0, total)
    for doc in corpus:
        path, sha = doc_path(doc.doc_id), _doc_sha(doc)
        seen.add(path)
        if stored.get(path) == sha:
            done += 1
            continue
        pending.append((doc, sha, chunk_document(parsed_document(doc), tokenizer, size, overlap)))
        if sum(len(c) for *_, c in pending) >= EMBED_CHUNKS:
            flush()
    flush()
    vanished = sorted(p for p in stored if p not in seen)
    for path in vanished:
        kb.vectors.remove(kb.store.remove_document(path))
    kb.save_vectors()
    return BuildReport(
        folder=kb.folder,
        documents=len(seen),
        embedded=embedded,
        removed=len(vanished),
        chunks=kb.store.counts()["chunks"],
        seconds=time.monotonic() - started,
    )


def chunk_doc_ids(kb: KnowledgeBase) -> dict[int, str]:
    """Corpus doc id of every chunk stored from a BEIR corpus."""
    rows = kb.store.db.execute(
        "SELECT c.id, d.path FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.path LIKE ?",
        (SOURCE_PREFIX + "%",),
    )
    return {int(cid): path[len(SOURCE_PREFIX) :] for cid, path in rows}


def pool_by_doc(ranked: Sequence[tuple[int, float]], doc_of: dict[int, str], n_docs: int) -> list[tuple[str, float]]:
    """The first `n_docs` distinct documents of a chunk ranking, each scored by its best chunk."""
    out: dict[str, float] = {}
    for cid, score in ranked:
        doc = doc_of.get(cid)
        if doc is None:
            continue
        if doc in out:
            out[doc] = max(out[doc], score)
        elif len(out) < n_docs:
            out[doc] = score
    return list(out.items())


def doc_rankings(
    retriever: Retriever,
    texts: list[str],
    mode: str,
    doc_of: dict[int, str],
    n_docs: int = DOCS_PER_QUERY,
) -> list[list[tuple[str, float]]]:
    """Per query, up to `n_docs` distinct documents; candidate lists deepen until that many are found."""
    chunks_per_doc = max(1.0, len(doc_of) / max(1, len(set(doc_of.values()))))
    depth = int(n_docs * chunks_per_doc * 2) + 10
    ranked = retriever.rank_many(texts, mode, depth)
    out = [pool_by_doc(r, doc_of, n_docs) for r in ranked]
    # A query whose candidates ran out before n_docs distinct docs, while the sources had more
    # to give, is asked again deeper (rare: a few long documents hogging the list).
    while True:
        short = [i for i, r in enumerate(ranked) if len(out[i]) < n_docs and len(r) >= depth]
        if not short or depth >= len(doc_of):
            return out
        depth *= 4
        again = retriever.rank_many([texts[i] for i in short], mode, depth)
        for i, r in zip(short, again, strict=True):
            ranked[i] = r
            out[i] = pool_by_doc(r, doc_of, n_docs)


def evaluate_retrieval(
    kb: KnowledgeBase,
    data: BeirData,
    *,
    modes: Sequence[str] = MODES,
    retriever: Retriever | None = None,
    batch: int = 256,
    progress: QueryProgress | None = None,
) -> list[ModeResult]:
    """Run every judged query of `data` in each mode and score the document runs."""
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
    retriever = retriever or Retriever(kb)
    doc_of = chunk_doc_ids(kb)
    if any(mode != "keyword" for mode in modes):
        retriever.embed_queries(["warm-up"])  # loading the model is not part of answering queries
    qids = sorted(data.queries)
    results = []
    for mode in modes:
        run: Run = {}
        started = time.perf_counter()
        if progress:
            progress(mode, 0, len(qids))
        for start in range(0, len(qids), batch):
            part = qids[start : start + batch]
            for qid, docs in zip(
                part, doc_rankings(retriever, [data.queries[q] for q in part], mode, doc_of), strict=True
            ):
                run[qid] = docs
            if progress:
                progress(mode, min(start + batch, len(qids)), len(qids))
        seconds = time.perf_counter() - started
        results.append(
            ModeResult(mode, run, evaluate_run(run, data.qrels, KS), evaluate_queries(run, data.qrels, KS), seconds)
        )
    return results


def query_half(qid: str) -> str:
    """Which half of a split a query falls in: "a" when sha1 of its id is even, else "b".

    The split that keeps choosing a setting (on half A) apart from reporting it (on half B).
    """
    return "a" if int(hashlib.sha1(qid.encode()).hexdigest(), 16) % 2 == 0 else "b"


def select_half(data: BeirData, half: str) -> BeirData:
    """The split restricted to one half of its judged queries ("a" or "b")."""
    if half not in ("a", "b"):
        raise ValueError(f"half must be 'a' or 'b', got {half!r}")
    keep = {q for q in data.queries if query_half(q) == half}
    return replace(
        data,
        queries={q: t for q, t in data.queries.items() if q in keep},
        qrels={q: j for q, j in data.qrels.items() if q in keep},
    )


def tune_corpus_kb(
    kb: KnowledgeBase, *, queries: int, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> tuple[dict | None, str]:
    """Tune the corpus knowledge base's fusion from its own documents, as `kb tune` does; never from judged queries.

    Returns (the manifest record or None, what happened: "tuned", "reused" when a record made
    with the same request on the same collection exists, or why tuning was skipped).
    """
    from kb.tune import RECORD_VERSION, tune

    counts = kb.store.counts()
    old = kb.fusion
    if (
        old is not None
        and old.get("version") == RECORD_VERSION
        and old.get("requested") == queries
        and old.get("seed") == seed
        and old.get("documents") == counts["documents"]
        and old.get("chunks") == counts["chunks"]
    ):
        return old, "reused"
    try:
        return tune(kb, queries=queries, seed=seed, progress=progress).record, "tuned"
    except InputError as exc:
        return None, f"skipped: {exc}"


def iter_with_count(data: BeirData) -> tuple[int, Iterator[BeirDoc]]:
    """The number of corpus entries (one quick pass) and a fresh stream over them."""
    total = sum(1 for _ in data.corpus())
    return total, data.corpus()


def open_eval_kb(
    data: BeirData,
    settings: Settings,
    *,
    folder: Path | None = None,
    cache_root: Path | None = None,
    embedder: Embedder | None = None,
) -> KnowledgeBase:
    """Open (creating if needed) the evaluation knowledge base of a BEIR folder, for writing."""
    embedder = embedder or load_embedder(settings.embed_model, threads=settings.threads, backend=settings.embed_backend)
    folder = folder or cache_folder(data.folder, settings, embedder, cache_root)
    return KnowledgeBase(settings.with_overrides(home=folder), embedder=embedder, write=True)
