"""Parse files in a separate worker process, so a parser that hangs, crashes or eats memory
costs one file, never the run."""

from __future__ import annotations

import multiprocessing as mp
import traceback
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


def _worker(conn: Connection) -> None:
    from ingest.errors import ParseError

    tokenizers: dict[str, object] = {}
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            conn.send(("ok", parse_and_chunk(job, tokenizers)))
        except ParseError as exc:
            conn.send(("error", exc.reason))
        except MemoryError:
            conn.send(("error", "out of memory while parsing"))
        except Exception as exc:  # a parser bug must not end the batch: report it as this file's failure
            last = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
            conn.send(("error", f"parser error: {type(exc).__name__}: {str(exc)[:120]}{where}"))


class ParseWorker:
    """One long-lived worker process; killed and restarted when a file times out or crashes it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._ctx = mp.get_context("spawn")
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._pending: ParseJob | None = None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_worker, args=(child,), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent

    def submit(self, job: ParseJob) -> None:
        """Start parsing a file; collect the result with `result()`."""
        if self._proc is None or not self._proc.is_alive():
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
            code = self._proc.exitcode if self._proc else None
            self._kill()
            return f"parser crashed (exit code {code})"
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
