"""The resident state of `kb serve` and the work behind each endpoint, without any HTTP.

One Service per knowledge base holds the embedder and the LLM, loaded once. Each worker thread
reads through its own SQLite connection (a KnowledgeBase handle sharing the embedder and the
FAISS index), so searches run side by side while the LLM answers someone else. Every request
first checks the store generation: when another process (an ingest) changed the store, a new
FAISS index is loaded, or rebuilt from SQLite, in the background and swapped in; FTS5 and the
chunk rows are read live, so new passages are found by keyword at once.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kb.chat import remaining_pieces, sentence_piece
from kb.config import Settings
from kb.embeddings import Embedder, VectorCache
from kb.errors import InputError, KBError
from kb.groups import Access, visible_documents
from kb.knowledge import DB_FILE, KnowledgeBase
from kb.server.discovery import kb_id
from kb.server.queue import Cancelled, LLMQueue, Ticket
from kb.tokens import authenticate

REFRESH_INTERVAL = 1.0  # seconds between two reloads of the FAISS index while the store keeps changing


class Unauthorized(KBError):
    """No token, or a token that is not configured (HTTP 401)."""


class Forbidden(KBError):
    """A valid token without the scope an endpoint needs (HTTP 403)."""


class NotFound(KBError):
    """Something the caller named does not exist, or is hidden from them (HTTP 404)."""

    def __init__(self, message: str, code: str = "not_found") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Caller:
    """Who is asking: what they may see and do."""

    access: Access
    scopes: tuple[str, ...]
    token: str = ""  # the token's name; "" without tokens

    def require(self, scope: str) -> None:
        """Forbidden unless the caller holds `scope`."""
        if scope not in self.scopes:
            raise Forbidden(f"token {self.token!r} may not {scope} (its scopes: {', '.join(self.scopes) or 'none'})")


class SharedEmbedder:
    """The embedder as the server's threads share it.

    Queries (calls of at most SHORT texts) are remembered and batched. Remembered: the vector of
    each exact text is kept (least recently used first out), so the same question asked again, by
    the web page or a client polling, is not embedded again; one SharedEmbedder wraps one model,
    so its memory never mixes the vectors of two. Batched: a text not remembered joins a queue
    that `parallel` worker threads empty, each taking all the queued texts (up to MAX_BATCH) into
    one model call, so queries that arrive while a batch runs are embedded together in the next;
    a text already queued or being embedded is not queued twice. Bulk calls (more than SHORT
    texts: sentences to rank, a summary's passages) run in the calling thread.

    At most `parallel` model calls run at once, batches and bulk calls together (one per core: the
    server loads the model with one thread per call, which on a CPU spends less time per query
    than one call spread over both cores).
    """

    CACHE_SIZE = 4096
    SHORT = 4
    MAX_BATCH = 32
    IDLE_SECONDS = 30.0  # a worker without work for this long ends; the next query starts another

    def __init__(self, inner: Embedder, parallel: int = 1) -> None:
        self.inner = inner
        self.parallel = max(1, parallel)
        self._slots = threading.BoundedSemaphore(self.parallel)
        self._cache = VectorCache(self.CACHE_SIZE)
        self._lock = threading.Lock()  # the cache, the queue, the workers
        self._wake = threading.Condition(self._lock)
        self._queue: deque[str] = deque()  # texts waiting for a batch, oldest first
        self._waiting: dict[str, Future] = {}  # text -> its vector to come (queued or in a batch)
        self._workers: list[threading.Thread] = []
        self._stop = False
        self.batches: deque[int] = deque(maxlen=1000)  # the sizes of the latest batches run
        self.name: str = inner.name
        self.fingerprint: str = inner.fingerprint
        self.tokenizer_file: str = inner.tokenizer_file
        self.dim: int = inner.dim
        self.max_tokens: int = inner.max_tokens

    def tokenizer(self) -> Any:
        """The model's tokenizer."""
        return self.inner.tokenizer()

    def embed(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """Vectors, one row per text; queries seen recently come from the cache, others from a batch."""
        if len(texts) > self.SHORT or not texts:
            with self._slots:
                return self.inner.embed(texts, batch_size=batch_size)
        return np.stack([f.result() for f in self.submit(texts)])

    async def embed_async(self, texts: list[str]) -> np.ndarray:
        """`embed` for queries, awaited rather than blocking the event loop."""
        futures = self.submit(texts)
        return np.stack([await asyncio.wrap_future(f) for f in futures])

    def submit(self, texts: list[str]) -> list[Future]:
        """A future vector per text: done at once when remembered, else when its batch has run."""
        out: list[Future] = []
        with self._lock:
            queued = False
            for t in texts:
                vec = self._cache.get(t)
                if vec is not None:
                    done: Future = Future()
                    done.set_result(vec)
                    out.append(done)
                    continue
                fut = self._waiting.get(t)
                if fut is None:
                    fut = self._waiting[t] = Future()
                    self._queue.append(t)
                    queued = True
                out.append(fut)
            if queued:
                self._stop = False
                while len(self._workers) < self.parallel:
                    worker = threading.Thread(target=self._work, name="kb-embed", daemon=True)
                    self._workers.append(worker)
                    worker.start()
                self._wake.notify()
        return out

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                while not self._queue:
                    if self._stop or (not self._wake.wait(self.IDLE_SECONDS) and not self._queue):
                        self._workers.remove(me)
                        return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.MAX_BATCH))]
                self.batches.append(len(batch))
            try:
                with self._slots:
                    vecs = np.asarray(self.inner.embed(batch, batch_size=self.MAX_BATCH), dtype=np.float32)
            except Exception as exc:  # every waiting caller gets the error, and the worker goes on
                with self._lock:
                    futures = [self._waiting.pop(t) for t in batch]
                for fut in futures:
                    fut.set_exception(exc)
                continue
            with self._lock:
                futures = [self._waiting.pop(t) for t in batch]
                rows = []
                for t, row in zip(batch, vecs, strict=True):
                    row = row.copy()
                    row.flags.writeable = False  # callers get copies (np.stack); the cache stays as computed
                    self._cache.put(t, row)
                    rows.append(row)
            for fut, row in zip(futures, rows, strict=True):
                fut.set_result(row)

    def close(self) -> None:
        """Let the workers end once the queue is empty (a later query starts them again)."""
        with self._lock:
            self._stop = True
            self._wake.notify_all()


