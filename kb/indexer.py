"""Ingest: bring the knowledge base in step with files and folders.

Unchanged files (same size and mtime, or same content hash) are skipped without re-embedding;
changed files are re-parsed and replace their old chunks; moved files keep their vectors;
files that vanished from an ingested folder are removed. Each file is stored in its own
transaction, so an interrupted run keeps everything finished before it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ingest.discover import discover
from ingest.formats import SUPPORTED
from kb.errors import InputError
from kb.isolation import ParsedChunks, ParseJob, ParseWorker, parse_and_chunk
from kb.knowledge import KnowledgeBase

STATUSES = ("added", "updated", "moved", "unchanged", "removed", "skipped", "failed")


@dataclass(frozen=True)
class FileResult:
    """What ingest did with one file."""

    path: str
    status: str  # one of STATUSES
    reason: str = ""
    chunks: int = 0
    moved_from: str | None = None


@dataclass
class IngestReport:
    """The outcome of one ingest run."""

    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    def count(self, status: str) -> int:
        """How many files ended with this status."""
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[FileResult]:
        """Files that could not be ingested."""
        return [r for r in self.results if r.status == "failed"]

    def summary(self) -> dict[str, int]:
        """Counts per status."""
        return {s: self.count(s) for s in STATUSES}


Progress = Callable[[int, int, FileResult | None], None]


def file_sha256(path: Path) -> str:
    """Content hash, read in blocks so huge files stay out of memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def embedding_text(title: str, heading_path: tuple[str, ...], text: str) -> str:
    """The text that is embedded for a chunk: its context (title, headings) then its body."""
    context = " > ".join(p for p in (title, *heading_path) if p)
    return f"{context}\n{text}" if context else text


