"""Ingest and summaries on a Ray cluster (`kb ingest --engine ray`, `kb summarize --engine ray`).

The driver (the `kb ingest` process) plans as it always does: it discovers the files, hashes
them and decides what changed (kb/indexer.py). Only the files to (re)parse go to Ray, as a
Ray Dataset of parse jobs. Workers are actors that each load the embedding model once; every
batch of files is parsed in the actor's own isolated parse process (kb/isolation.py: the same
time and memory limits as a local run), chunked and embedded there. The chunks and vectors
stream back and the driver stores them file by file, in the same transactions as a local run,
so the knowledge base is the one a local run builds.

When the collection passes the size at which kb switches to an IVF index, the driver trains the
IVF quantizer once, on a sample, and Ray workers (`ShardWorker`) add the vectors, in pieces, to
copies of that trained empty index; the driver merges the shards in order (kb/shards.py), so the
index is the one a local build makes, and the manifest records the layout.

`kb summarize --engine ray` sends the files without a cached summary to actors that each load the
LLM once; the summaries come back to the driver, which caches them and makes the overview.

Ray is optional (`pip install 'kb[ray]'`) and imported only here, only when this engine runs.
The planning and merging logic (`job_rows`, `pack`, `unpack`, `merge`) needs no Ray.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from kb.errors import ConfigError, KBError, ModelNotFound
from kb.isolation import ParsedChunks, ParseJob

if TYPE_CHECKING:
    from kb.config import Settings
    from kb.isolation import ParseWorker
    from kb.knowledge import KnowledgeBase
    from kb.summarize import Summarizer, Summary, SummaryOptions

T = TypeVar("T")
Outcome = ParsedChunks | str  # parsed chunks, or the one-line reason the file failed

RAY_MISSING = "--engine ray needs Ray, which is not installed: pip install 'kb[ray]'"
ENGINES = ("local", "ray")
FILES_PER_BATCH = 4  # files a worker parses and embeds per task (a lost task redoes these only)
ACTOR_RETRIES = 3  # a worker that dies is restarted and its batch retried this many times


def import_ray() -> Any:
    """The `ray` module with Ray Data, or ConfigError saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigError(RAY_MISSING) from exc
    return ray


# --- planning and merging (no Ray needed) ----------------------------------------------------


def job_rows(jobs: Sequence[ParseJob]) -> list[dict[str, Any]]:
    """The Dataset rows for the files to parse: their position in the plan and the pickled job
    (one binary column, so every field of ParseJob travels as it is)."""
    return [{"index": i, "job": pickle.dumps(job)} for i, job in enumerate(jobs)]


def pack(index: int, outcome: Any, vectors: np.ndarray | None) -> dict[str, Any]:
    """A worker's answer for one file, as a Dataset row."""
    return {"index": index, "payload": pickle.dumps((outcome, vectors))}


def unpack(row: dict[str, Any]) -> tuple[int, Any, np.ndarray | None]:
    """The inverse of `pack` (values may arrive as numpy scalars)."""
    outcome, vectors = pickle.loads(bytes(row["payload"]))
    return int(row["index"]), outcome, vectors


def merge(items: Sequence[T], rows: Iterable[dict[str, Any]]) -> Iterator[tuple[T, Any, np.ndarray | None]]:
    """(item, outcome, vectors) for every planned item, as the workers' rows arrive.

    A row for an item already answered (a retried batch that had in fact finished) is dropped.
    If the rows stop with an error (the cluster gave up on a batch), or end without some item,
    each item not answered is reported failed with the reason: nothing is silently lost, and
    what was stored before stays stored.
    """
    answered: set[int] = set()
    failure = "not processed by the Ray cluster"
    try:
        for row in rows:
            index, outcome, vectors = unpack(row)
            if index in answered or not 0 <= index < len(items):
                continue
            answered.add(index)
            yield items[index], outcome, vectors
    except KBError:
        raise
    except Exception as exc:  # a task that failed past its retries ends the stream
        failure = f"the Ray cluster failed on it ({_one_line(exc)})"
    for index, item in enumerate(items):
        if index not in answered:
            yield item, failure, None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    # Ray wraps a worker's error in several layers of traceback; the last line is the cause.
    tail = str(exc).strip().splitlines()[-1:] if str(exc).strip() else []
    if tail and len(text) > 160:
        text = " ".join(tail[0].split())
    return f"{type(exc).__name__}: {text[:160]}"


# --- the workers -----------------------------------------------------------------------------