class CancellableLLM:
    """The shared LLM as one job sees it: generation stops at the next token once `cancel` is set."""

    def __init__(self, inner: Any, cancel: threading.Event | None) -> None:
        self.inner = inner
        self.cancel = cancel
        self.name = inner.name
        self.n_ctx = inner.n_ctx

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the model's tokenizer."""
        return self.inner.count_tokens(text)

    def chat(self, messages: list, *, max_tokens: int, temperature: float = 0.0, on_token=None, stop=None) -> str:
        """The reply, abandoned with Cancelled when the caller went away."""
        self.check()

        def token(piece: str) -> None:
            self.check()
            if on_token:
                on_token(piece)

        return self.inner.chat(messages, max_tokens=max_tokens, temperature=temperature, on_token=token, stop=stop)

    def check(self) -> None:
        """Raise Cancelled if the caller went away."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()


class Service:
    """Everything `kb serve` keeps warm, and the operations its endpoints call."""

    def __init__(self, settings: Settings, *, embedder: Any = None, llm: Any = None, load_llm: bool = True) -> None:
        from kb.embeddings import load_embedder

        self.settings = settings
        self.folder = settings.home.resolve()
        self.name = self.folder.name or "kb"
        self.id = kb_id(self.folder)
        # One thread per call, calls side by side (SharedEmbedder): less CPU per query than one
        # call spread over every core, and concurrent searches use all of them.
        inner = embedder or load_embedder(settings.embed_model, threads=1, backend=settings.embed_backend)
        self.embedder = SharedEmbedder(inner, parallel=settings.threads)
        self._local = threading.local()
        self._handles: list[KnowledgeBase] = []
        self._handles_lock = threading.Lock()
        self._epoch = 0  # bumped when the folder is replaced (kb rebuild): every handle reopens
        root = self._open()
        self._db_inode = _inode(self.folder / DB_FILE)
        self._vectors = root.vectors
        self._generation = root.store.generation()
        self._refreshing = False
        self._last_refresh = 0.0
        self._refresh_lock = threading.Lock()
        self._llm_override = llm
        self.llm: Any = llm
        if llm is None and load_llm:
            from kb.llm import load_llm as load

            self.llm = load(settings)
        self.queue = LLMQueue(settings.serve_queue)
        self.started = time.time()
        self.embedder.embed(["warm up"])  # the first call pays for lazy initialisation

    # --- access ---------------------------------------------------------------------------------
    @property
    def auth_required(self) -> bool:
        """Whether requests need a token (some are configured)."""
        return bool(self.settings.tokens)

    def caller(self, authorization: str | None) -> Caller:
        """The caller named by an `Authorization: Bearer TOKEN` header; Unauthorized when it does not match."""
        from kb.tokens import SCOPES

        if not self.auth_required:
            return Caller(Access.everything(), SCOPES)
        scheme, _, secret = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("a token is required: send the header Authorization: Bearer TOKEN")
        token = authenticate(self.settings.tokens, secret.strip())
        if token is None:
            raise Unauthorized("the token is not valid for this server")
        return Caller(token.access(), token.scopes, token.name)

    def allow(self, kb: KnowledgeBase, caller: Caller) -> set[int] | None:
        """Document ids the caller may see (None: all)."""
        return visible_documents(kb.store, caller.access, self.settings.default_group)

    # --- handles and freshness ---------------------------------------------------------------------
    def _open(self) -> KnowledgeBase:
        kb = KnowledgeBase(self.settings, embedder=self.embedder)
        with self._handles_lock:
            self._handles.append(kb)
        self._local.kb, self._local.epoch = kb, self._epoch
        return kb

    def handle(self) -> KnowledgeBase:
        """This thread's reader, with the freshest FAISS index."""
        kb = getattr(self._local, "kb", None)
        if kb is None or self._local.epoch != self._epoch:
            kb = self._open()
        self._follow(kb)
        if self._local.epoch != self._epoch:  # the folder was just found replaced
            kb = self._open()
        kb.use_vectors(self._vectors)
        return kb

    def _follow(self, kb: KnowledgeBase) -> None:
        """Start reloading the FAISS index when the store moved on (another process wrote)."""
        inode = _inode(self.folder / DB_FILE)
        if inode != self._db_inode:  # the folder was replaced (kb rebuild): reopen everything
            with self._refresh_lock:
                if inode != self._db_inode:
                    self._db_inode, self._epoch = inode, self._epoch + 1
                    fresh = KnowledgeBase(self.settings, embedder=self.embedder)
                    self._vectors, self._generation = fresh.vectors, fresh.store.generation()
                    fresh.close()
            return
        if kb.store.generation() == self._generation:
            return
        with self._refresh_lock:
            if self._refreshing or time.monotonic() - self._last_refresh < REFRESH_INTERVAL:
                return
            self._refreshing = True
        threading.Thread(target=self._refresh, name="kb-refresh", daemon=True).start()

    def _refresh(self) -> None:
        from kb.vectors import IndexPolicy, VectorIndex

        kb = KnowledgeBase(self.settings, embedder=self.embedder)
        try:
            generation = kb.store.generation()  # read first: the index holds at least this generation
            index, _ = VectorIndex.load_or_rebuild(
                self.folder, kb.store, kb.manifest.dim, IndexPolicy.from_settings(self.settings)
            )
            self._vectors, self._generation = index, generation
        finally:
            kb.close()
            with self._refresh_lock:
                self._refreshing = False
                self._last_refresh = time.monotonic()

    @property
    def generation(self) -> int:
        """The store generation the loaded FAISS index matches."""
        return self._generation

    def close(self) -> None:
        """Close every reader; the embedding workers end."""
        with self._handles_lock:
            for kb in self._handles:
                kb.close()
            self._handles.clear()
        self.embedder.close()

    # --- answering --------------------------------------------------------------------------------
    def answerer(self, kb: KnowledgeBase, *, extractive: bool, cancel: threading.Event | None = None) -> Any:
        """An Answerer over this thread's reader, with the shared LLM (none when extractive)."""
        from kb.answer import Answerer

        if self._llm_override is None and not extractive:
            answerer = Answerer.for_kb(kb)
        else:
            answerer = Answerer.for_kb(kb, extractive=True)
            answerer.llm = None if extractive else self.llm
        if answerer.llm is not None:
            answerer.llm = CancellableLLM(answerer.llm, cancel)
        return answerer

    def check_search(self, caller: Caller, query: str, k: int = 10, mode: str | None = None) -> str:
        """The search mode to use; Forbidden or InputError when the search cannot be made."""
        caller.require("search")
        mode = _mode(mode, self.settings.search_mode)
        _check_k(k)
        if not query.strip():
            raise InputError("query: empty")
        return mode

    def search(self, caller: Caller, query: str, k: int = 10, mode: str | None = None) -> dict:
        """`POST /v1/search`: the JSON of `kb search --json`, over the caller's documents."""
        from kb.retrieval import Retriever

        mode = self.check_search(caller, query, k, mode)
        kb = self.handle()
        hits = Retriever(kb).search(query, k, mode, allow=self.allow(kb, caller))
        return {"query": query, "mode": mode, "hits": [h.to_json() for h in hits]}

    def ask(
        self,
        caller: Caller,
        question: str,
        *,
        extractive: bool = False,
        k: int | None = None,
        mode: str | None = None,
        ticket: Ticket | None = None,
        cancel: threading.Event | None = None,
        on_sentence: Callable[[str], None] | None = None,
    ) -> Any:
        """An Answer over the caller's documents; a generative one waits its turn for the LLM (`ticket`)."""
        caller.require("ask")
        if not question.strip():
            raise InputError("question: empty")
        with self._llm_turn(extractive, ticket, cancel) as turn:
            answer = self._ask(caller, question, extractive, k, mode, cancel, on_sentence)
        _add_wait(answer, turn)
        return answer

    def chat(
        self,
        caller: Caller,
        messages: list[dict],
        *,
        extractive: bool = False,
        k: int | None = None,
        mode: str | None = None,
        ticket: Ticket | None = None,
        cancel: threading.Event | None = None,
        on_rewrite: Callable[[Any], None] | None = None,
        on_sentence: Callable[[str], None] | None = None,
    ) -> tuple[Any, Any]:
        """One turn of a conversation: the follow-up rewritten into a standalone question (kb/chat.py),
        then answered over the caller's documents. Returns (Rewrite, Answer)."""
        from kb.chat import rewrite, split_conversation

        caller.require("ask")
        try:
            history, question = split_conversation(messages)
        except ValueError as exc:
            raise InputError(f"messages: {exc}") from None
        with self._llm_turn(extractive, ticket, cancel) as turn:
            llm = None if extractive or self.llm is None else CancellableLLM(self.llm, cancel)
            rw = rewrite(history, question, llm)
            if on_rewrite:
                on_rewrite(rw)
            answer = self._ask(caller, rw.standalone, extractive, k, mode, cancel, on_sentence)
        _add_wait(answer, turn)
        return rw, answer

    @contextmanager
    def _llm_turn(
        self, extractive: bool, ticket: Ticket | None, cancel: threading.Event | None
    ) -> Iterator[Ticket | None]:
        """Hold the LLM for the body (nothing to hold for an extractive answer); yields the ticket."""
        if extractive:
            if ticket is not None:
                ticket.release()
            yield None
            return
        if self.llm is None:
            raise InputError("this server was started without an LLM; ask with extractive answers")
        own = ticket or self.queue.admit()
        with own.run(cancel):
            yield own

    def _ask(
        self,
        caller: Caller,
        question: str,
        extractive: bool,
        k: int | None,
        mode: str | None,
        cancel: threading.Event | None,
        on_sentence: Callable[[str], None] | None,
    ) -> Any:
        kb = self.handle()
        answerer = self.answerer(kb, extractive=extractive, cancel=cancel)
        if k is not None:
            _check_k(k)
            answerer.top_k = k
        answerer.mode = _mode(mode, answerer.mode)
        allow = self.allow(kb, caller)
        if on_sentence is None:
            return answerer.ask(question, extractive=extractive, allow=allow)
        streamed: list[str] = []

        def verified(sentence: Any) -> None:
            # Called by the answerer as each sentence is verified, while the model still writes.
            piece = sentence_piece(sentence)
            streamed.append(piece)
            on_sentence(piece)

        answer = answerer.ask(question, extractive=extractive, allow=allow, on_sentence=verified)
        for piece in remaining_pieces(answer, streamed):
            on_sentence(piece)
        return answer

    def summarize(
        self,
        caller: Caller,
        path: str,
        *,
        words: int = 150,
        overview_words: int = 200,
        style: str = "bullets",
        ticket: Ticket | None = None,
        cancel: threading.Event | None = None,
    ) -> dict:
        """`POST /v1/summarize`: cited summaries of the caller's stored documents at or under `path`,
        with an overview when there are several. Hidden documents are treated as absent."""
        from kb.summarize import Summarizer, SummaryCache, SummaryOptions, summarize_paths

        caller.require("summarize")
        if self.llm is None:
            raise InputError("this server was started without an LLM; summaries need one")
        kb = self.handle()
        allow = self.allow(kb, caller)
        docs = [d for d in _documents_at(kb, path) if allow is None or d.id in allow]
        if not docs:
            raise NotFound(f"{path}: not in the knowledge base")
        options = SummaryOptions(words=words, overview_words=overview_words, style=style)
        with self._llm_turn(False, ticket, cancel):
            llm = CancellableLLM(self.llm, cancel)
            summarizer = Summarizer(lambda: llm, _model_id(self), self.embedder, self.settings, options)
            report = summarize_paths(
                [Path(d.path) for d in docs], summarizer, SummaryCache(self.folder / "summaries"), isolate=True
            )
        return summary_json(report, style)

    # --- status -----------------------------------------------------------------------------------
    def status(self, caller: Caller) -> dict:
        """`GET /v1/status`: what this caller can see, the models, the queue."""
        kb = self.handle()
        allow = self.allow(kb, caller)
        docs = [d for d in kb.store.documents() if allow is None or d.id in allow]
        return {
            "name": self.name,
            "kb_id": self.id,
            "documents": len(docs),
            "chunks": sum(d.n_chunks for d in docs),
            "generation": self._generation,
            "vectors": self._vectors.size if allow is None else None,
            "embedding": kb.manifest.embed_name,
            "llm": getattr(self.llm, "name", None),
            "queue": self.queue.stats().to_json(),
            "access": {
                "auth": self.auth_required,
                "token": caller.token or None,
                "groups": None if caller.access.groups is None else sorted(caller.access.groups),
                "scopes": list(caller.scopes),
            },
            "uptime_seconds": round(time.time() - self.started, 1),
        }


