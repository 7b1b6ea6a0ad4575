"""Parse files in separate worker processes, so a parser that hangs, crashes or eats memory
costs one file, never the run; several workers parse files in parallel.

A worker's time budget (`parse_timeout`) counts the time its parser runs or waits on its own
(on Linux: wall time less the time spent waiting for a core, from /proc/PID/schedstat), so a
worker that yields the cores to the embedder is not timed out for it; each finished PDF page
starts the budget again, so a long PDF is bounded per page, not as a whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ingest.types import Chunk

if TYPE_CHECKING:
    from kb.config import Settings

# Parse workers run at this lower priority, so the embedder keeps the cores while both have
# work and the parsers use what it leaves; their budget does not count the time they wait.
PARSE_NICE = 10
_TICK_SECONDS = 0.25  # a worker reports progress at most this often
_POLL_SECONDS = 0.25  # how often busy workers are checked against their budget


@dataclass(frozen=True)
class ParseJob:
    """What the worker needs to turn a file into chunks."""

    path: str
    password: str
    tokenizer_file: str
    chunk_tokens: int
    chunk_overlap: int
    pdf_engine: str = "auto"
    ocr: str = "auto"
    ocr_dpi: int = 200
    ocr_page_timeout: float = 60.0

    @classmethod
    def of(cls, path: str | Path, settings: Settings, tokenizer_file: str) -> ParseJob:
        """The job for one file under the knowledge base's settings (ingest and summaries alike)."""
        s = settings
        return cls(
            str(path),
            s.pdf_password,
            tokenizer_file,
            s.chunk_tokens,
            s.chunk_overlap,
            pdf_engine=s.pdf_engine,
            ocr=s.ocr,
            ocr_dpi=s.ocr_dpi,
            ocr_page_timeout=s.ocr_page_timeout,
        )


@dataclass(frozen=True)
class ParsedChunks:
    """A parsed, chunked file (the full text stays in the worker)."""

    format: str
    title: str
    n_pages: int | None
    chunks: list[Chunk]
    warnings: tuple[str, ...]
    parse_seconds: float = 0.0  # time spent parsing, then chunking, in the worker
    chunk_seconds: float = 0.0


# Set inside a worker process: called by parsers after each page, so the parent sees progress.
_heartbeat: Callable[[], None] | None = None


def _page_done() -> None:
    if _heartbeat is not None:
        _heartbeat()


def parse_and_chunk(job: ParseJob, tokenizers: dict[str, object] | None = None) -> ParsedChunks:
    """Parse one file and cut it into chunks (runs inside the worker, or inline in tests)."""
    from ingest.chunking import HFTokenizer, WhitespaceTokenizer, chunk_document
    from ingest.formats import parse_file
    from ingest.ocr import OcrOptions

    cache = tokenizers if tokenizers is not None else {}
    tok = cache.get(job.tokenizer_file)
    if tok is None:
        tok = WhitespaceTokenizer() if job.tokenizer_file == "" else HFTokenizer.from_file(Path(job.tokenizer_file))
        cache[job.tokenizer_file] = tok
    started = time.perf_counter()
    ocr = OcrOptions(job.ocr, job.ocr_dpi, job.ocr_page_timeout)
    doc = parse_file(Path(job.path), password=job.password, pdf_engine=job.pdf_engine, on_page=_page_done, ocr=ocr)
    parsed = time.perf_counter()
    chunks = chunk_document(doc, tok, size=job.chunk_tokens, overlap=job.chunk_overlap)  # type: ignore[arg-type]
    chunked = time.perf_counter()
    return ParsedChunks(doc.format, doc.title, doc.n_pages, chunks, doc.warnings, parsed - started, chunked - parsed)


ParseFn = Callable[[ParseJob, dict[str, object]], ParsedChunks]