def _parse_one(parser: ParseWorker | None, job: ParseJob) -> Outcome:
    """Parse and chunk a file in the isolated parse process, or inline without one (tests)."""
    if parser is None:
        from ingest.errors import ParseError
        from kb.isolation import parse_and_chunk

        try:
            return parse_and_chunk(job)
        except ParseError as exc:
            return exc.reason
    parser.submit(job)
    return parser.result()


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs from the driver's settings (picklable, sent once per actor)."""

    embed_model: str
    embed_backend: str
    embed_batch: int
    threads: int
    parse_timeout: float
    parse_memory_mb: int
    fingerprint: str  # the driver's embedding model: a worker with another one refuses to start
    isolate: bool = True

    @classmethod
    def of(cls, settings: Settings, fingerprint: str, threads: int, isolate: bool = True) -> WorkerConfig:
        """The worker configuration for these settings."""
        return cls(
            settings.embed_model,
            settings.embed_backend,
            settings.embed_batch,
            threads,
            settings.parse_timeout,
            settings.parse_memory_mb,
            fingerprint,
            isolate,
        )


class ParseEmbedWorker:
    """A Ray actor: loads the embedding model once, then parses, chunks and embeds batches of files.

    Parsing runs in the actor's own parse process (kb/isolation.py), so a parser that hangs,
    crashes or eats memory fails one file, never the actor. Also usable without Ray (tests).
    """

    def __init__(self, config: WorkerConfig) -> None:
        from kb.embeddings import load_embedder
        from kb.isolation import ParseWorker

        self.config = config
        self.embedder = load_embedder(config.embed_model, threads=config.threads, backend=config.embed_backend)
        if self.embedder.fingerprint != config.fingerprint:
            raise ModelNotFound(
                f"embedding model {config.embed_model!r} on this worker differs from the driver's "
                f"(fingerprint {self.embedder.fingerprint}, driver {config.fingerprint}): "
                "install the same kb and models on every node"
            )
        self._parser = ParseWorker(config.parse_timeout, config.parse_memory_mb) if config.isolate else None

    def _parse(self, job: ParseJob) -> Outcome:
        # This node's own copy of the tokenizer (the same file: it is part of the fingerprint).
        return _parse_one(self._parser, replace(job, tokenizer_file=self.embedder.tokenizer_file))

    def process(self, jobs: Sequence[tuple[int, ParseJob]]) -> list[tuple[int, Outcome, np.ndarray | None]]:
        """Parse, chunk and embed these files; one embedding call for the whole batch."""
        from kb.indexer import embedding_text

        parsed = [(index, self._parse(job)) for index, job in jobs]
        texts = [
            embedding_text(p.title, c.heading_path, c.text)
            for _, p in parsed
            if isinstance(p, ParsedChunks)
            for c in p.chunks
        ]
        vectors = self.embedder.embed(texts, batch_size=self.config.embed_batch) if texts else None
        out: list[tuple[int, Outcome, np.ndarray | None]] = []
        offset = 0
        for index, p in parsed:
            if isinstance(p, ParsedChunks) and p.chunks and vectors is not None:
                n = len(p.chunks)
                out.append((index, p, vectors[offset : offset + n]))
                offset += n
            else:
                out.append((index, p, None))
        return out

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data's entry point: a batch of `job_rows` in, a batch of `pack` rows out."""
        jobs = [(int(i), pickle.loads(bytes(j))) for i, j in zip(batch["index"], batch["job"], strict=True)]
        rows = [pack(i, outcome, vecs) for i, outcome, vecs in self.process(jobs)]
        return {
            "index": np.array([r["index"] for r in rows], dtype=np.int64),
            "payload": np.array([r["payload"] for r in rows], dtype=object),
        }

    def __del__(self) -> None:
        parser = getattr(self, "_parser", None)
        if parser is not None:
            parser.close()


class ShardWorker:
    """A Ray actor that adds pieces of the vectors to copies of one trained IVF index (kb/shards.py)."""

    def __init__(self, threads: int = 1) -> None:
        import faiss

        faiss.omp_set_num_threads(threads)

    def add(self, empty: np.ndarray, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """The trained empty index (serialised) with these vectors added under their ids, serialised."""
        from kb.shards import add_shard

        return add_shard(empty, ids, vectors)


def shards_on_ray(
    ray: Any,
    actor: type,
    calls: Iterable[tuple[Any, ...]],
    workers: int | None = None,
    cpus: int = 1,
    method: str = "add",
    in_flight: int = 2,
) -> Iterator[Any]:
    """The results of `actor.method(*call)` for each call, in the calls' order, on `workers` actors.

    Call i goes to actor i mod workers, and at most `in_flight` calls per actor are submitted
    ahead of the one awaited, so the inputs and shards held by the object store stay bounded
    while every actor has its next piece ready. A call that fails (its actor died) is retried on
    the restarted actor, up to ACTOR_RETRIES times.
    """
    wanted = worker_count(ray, workers, cpus)
    remote = ray.remote(num_cpus=cpus, max_restarts=ACTOR_RETRIES, max_task_retries=ACTOR_RETRIES)(actor)
    pool = [remote.remote(cpus) for _ in range(wanted)]
    pending: deque[Any] = deque()
    try:
        for i, call in enumerate(calls):
            pending.append(getattr(pool[i % wanted], method).remote(*call))
            if len(pending) > wanted * in_flight:
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())
    finally:
        for handle in pool:
            ray.kill(handle)