def _targets(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(files to consider, folders whose vanished documents should be removed)."""
    files, folders = [], []
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        p = p.resolve()
        if p.is_dir():
            folders.append(p)
        files.extend(discover([p]))
    seen: set[Path] = set()
    unique = [f for f in files if not (f in seen or seen.add(f))]  # type: ignore[func-returns-value]
    return unique, folders


def ingest(
    kb: KnowledgeBase,
    paths: list[Path],
    *,
    progress: Progress | None = None,
    dry_run: bool = False,
    isolate: bool = True,
) -> IngestReport:
    """Add, update, move and remove documents so the knowledge base matches `paths`."""
    started = time.monotonic()
    settings = kb.settings
    if not dry_run:
        # Load (or rebuild) the vector cache before the store changes, so it is updated, not
        # rebuilt from a half-updated store and then updated again.
        _ = kb.vectors
    files, folders = _targets(paths)
    report = IngestReport(dry_run=dry_run)
    stored = {d.path: d for d in kb.store.documents()}
    present = {str(f) for f in files}
    vanished = {
        p: d for p, d in stored.items()
        if p not in present and any(Path(p).is_relative_to(folder) for folder in folders)
    }
    vanished_by_hash = {d.sha256: p for p, d in vanished.items()}
    total = len(files)
    done = 0

    def emit(result: FileResult | None) -> None:
        if result is not None:
            report.results.append(result)
        if progress:
            progress(done, total, result)

    emit(None)
    todo: list[tuple[Path, str, os.stat_result, bool]] = []  # (path, sha, stat, is_update)
    for path in files:
        key = str(path)
        try:
            st = path.stat()
        except OSError as exc:
            done += 1
            emit(FileResult(key, "failed", f"cannot read ({exc.strerror})"))
            continue
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED:
            done += 1
            emit(FileResult(key, "skipped", f"unsupported file type '{suffix or path.name}'"))
            continue
        old = stored.get(key)
        if old and old.size == st.st_size and old.mtime == st.st_mtime:
            done += 1
            emit(FileResult(key, "unchanged", chunks=old.n_chunks))
            continue
        if st.st_size > settings.max_file_mb * 1024 * 1024:
            done += 1
            emit(FileResult(key, "failed", f"too large ({st.st_size / 2**20:.0f} MB > max_file_mb {settings.max_file_mb:g})"))
            continue
        try:
            sha = file_sha256(path)
        except OSError as exc:
            done += 1
            emit(FileResult(key, "failed", f"cannot read ({exc.strerror})"))
            continue
        if old and old.sha256 == sha:
            if not dry_run:
                kb.store.touch(key, st.st_mtime)
            done += 1
            emit(FileResult(key, "unchanged", chunks=old.n_chunks))
            continue
        if not old and sha in vanished_by_hash:
            old_path = vanished_by_hash.pop(sha)
            vanished.pop(old_path, None)
            if not dry_run:
                kb.store.update_location(old_path, key, st.st_mtime)
            done += 1
            emit(FileResult(key, "moved", chunks=stored[old_path].n_chunks, moved_from=old_path))
            continue
        if dry_run:
            done += 1
            emit(FileResult(key, "updated" if old else "added"))
            continue
        todo.append((path, sha, st, old is not None))

    buffer: list[tuple[Path, str, os.stat_result, bool, ParsedChunks]] = []

    def flush() -> None:
        # Embed several small files together: batches of one or two chunks waste the embedder.
        nonlocal done
        texts = [embedding_text(p.title, c.heading_path, c.text) for *_, p in buffer for c in p.chunks]
        vectors = kb.embedder.embed(texts, batch_size=settings.embed_batch) if texts else None
        offset = 0
        for path, sha, st, is_update, parsed in buffer:
            n = len(parsed.chunks)
            vecs = vectors[offset : offset + n] if vectors is not None else np.zeros((0, kb.manifest.dim))
            offset += n
            removed, added = kb.store.replace_document(
                path=str(path), sha256=sha, size=st.st_size, mtime=st.st_mtime, format=parsed.format,
                title=parsed.title or path.stem, n_pages=parsed.n_pages, chunks=parsed.chunks, vectors=vecs,
            )
            kb.vectors.remove(removed)
            kb.vectors.add(added, vecs)
            done += 1
            emit(FileResult(str(path), "updated" if is_update else "added", chunks=len(added)))
        buffer.clear()

    for path, sha, st, is_update, parsed in _parse_all(kb, todo, isolate):
        if isinstance(parsed, str):
            done += 1
            emit(FileResult(str(path), "failed", parsed))
            continue
        buffer.append((path, sha, st, is_update, parsed))
        if sum(len(b[-1].chunks) for b in buffer) >= settings.embed_batch * 4:
            flush()
    flush()

    for old_path in sorted(vanished):
        if not dry_run:
            kb.vectors.remove(kb.store.remove_document(old_path))
        emit(FileResult(old_path, "removed"))
    if not dry_run:
        kb.save_vectors()
    report.seconds = time.monotonic() - started
    return report


def _parse_all(
    kb: KnowledgeBase, todo: list[tuple[Path, str, os.stat_result, bool]], isolate: bool
) -> Iterator[tuple[Path, str, os.stat_result, bool, ParsedChunks | str]]:
    """Parse files one ahead of the consumer, so parsing overlaps with embedding."""
    settings = kb.settings
    tok_file = kb.embedder.tokenizer_file

    def job(path: Path) -> ParseJob:
        return ParseJob(str(path), settings.pdf_password, tok_file, settings.chunk_tokens, settings.chunk_overlap)

    if not isolate:
        for path, sha, st, upd in todo:
            from ingest.errors import ParseError

            try:
                yield path, sha, st, upd, parse_and_chunk(job(path))
            except ParseError as exc:
                yield path, sha, st, upd, exc.reason
        return
    worker = ParseWorker(settings.parse_timeout)
    try:
        if todo:
            worker.submit(job(todo[0][0]))
        for i, (path, sha, st, upd) in enumerate(todo):
            parsed = worker.result()
            if i + 1 < len(todo):
                worker.submit(job(todo[i + 1][0]))
            yield path, sha, st, upd, parsed
    finally:
        worker.close()