def _limit_memory(memory_mb: int) -> None:
    """Cap this process's address space, so a parser that blows up gets MemoryError, not the OOM killer."""
    if memory_mb <= 0:
        return
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_mb * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass  # not enforceable here (e.g. macOS); the timeout still bounds the damage


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when kb itself dies (even by SIGKILL), so no parser is left running."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:  # portable fallback: a parser stuck in Python code still lets this run
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker(conn: Connection, parent_pid: int, memory_mb: int, parse: ParseFn, nice: int = 0) -> None:
    global _heartbeat
    from ingest.errors import ParseError

    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    os.dup2(2, 1)  # a parser library that prints must not corrupt `kb ... --json` on stdout
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per worker: the workers are the parallelism
    if nice > 0:
        with contextlib.suppress(AttributeError, OSError):
            os.nice(nice)
    _limit_memory(memory_mb)
    oom = (
        f"out of memory while parsing (over parse_memory_mb={memory_mb}; raise it to read this file)"
        if memory_mb > 0
        else "out of memory while parsing"
    )
    last_tick = 0.0

    def tick() -> None:
        nonlocal last_tick
        now = time.monotonic()
        if now - last_tick >= _TICK_SECONDS:
            last_tick = now
            conn.send(("tick", None))

    _heartbeat = tick
    tokenizers: dict[str, object] = {}
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            conn.send(("ok", parse(job, tokenizers)))
        except MemoryError:
            conn.send(("fatal", oom))
        except ParseError as exc:
            if isinstance(exc.__cause__, MemoryError):
                conn.send(("fatal", oom))
            else:
                conn.send(("error", exc.reason))
        except Exception as exc:  # a parser bug must not end the batch: report it as this file's failure
            last = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
            conn.send(("error", f"parser error: {type(exc).__name__}: {str(exc)[:120]}{where}"))


def _crash_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (killed: out of memory?)" if name == "SIGKILL" else ""
        return f"parser crashed ({name}){hint}"
    return f"parser crashed (exit code {exitcode})"