def _add_wait(answer: Any, ticket: Ticket | None) -> None:
    """Record in the answer's timings how long it waited for the LLM (`timings.queue_wait`)."""
    if ticket is not None:
        answer.timings["queue_wait"] = ticket.wait_seconds


def summary_json(report: Any, style: str) -> dict:
    """The summary report as JSON: the entries of `kb summarize --json` (files, overview)."""

    def entry(summary: Any, path: str, status: str, reason: str) -> dict:
        out: dict[str, Any] = {"path": path, "status": status, "reason": reason}
        if summary is not None:
            body = summary.to_json(style)
            body.pop("path", None)
            out.update(body)
        return out

    return {
        "files": [entry(f.summary, f.path, f.status, f.reason) for f in report.files],
        "overview": None if report.overview is None else entry(report.overview, report.overview.path, "summarised", ""),
        "seconds": round(report.seconds, 3),
    }


def _documents_at(kb: KnowledgeBase, path: str) -> list[Any]:
    """Stored documents at `path` or under it (a folder)."""
    want = path.rstrip("/") or "/"
    prefix = want if want.endswith("/") else want + "/"
    return [d for d in kb.store.documents() if d.path == want or d.path.startswith(prefix)]


def _model_id(service: Service) -> str:
    from kb.llm import conversion_for, resolve_gguf
    from kb.summarize import gguf_model_id

    if service._llm_override is not None:
        return str(getattr(service.llm, "name", "llm"))
    s = service.settings
    weights = conversion_for(s.llm_model, s.llm_convert)
    return gguf_model_id(resolve_gguf(s.llm_model)) + ("" if weights == "off" else f":{weights}")


def _mode(mode: str | None, default: str) -> str:
    from kb.retrieval import MODES

    mode = mode or default
    if mode not in MODES:
        raise InputError(f"mode {mode!r}: use one of {', '.join(MODES)}")
    return mode


def _check_k(k: int) -> None:
    if not 1 <= k <= 100:
        raise InputError(f"k {k}: must be between 1 and 100")


def _inode(path: Path) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0
