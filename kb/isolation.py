"""Parse files in a separate worker process, so a parser that hangs, crashes or eats memory
costs one file, never the run."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from ingest.types import Chunk


@dataclass(frozen=True)
class ParseJob:
    """What the worker needs to turn a file into chunks."""

    path: str
    password: str
    tokenizer_file: str
    chunk_tokens: int
    chunk_overlap: int


@dataclass(frozen=True)
class ParsedChunks:
    """A parsed, chunked file (the full text stays in the worker)."""

    format: str
    title: str
    n_pages: int | None
    chunks: list[Chunk]
    warnings: tuple[str, ...]


def parse_and_chunk(job: ParseJob, tokenizers: dict[str, object] | None = None) -> ParsedChunks:
    """Parse one file and cut it into chunks (runs inside the worker, or inline in tests)."""
    from ingest.chunking import HFTokenizer, WhitespaceTokenizer, chunk_document
    from ingest.formats import parse_file

    cache = tokenizers if tokenizers is not None else {}
    tok = cache.get(job.tokenizer_file)
    if tok is None:
        tok = WhitespaceTokenizer() if job.tokenizer_file == "" else HFTokenizer.from_file(Path(job.tokenizer_file))
        cache[job.tokenizer_file] = tok
    doc = parse_file(Path(job.path), password=job.password)
    chunks = chunk_document(doc, tok, size=job.chunk_tokens, overlap=job.chunk_overlap)  # type: ignore[arg-type]
    return ParsedChunks(doc.format, doc.title, doc.n_pages, chunks, doc.warnings)


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


def _worker(conn: Connection, parent_pid: int, memory_mb: int, parse: ParseFn) -> None:
    from ingest.errors import ParseError

    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    os.dup2(2, 1)  # a parser library that prints must not corrupt `kb ... --json` on stdout
    _limit_memory(memory_mb)
    oom = (
        f"out of memory while parsing (over parse_memory_mb={memory_mb}; raise it to read this file)"
        if memory_mb > 0
        else "out of memory while parsing"
    )
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


class ParseWorker:
    """One long-lived worker process; killed and restarted when a file times out or crashes it.

    The worker's address space is capped at `memory_mb` (0 = no cap), it ignores Ctrl-C (the
    parent stops it) and it exits when the parent dies, so a killed kb leaves no parser behind.
    `parse` is the function run on each job (a module-level function; tests substitute one).
    """

    def __init__(self, timeout: float, memory_mb: int = 0, parse: ParseFn = parse_and_chunk) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self._parse = parse
        self._ctx = mp.get_context("spawn")
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._pending: ParseJob | None = None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker, args=(child, os.getpid(), self.memory_mb, self._parse), daemon=True)
        try:
            proc.start()
        finally:
            child.close()
        self._proc, self._conn = proc, parent

    def submit(self, job: ParseJob) -> None:
        """Start parsing a file; collect the result with `result()`."""
        if self._proc is None or not self._proc.is_alive():
            self._kill()
            self._start()
        assert self._conn is not None
        self._conn.send(job)
        self._pending = job

    def result(self) -> ParsedChunks | str:
        """The parsed chunks, or a one-line reason the file failed."""
        assert self._conn is not None and self._pending is not None
        self._pending = None
        try:
            if not self._conn.poll(self.timeout):
                self._kill()
                return f"timed out after {self.timeout:g} s (raise parse_timeout)"
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            if self._proc is not None:
                self._proc.join(1)
            code = self._proc.exitcode if self._proc else None
            self._kill()
            return _crash_reason(code)
        if status == "fatal":
            self._kill()  # a fresh worker for the next file: this one may have left its heap in pieces
        return payload if status == "ok" else str(payload)

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