def build_ivf_on_ray(
    ray: Any,
    dim: int,
    vectors: np.ndarray,
    ids: np.ndarray,
    workers: int | None = None,
    cpus: int = 1,
    piece: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The IVF index over these vectors (kb.vectors.build_ivf's), its shards added on Ray workers; and its layout.

    The quantizer is trained here, on the sample a local build takes, so the index is the local one.
    """
    from kb.shards import PIECE_VECTORS, Merger, pieces, serialize
    from kb.vectors import ivf_layout, ivf_lists, ivf_sample_rows, train_ivf

    nlist = ivf_lists(len(ids))
    rows = ivf_sample_rows(len(ids), nlist)
    empty = train_ivf(dim, vectors if rows is None else vectors[rows], nlist)
    empty_ref = ray.put(serialize(empty))
    calls = ((empty_ref, ids[a:b], vectors[a:b]) for a, b in pieces(len(ids), piece or PIECE_VECTORS))
    used = worker_count(ray, workers, cpus)
    merger = Merger(empty).add_all(shards_on_ray(ray, ShardWorker, calls, used, cpus))
    index = merger.result()
    trained_on = len(ids) if rows is None else len(rows)
    return index, ivf_layout(index, trained_on, merger.shards, built_on=f"ray ({used} workers)")


# --- the engine ------------------------------------------------------------------------------


@contextmanager
def _session(address: str | None) -> Iterator[Any]:
    """The `ray` module, joined to a cluster: the one already joined, the one at `address`, or (None)
    RAY_ADDRESS's, one started with `ray start` on this machine, else a local one for this run."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, include_dashboard=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot start or join {address or 'a local Ray'}: {_one_line(exc)}") from exc
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def worker_count(ray: Any, workers: int | None, cpus: int) -> int:
    """The workers asked for, or (None) as many as the cluster's CPUs hold at `cpus` each."""
    return workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus)


def _map_jobs(
    ray: Any, jobs: list[ParseJob], actor: type, config: Any, workers: int | None, cpus: int, per_batch: int
) -> Iterator[dict[str, Any]]:
    """The rows the actors return for these jobs, as they finish (a Ray Dataset through map_batches)."""
    from ray.data import ActorPoolStrategy, DataContext

    DataContext.get_current().enable_progress_bars = False  # kb's own bar reports files as they are done
    wanted = worker_count(ray, workers, cpus)
    rows = job_rows(jobs)
    blocks = max(1, -(-len(rows) // per_batch))
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    with warnings.catch_warnings():
        # Ray 2.60 warns that actor options given this way go in 2.64 (pyproject bounds Ray below it).
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        results = dataset.map_batches(
            actor,
            fn_constructor_kwargs={"config": config},
            batch_size=per_batch,
            batch_format="numpy",
            compute=ActorPoolStrategy(size=min(wanted, blocks)),
            num_cpus=cpus,
            max_restarts=ACTOR_RETRIES,
            max_task_retries=ACTOR_RETRIES,
        )
    yield from results.iter_rows()


@dataclass
class RayEngine:
    """Runs the parse-chunk-embed stage of `kb ingest` on Ray (kb.indexer.ingest's `engine`).

    `address` is a running cluster's ("auto", "ray://host:10001", "host:6379"); None joins the
    cluster named by RAY_ADDRESS or one started with `ray start` on this machine, else starts a
    local one for this run. `workers` is the number of actors (default: one per CPU of the
    cluster), each given `cpus_per_worker` CPUs and as many embedding threads.
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: int = 1
    files_per_batch: int = FILES_PER_BATCH
    isolate: bool = True

    def __call__(
        self, kb: KnowledgeBase, items: Sequence[T], make_job: Callable[[T], ParseJob]
    ) -> Iterator[tuple[T, Outcome, np.ndarray | None]]:
        """(item, parsed chunks or failure reason, vectors) for each item, as the workers finish them."""
        if not items:
            return
        config = WorkerConfig.of(kb.settings, kb.embedder.fingerprint, self.cpus_per_worker, self.isolate)
        jobs = [make_job(item) for item in items]
        with _session(self.address) as ray:
            rows = _map_jobs(
                ray, jobs, ParseEmbedWorker, config, self.workers, self.cpus_per_worker, self.files_per_batch
            )
            yield from merge(items, rows)

    def build_ivf(self, dim: int, vectors: np.ndarray, ids: np.ndarray) -> tuple[Any, dict[str, Any]]:
        """The IVF index when the knowledge base switches to one (a kb.vectors.IvfBuilder): shards added
        on this engine's cluster, merged here. If the cluster fails, the same index is built here
        instead, and its layout says why: every file is stored by then, and the index is a cache."""
        from kb.vectors import local_ivf

        try:
            with _session(self.address) as ray:
                return build_ivf_on_ray(ray, dim, vectors, ids, self.workers, self.cpus_per_worker)
        except Exception as exc:  # any cluster failure: the local build is the same index
            index, layout = local_ivf(dim, vectors, ids)
            return index, {**layout, "built_on": f"driver (Ray failed: {_one_line(exc)})"}


# --- kb summarize ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryConfig:
    """What a summarising worker needs from the driver (picklable, sent once per actor)."""

    settings: Settings  # the driver's, with the worker's thread count
    options: SummaryOptions
    model_id: str  # the driver's LLM (file and weight format): the cache key depends on it
    fingerprint: str  # the driver's embedding model
    isolate: bool = True


def llm_model_id(settings: Settings) -> str:
    """The LLM as summary cache keys name it: its file and the weight format it runs in."""
    from kb.llm import conversion_for, resolve_gguf
    from kb.summarize import gguf_model_id

    weights = conversion_for(settings.llm_model, settings.llm_convert)
    return gguf_model_id(resolve_gguf(settings.llm_model)) + ("" if weights == "off" else f":{weights}")


class SummarizeWorker:
    """A Ray actor: loads the LLM (on its first file) and the embedding model once, then parses and
    summarises one file per call, exactly as `kb summarize` does locally."""

    def __init__(self, config: SummaryConfig) -> None:
        from kb.embeddings import load_embedder
        from kb.isolation import ParseWorker
        from kb.llm import load_llm
        from kb.summarize import Summarizer

        s = config.settings
        embedder = load_embedder(s.embed_model, threads=s.threads, backend=s.embed_backend)
        model_id = llm_model_id(s)
        if embedder.fingerprint != config.fingerprint or model_id != config.model_id:
            raise ModelNotFound(
                f"the models on this worker (embedding {embedder.fingerprint}, LLM {model_id}) differ from the "
                f"driver's ({config.fingerprint}, {config.model_id}): install the same kb and models on every node"
            )
        self.summarizer = Summarizer(lambda: load_llm(s), model_id, embedder, s, config.options)
        self._parser = ParseWorker(s.parse_timeout, s.parse_memory_mb) if config.isolate else None

    def summarize(self, job: ParseJob) -> Summary | str:
        """The file's summary, or the one-line reason it has none (as a local run words it)."""
        embedder = self.summarizer.embedder
        job = replace(job, tokenizer_file=embedder.tokenizer_file if embedder else "")
        parsed = _parse_one(self._parser, job)
        if isinstance(parsed, str):
            return parsed
        if not parsed.chunks:
            return "no text to summarise"
        return self.summarizer.summarize_document(job.path, parsed)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data's entry point: a batch of `job_rows` in, a batch of `pack` rows out."""
        out = [
            pack(int(i), self.summarize(pickle.loads(bytes(j))), None)
            for i, j in zip(batch["index"], batch["job"], strict=True)
        ]
        return {
            "index": np.array([r["index"] for r in out], dtype=np.int64),
            "payload": np.array([r["payload"] for r in out], dtype=object),
        }

    def __del__(self) -> None:
        parser = getattr(self, "_parser", None)
        if parser is not None:
            parser.close()


@dataclass
class RaySummaryEngine:
    """Summarises files on Ray (kb.summarize.summarize_paths's `engine`): one file per task, spread
    over `workers` actors (default: one per CPU of the cluster) of `cpus_per_worker` CPUs, each
    running the LLM with that many threads."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: int = 1
    isolate: bool = True

    def __call__(
        self, summarizer: Summarizer, items: list[tuple[Path, str]], make_job: Callable[[Path], ParseJob]
    ) -> Iterator[tuple[Path, str, Summary | str]]:
        """(file, content hash, summary or failure reason) for each item, as the workers finish them."""
        if not items:
            return
        settings = replace(summarizer.settings, threads=self.cpus_per_worker)
        fingerprint = getattr(summarizer.embedder, "fingerprint", "")
        config = SummaryConfig(settings, summarizer.options, summarizer.model_id, fingerprint, self.isolate)
        jobs = [make_job(path) for path, _ in items]
        with _session(self.address) as ray:
            rows = _map_jobs(ray, jobs, SummarizeWorker, config, self.workers, self.cpus_per_worker, 1)
            for (path, sha), made, _ in merge(items, rows):
                yield path, sha, made