def _waited_for_cpu(pid: int) -> float | None:
    """Seconds process `pid` has spent runnable but waiting for a core (Linux), else None."""
    try:
        with open(f"/proc/{pid}/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


class _Budget:
    """The time a worker's job has used: wall time less the time it waited for a core."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.restart()

    def restart(self) -> None:
        self._wall = time.monotonic()
        self._queued = _waited_for_cpu(self.pid) if self.pid else None

    def used(self) -> float:
        wall = time.monotonic() - self._wall
        if self._queued is None or self.pid is None:
            return wall
        now = _waited_for_cpu(self.pid)
        return wall if now is None else max(0.0, wall - (now - self._queued))


@dataclass(frozen=True)
class Failure:
    """Why a file could not be parsed; `kind` is "error", "timeout", "memory" or "crash"."""

    reason: str
    kind: str


class ParseWorker:
    """One long-lived worker process; killed and restarted when a file times out or crashes it.

    The worker's address space is capped at `memory_mb` (0 = no cap), it ignores Ctrl-C (the
    parent stops it) and it exits when the parent dies, so a killed kb leaves no parser behind.
    `parse` is the function run on each job (a module-level function; tests substitute one);
    `nice` lowers the worker's priority.
    """

    def __init__(self, timeout: float, memory_mb: int = 0, parse: ParseFn = parse_and_chunk, nice: int = 0) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.nice = nice
        self._parse = parse
        self._ctx = mp.get_context("spawn")
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._pending: ParseJob | None = None
        self._budget: _Budget | None = None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_worker, args=(child, os.getpid(), self.memory_mb, self._parse, self.nice), daemon=True
        )
        try:
            proc.start()
        finally:
            child.close()
        self._proc, self._conn = proc, parent

    @property
    def busy(self) -> bool:
        """True while a submitted job has not been collected."""
        return self._pending is not None

    @property
    def connection(self) -> Connection | None:
        """The pipe to the worker, for waiting on several workers at once."""
        return self._conn

    def submit(self, job: ParseJob) -> None:
        """Start parsing a file; collect the result with `result()` or `poll()`."""
        if self._proc is None or not self._proc.is_alive():
            self._kill()
            self._start()
        assert self._conn is not None and self._proc is not None
        self._conn.send(job)
        self._pending = job
        self._budget = _Budget(self._proc.pid)

    def poll(self) -> ParsedChunks | Failure | None:
        """The finished job's result, a Failure (also when it ran over its budget), or None
        while it is still being parsed. Never blocks."""
        assert self._conn is not None and self._pending is not None and self._budget is not None
        try:
            while self._conn.poll():
                status, payload = self._conn.recv()
                if status == "tick":
                    self._budget.restart()
                    continue
                self._pending = None
                if status == "fatal":
                    self._kill()  # a fresh worker for the next file: this one may have left its heap in pieces
                    return Failure(str(payload), "memory")
                return payload if status == "ok" else Failure(str(payload), "error")
        except (EOFError, OSError):
            if self._proc is not None:
                self._proc.join(1)
            code = self._proc.exitcode if self._proc else None
            self._kill()
            self._pending = None
            return Failure(_crash_reason(code), "crash")
        if self._budget.used() > self.timeout:
            self._kill()
            self._pending = None
            return Failure(f"timed out after {self.timeout:g} s (raise parse_timeout)", "timeout")
        return None

    def result(self) -> ParsedChunks | str:
        """The parsed chunks, or a one-line reason the file failed (waits for it)."""
        while True:
            assert self._conn is not None
            wait([self._conn], timeout=_POLL_SECONDS)
            got = self.poll()
            if got is not None:
                return got.reason if isinstance(got, Failure) else got

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def close(self) -> None:
        """Stop the worker."""
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(2)
            except OSError:
                pass
        self._kill()
        self._pending = None


T = TypeVar("T")


def _is_pdf(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(5) == b"%PDF-"
    except OSError:
        return False


class ParsePool(Generic[T]):
    """`workers` parse workers fed in the order files arrive; each result is handed back as soon
    as it is ready, so a 600-page PDF does not hold up the small files queued behind it.

    At most one file per worker is parsed ahead of the consumer, which bounds memory. A PDF
    whose parser crashed the worker with pdf_engine "auto" (PDFium) is parsed once more with pypdf.
    """

    def __init__(
        self, workers: int, timeout: float, memory_mb: int = 0, parse: ParseFn = parse_and_chunk, nice: int = 0
    ) -> None:
        self._workers = [ParseWorker(timeout, memory_mb, parse, nice) for _ in range(max(1, workers))]

    def map(self, items: Iterable[T], make_job: Callable[[T], ParseJob]) -> Iterator[tuple[T, ParsedChunks | str]]:
        """(item, parsed chunks or a one-line failure reason) for every item, in the order they finish."""
        queue = deque(items)
        assigned: dict[int, tuple[T, ParseJob, bool]] = {}  # worker index -> (item, job, a retry?)
        order: deque[int] = deque()  # busy workers in the order they were given their files

        def give(index: int, item: T, job: ParseJob, retry: bool) -> None:
            self._workers[index].submit(job)
            assigned[index] = (item, job, retry)
            order.append(index)

        def feed() -> None:
            for index, worker in enumerate(self._workers):
                if not queue:
                    return
                if not worker.busy:
                    item = queue.popleft()
                    give(index, item, make_job(item), False)

        feed()
        while order:
            conns = [c for i in order if (c := self._workers[i].connection) is not None]
            wait(conns, timeout=_POLL_SECONDS)
            for index in list(order):
                got = self._workers[index].poll()
                if got is None:
                    continue
                order.remove(index)
                item, job, retry = assigned.pop(index)
                if isinstance(got, Failure):
                    if got.kind == "crash" and job.pdf_engine == "auto" and _is_pdf(job.path):
                        give(index, item, dataclasses.replace(job, pdf_engine="pypdf"), True)
                        continue
                    outcome: ParsedChunks | str = got.reason
                elif retry:
                    note = "PDFium crashed on it; read with pypdf"
                    outcome = dataclasses.replace(got, warnings=(*got.warnings, note))
                else:
                    outcome = got
                feed()
                yield item, outcome

    def close(self) -> None:
        """Stop every worker."""
        for worker in self._workers:
            worker.close()

    def __enter__(self) -> ParsePool[T]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
