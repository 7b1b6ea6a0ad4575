"""Ingest: bring the knowledge base in step with files and folders.

Unchanged files (same size, mtime, ctime and inode, or same content hash) are skipped without
re-embedding; changed files are re-parsed and replace their old chunks; moved files (same
content at a new path, the old path gone) keep their vectors; files that vanished from an
ingested folder are removed. Each file is stored in its own transaction, so an interrupted
run keeps everything finished before it and a re-run finishes the job.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ingest.discover import IGNORE_FILE, discover, read_ignore, unreadable_folder
from ingest.formats import SUPPORTED
from ingest.image import OCR_OFF_REASON
from kb.config import Settings
from kb.errors import InputError
from kb.groups import GroupResolver
from kb.isolation import PARSE_NICE, ParsedChunks, ParseJob, ParsePool, parse_and_chunk
from kb.knowledge import KnowledgeBase
from kb.store import DocumentRow, UnreadFile

STATUSES = ("added", "updated", "moved", "unchanged", "removed", "skipped", "failed")
STAGES = ("parse", "chunk", "embed", "store", "wait")


@dataclass(frozen=True)
class FileResult:
    """What ingest did with one file."""

    path: str
    status: str  # one of STATUSES ("embedding" only in progress reports, never in the report)
    reason: str = ""
    chunks: int = 0
    moved_from: str | None = None
    # What the parser reported beside the text: parts not read (an attachment, an archive
    # member) and rows indexed per sheet (ParsedDocument.warnings).
    notes: tuple[str, ...] = ()
    pages: int = 0  # pages of a PDF parsed (0 for formats without pages)
    known: bool = False  # a failure seen before on this same, unchanged file: not tried again


@dataclass
class IngestReport:
    """The outcome of one ingest run."""

    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False
    # Seconds per stage: parse and chunk summed over the parse workers (they run in parallel with
    # the rest), embed and store in this process, wait = this process waiting for parsed files.
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def count(self, status: str) -> int:
        """How many files ended with this status."""
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[FileResult]:
        """Files that could not be ingested."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def new_failures(self) -> list[FileResult]:
        """Failures not seen before on the same, unchanged file."""
        return [r for r in self.failed if not r.known]

    def summary(self) -> dict[str, int]:
        """Counts per status."""
        return {s: self.count(s) for s in STATUSES}


Progress = Callable[[int, int, FileResult | None], None]  # also told "embedding" for a file in progress
EMBED_STEP = 512  # passages embedded between progress reports


@dataclass(frozen=True)
class Work:
    """How far an ingest run is, in the units that take time: pages and passages stored, and
    the bytes of the files to parse (`bytes_done` counts a file being embedded in part)."""

    files_done: int
    files_total: int
    pages: int
    passages: int
    bytes_done: float
    bytes_total: int
    seconds: float


WorkProgress = Callable[[Work], None]


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


def require_paths(paths: Sequence[Path]) -> None:
    """Raise InputError naming the first path that does not exist (before anything is created)."""
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")


def _targets(paths: list[Path]) -> tuple[list[Path], list[Path], list[FileResult]]:
    """(files to consider, folders whose vanished documents should be removed, a failure for
    each folder below them that could not be listed)."""
    files: list[Path] = []
    folders: list[Path] = []
    unreadable: list[FileResult] = []

    def cannot_list(folder: Path, exc: OSError) -> None:
        unreadable.append(FileResult(str(folder), "failed", unreadable_folder(exc)))

    require_paths(paths)
    for p in paths:
        p = p.resolve()
        if p.is_dir():
            folders.append(p)
        files.extend(discover([p], on_error=cannot_list))
    seen: set[Path] = set()
    unique = [f for f in files if not (f in seen or seen.add(f))]  # type: ignore[func-returns-value]
    return unique, folders, unreadable


@dataclass(frozen=True)
class _Parse:
    """A file that must be parsed, chunked and embedded."""

    path: Path
    sha: str
    st: os.stat_result
    is_update: bool


# Parses, chunks and embeds the planned files elsewhere (kb/distributed.py): given the files and
# how to make each one's ParseJob, it yields (file, parsed chunks or failure reason, vectors).
Engine = Callable[
    [KnowledgeBase, list[_Parse], Callable[[_Parse], ParseJob]],
    Iterator[tuple[_Parse, ParsedChunks | str, np.ndarray | None]],
]


def _unchanged_by_stat(old: DocumentRow, st: os.stat_result) -> bool:
    # Size and mtime alone miss a file replaced by another of the same size and mtime (cp -p,
    # coarse clocks); the status-change time and inode change on any replacement and cannot be
    # set by users. Rows from before these were recorded (0) always fall through to the hash.
    return (
        old.size == st.st_size
        and old.mtime == st.st_mtime
        and old.ctime_ns == st.st_ctime_ns
        and old.inode == st.st_ino
        and old.inode != 0
    )


def _classify(
    settings: Settings,
    stored: Mapping[str, DocumentRow],
    files: list[Path],
    vanished: dict[str, DocumentRow],
    known: Mapping[str, UnreadFile] | None = None,
) -> Iterator[FileResult | _Parse | tuple[str, str, os.stat_result, FileResult]]:
    """Decide what each file needs: a final result, a ("touch"|"move", old path, stat, result), or a parse.

    Pops moved documents from `vanished`; what is left there afterwards is to be removed. A file
    in `known` that failed before and is unchanged since is reported as that failure, not tried again.
    """
    known = known or {}
    vanished_by_hash: dict[str, list[str]] = {}
    for p, d in sorted(vanished.items()):
        vanished_by_hash.setdefault(d.sha256, []).append(p)
    limit = settings.max_file_mb * 1024 * 1024
    for path in files:
        key = str(path)
        try:
            st = path.stat()
        except OSError as exc:
            yield FileResult(key, "failed", f"cannot read ({exc.strerror})")
            continue
        seen = known.get(key)
        if seen and seen.status == "failed" and seen.same_file(st.st_size, st.st_mtime, st.st_ctime_ns, st.st_ino):
            yield FileResult(key, "failed", seen.reason, known=True)
            continue
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED:
            # Content may still be a PDF or DOCX under another name; huge files are not sniffed
            # (detection of Office containers reads more than the head).
            refusal = (
                _refusal(path)
                if st.st_size <= limit
                else FileResult(key, "skipped", f"unsupported file type '{suffix or path.name}'")
            )
            if refusal is not None:
                yield refusal
                continue
        if settings.ocr == "off" and SUPPORTED.get(suffix) == "image":
            yield FileResult(key, "skipped", OCR_OFF_REASON)
            continue
        old = stored.get(key)
        if old and _unchanged_by_stat(old, st):
            yield FileResult(key, "unchanged", chunks=old.n_chunks)
            continue
        if st.st_size > limit:
            size = f"{st.st_size / 2**20:.0f} MB"
            yield FileResult(key, "failed", f"too large ({size} > max_file_mb {settings.max_file_mb:g})")
            continue
        try:
            sha = file_sha256(path)
        except OSError as exc:
            yield FileResult(key, "failed", f"cannot read ({exc.strerror})")
            continue
        if old and old.sha256 == sha:
            yield ("touch", key, st, FileResult(key, "unchanged", chunks=old.n_chunks))
            continue
        if not old and vanished_by_hash.get(sha):
            old_path = vanished_by_hash[sha].pop(0)
            moved = vanished.pop(old_path)
            yield ("move", old_path, st, FileResult(key, "moved", chunks=moved.n_chunks, moved_from=old_path))
            continue
        yield _Parse(path, sha, st, old is not None)


def _refusal(path: Path) -> FileResult | None:
    """Why a file with an extension kb does not read is skipped, or None when its content is a
    format kb reads after all (a PDF or DOCX under another name)."""
    from ingest.errors import ParseError, UnsupportedFormat
    from ingest.formats import detect_format

    try:
        with path.open("rb") as fh:
            head = fh.read(1024)
        detect_format(path, head)
    except UnsupportedFormat as exc:
        return FileResult(str(path), "skipped", exc.reason)
    except ParseError as exc:
        return FileResult(str(path), "failed", exc.reason)
    except OSError as exc:
        return FileResult(str(path), "failed", f"cannot read ({exc.strerror})")
    return None


def ingest(
    kb: KnowledgeBase,
    paths: list[Path],
    *,
    progress: Progress | None = None,
    on_work: WorkProgress | None = None,
    dry_run: bool = False,
    isolate: bool = True,
    engine: Engine | None = None,
    retry_failed: bool = False,
    groups: Sequence[str] = (),
) -> IngestReport:
    """Add, update, move and remove documents so the knowledge base matches `paths`.

    `progress` hears of every file; `on_work` of pages, passages and bytes as they are stored.
    `engine` parses, chunks and embeds the files to (re)index elsewhere (kb/distributed.py, a
    Ray cluster); None does it in this process. Planning and storing are the same either way.

    `groups` (checked names, kb/groups.py) are recorded as rules for `paths`: every document
    under them is in those groups, in this run and later ones. Each document's groups (rules
    plus `.kbgroups` files) are stored with it, in the same transaction as its chunks.

    With `dry_run`, nothing is written (the knowledge base may be opened read-only) and the
    report says what would happen; parse failures are only found by a real run. A file that
    failed before and has not changed since is reported as a known failure without being read
    again, unless `retry_failed`.
    """
    known = {} if retry_failed else {u.path: u for u in kb.store.unread()}
    if dry_run:
        return plan(kb.settings, kb.store.documents(), paths, progress=progress, known=known)
    started = time.monotonic()
    settings = kb.settings
    # Load (or rebuild) the vector cache before the store changes, so it is updated, not
    # rebuilt from a half-updated store and then updated again.
    _ = kb.vectors
    files, folders, unreadable = _targets(paths)
    if groups:
        kb.store.add_group_rules((str(p.resolve()), g) for p in paths for g in groups)
    resolver = GroupResolver.for_store(kb.store)
    report = IngestReport()
    stored = {d.path: d for d in kb.store.documents()}
    vanished = _vanished(stored, files, folders, unreadable)
    total = len(files)
    done = 0

    def emit(result: FileResult | None, count: bool = True) -> None:
        nonlocal done
        if result is not None:
            report.results.append(result)
            done += count
        if progress:
            progress(done, total, result)

    emit(None)
    for failure in unreadable:
        emit(failure, count=False)
    todo: list[_Parse] = []
    for action in _classify(settings, stored, files, vanished, known):
        if isinstance(action, _Parse):
            todo.append(action)
            continue
        if isinstance(action, tuple):
            kind, old_path, st, result = action
            if kind == "touch":
                kb.store.touch(result.path, st.st_mtime, st.st_ctime_ns, st.st_ino)
            else:
                kb.store.update_location(old_path, result.path, st.st_mtime, st.st_ctime_ns, st.st_ino)
            action = result
        if action.status in ("unchanged", "moved"):
            # A stored document keeps in step with its rules and .kbgroups files, changed or not.
            found = _groups_of(resolver, action.path)
            if isinstance(found, str):
                action = FileResult(action.path, "failed", found + "; its previous groups are kept")
            else:
                kb.store.set_document_groups(action.path, found)
        emit(action)

    # (job, parsed, vectors or None to embed here, the document's groups)
    buffer: list[tuple[_Parse, ParsedChunks, np.ndarray | None, tuple[str, ...]]] = []
    timings = report.timings
    bytes_total = sum(item.st.st_size for item in todo)
    tally = {"pages": 0, "passages": 0, "bytes": 0}

    def tell_work(partial: float = 0.0) -> None:
        if on_work:
            on_work(
                Work(
                    done,
                    total,
                    tally["pages"],
                    tally["passages"],
                    tally["bytes"] + partial,
                    bytes_total,
                    time.monotonic() - started,
                )
            )

    def embed_in_steps(texts: list[str], path: str, size: int) -> np.ndarray:
        # A 600-page PDF is minutes of embedding: report it in steps so the bar does not freeze.
        step = max(EMBED_STEP, settings.embed_batch)
        if len(texts) <= step:
            return kb.embedder.embed(texts, batch_size=settings.embed_batch)
        parts = []
        for i in range(0, len(texts), step):
            if progress:
                progress(done, total, FileResult(path, "embedding", f"{i}/{len(texts)} passages embedded"))
            tell_work(size * i / len(texts))
            parts.append(kb.embedder.embed(texts[i : i + step], batch_size=settings.embed_batch))
        return np.vstack(parts)

    def flush() -> None:
        # Embed several small files together: batches of one or two chunks waste the embedder.
        texts = [
            embedding_text(p.title, c.heading_path, c.text) for _, p, v, _ in buffer if v is None for c in p.chunks
        ]
        size = sum(job.st.st_size for job, _, v, _ in buffer if v is None)
        tick = time.monotonic()
        vectors = embed_in_steps(texts, str(buffer[-1][0].path), size) if texts else None
        timings["embed"] += time.monotonic() - tick
        offset = 0
        for job, parsed, given, doc_groups in buffer:
            tick = time.monotonic()
            n = len(parsed.chunks)
            if given is not None:  # embedded by the engine's worker
                vecs = given
            else:
                vecs = vectors[offset : offset + n] if vectors is not None else np.zeros((0, kb.manifest.dim))
                offset += n
            # One transaction per file: a crash keeps every file stored before it, whole.
            removed, added = kb.store.replace_document(
                path=str(job.path),
                sha256=job.sha,
                size=job.st.st_size,
                mtime=job.st.st_mtime,
                format=parsed.format,
                title=parsed.title or job.path.stem,
                n_pages=parsed.n_pages,
                chunks=parsed.chunks,
                vectors=vecs,
                ctime_ns=job.st.st_ctime_ns,
                inode=job.st.st_ino,
                groups=doc_groups,
            )
            kb.vectors.remove(removed)
            kb.vectors.add(added, vecs)
            timings["store"] += time.monotonic() - tick
            tally["pages"] += parsed.n_pages or 0
            tally["passages"] += n
            tally["bytes"] += job.st.st_size
            status = "updated" if job.is_update else "added"
            result = FileResult(
                str(job.path), status, chunks=len(added), notes=parsed.warnings, pages=parsed.n_pages or 0
            )
            emit(result)
            tell_work()
        buffer.clear()

    outcomes: Iterator[tuple[_Parse, ParsedChunks | str, np.ndarray | None]]
    if engine is None:
        outcomes = ((item, parsed, None) for item, parsed in _parse_all(kb, todo, isolate))
    else:
        outcomes = engine(kb, todo, _job_maker(kb))
    while True:
        tick = time.monotonic()
        got = next(outcomes, None)
        timings["wait"] += time.monotonic() - tick
        if got is None:
            break
        job, parsed, given = got
        if isinstance(parsed, str) or not parsed.chunks:
            reason = parsed if isinstance(parsed, str) else "no text to index"
            if job.is_update:
                reason += "; the previously indexed version is kept"
            tally["bytes"] += job.st.st_size
            emit(FileResult(str(job.path), "failed", reason))
            tell_work()
            continue
        doc_groups = _groups_of(resolver, str(job.path))
        if isinstance(doc_groups, str):
            # Never index a file whose groups are unknown: it would be visible to everyone.
            tally["bytes"] += job.st.st_size
            emit(FileResult(str(job.path), "failed", doc_groups))
            tell_work()
            continue
        timings["parse"] += parsed.parse_seconds
        timings["chunk"] += parsed.chunk_seconds
        buffer.append((job, parsed, given, doc_groups))
        if sum(len(p.chunks) for _, p, v, _ in buffer if v is None) >= settings.embed_batch * 4 or given is not None:
            flush()
    flush()

    for old_path in sorted(vanished):
        kb.vectors.remove(kb.store.remove_document(old_path))
        emit(FileResult(old_path, "removed"), count=False)
    # An engine that can build the IVF index on its cluster does, when one becomes due.
    kb.save_vectors(build=getattr(engine, "build_ivf", None))
    _remember_unread(kb, report, files, folders, unreadable)
    report.seconds = time.monotonic() - started
    return report


def _remember_unread(
    kb: KnowledgeBase, report: IngestReport, files: list[Path], folders: list[Path], unreadable: list[FileResult]
) -> None:
    """Keep the files that failed or were skipped in the store (`kb status --failed`), with their stat, so
    an unchanged failure is known next time; forget those indexed now or gone from an ingested folder.
    Folders that could not be listed are not kept: they are reported again every run."""
    seen = []
    forget: set[str] = set()
    folder_failures = {r.path for r in unreadable}
    for r in report.results:
        if r.status in ("failed", "skipped") and r.path not in folder_failures:
            try:
                st = os.stat(r.path)
            except OSError:
                continue
            seen.append((r.path, r.status, r.reason, st.st_size, st.st_mtime, st.st_ctime_ns, st.st_ino))
        elif r.status not in ("failed", "skipped"):
            forget.add(r.path)
            if r.moved_from:
                forget.add(r.moved_from)
    present = {str(f) for f in files}
    hidden = [Path(p) for p in folder_failures]
    for u in kb.store.unread():
        inside = any(Path(u.path).is_relative_to(folder) for folder in folders)
        if inside and u.path not in present and not any(Path(u.path).is_relative_to(h) for h in hidden):
            forget.add(u.path)  # deleted, or now ignored by .kbignore
    kb.store.update_unread(seen, forget)


def _groups_of(resolver: GroupResolver, path: str) -> tuple[str, ...] | str:
    """The groups of a file, or the reason they cannot be known (an unreadable .kbgroups file)."""
    try:
        return resolver.groups_for(Path(path))
    except InputError as exc:
        return str(exc)


def plan(
    settings: Settings,
    documents: list[DocumentRow],
    paths: list[Path],
    *,
    progress: Progress | None = None,
    known: Mapping[str, UnreadFile] | None = None,
) -> IngestReport:
    """What `ingest` would do, without parsing or writing anything (`kb ingest --dry-run`).

    `documents` are the stored ones (empty for a knowledge base not created yet); `known`, the
    files that failed or were skipped before.
    """
    started = time.monotonic()
    files, folders, unreadable = _targets(paths)
    stored = {d.path: d for d in documents}
    vanished = _vanished(stored, files, folders, unreadable)
    report = IngestReport(dry_run=True, results=list(unreadable))
    for i, action in enumerate(_classify(settings, stored, files, vanished, known), start=1):
        if isinstance(action, _Parse):
            result = FileResult(str(action.path), "updated" if action.is_update else "added")
        elif isinstance(action, tuple):
            result = action[3]
        else:
            result = action
        report.results.append(result)
        if progress:
            progress(i, len(files), result)
    report.results.extend(FileResult(p, "removed", chunks=vanished[p].n_chunks) for p in sorted(vanished))
    report.seconds = time.monotonic() - started
    return report


def _vanished(
    stored: Mapping[str, DocumentRow], files: list[Path], folders: list[Path], unreadable: Sequence[FileResult]
) -> dict[str, DocumentRow]:
    """Stored documents inside an ingested folder whose file is no longer there. Those inside a
    folder that could not be listed are kept: unreadable is not gone (permissions, a network
    share that dropped), and nothing already stored may be lost to it."""
    present = {str(f) for f in files}
    hidden = [Path(r.path) for r in unreadable]
    return {
        p: d
        for p, d in stored.items()
        if p not in present
        and any(Path(p).is_relative_to(folder) for folder in folders)
        and not any(Path(p).is_relative_to(h) for h in hidden)
    }


@dataclass(frozen=True)
class Removal:
    """A stored document removed (or, in a dry run, to be removed) by `kb remove`."""

    path: str
    chunks: int


def matching_documents(documents: list[DocumentRow], paths: list[Path | str]) -> list[DocumentRow]:
    """Stored documents named by `paths`: a document itself, or everything under a folder.

    The files need not exist any more. Raises InputError naming the first path that matches
    nothing, so a typo removes nothing.
    """
    by_path = {d.path: d for d in documents}
    chosen: dict[str, DocumentRow] = {}
    for given in paths:
        text = str(given)
        forms = {text, os.path.abspath(os.path.expanduser(text))}
        with contextlib.suppress(OSError, RuntimeError):
            forms.add(str(Path(text).expanduser().resolve()))
        found = [by_path[f] for f in forms if f in by_path]
        prefixes = tuple(f.rstrip(os.sep) + os.sep for f in forms)
        found += [d for d in documents if d.path.startswith(prefixes)]
        if not found:
            raise InputError(f"{given}: not in the knowledge base (nothing removed)")
        chosen.update((d.path, d) for d in found)
    return [chosen[p] for p in sorted(chosen)]


def remove(kb: KnowledgeBase, paths: list[Path | str], *, dry_run: bool = False) -> list[Removal]:
    """Remove the documents named by `paths` (files, or folders meaning everything under them).

    All in one transaction; the FAISS cache follows. Raises InputError, removing nothing, if
    any path matches no stored document.
    """
    docs = matching_documents(kb.store.documents(), paths)
    out = [Removal(d.path, d.n_chunks) for d in docs]
    if not dry_run:
        _ = kb.vectors  # loaded before the store changes, so it is updated rather than rebuilt
        kb.vectors.remove(kb.store.remove_documents(d.path for d in docs))
        kb.save_vectors()
    return out


def ignore_paths(paths: Sequence[Path | str]) -> list[tuple[Path, str]]:
    """Add each existing file or folder to the .kbignore of the folder holding it, so that ingesting
    that folder leaves it out; returns (.kbignore file, pattern) for each pattern added."""
    added = []
    for given in paths:
        p = Path(given).expanduser().resolve()
        if not p.exists() or p.parent == p:
            continue
        pattern = f"{_glob_escape(p.name)}/" if p.is_dir() else _glob_escape(p.name)
        if pattern in read_ignore(p.parent):
            continue
        target = p.parent / IGNORE_FILE
        try:
            text = target.read_text(encoding="utf-8") if target.exists() else ""
            with target.open("a", encoding="utf-8") as fh:
                fh.write(("" if not text or text.endswith("\n") else "\n") + pattern + "\n")
        except OSError as exc:
            raise InputError(f"{target}: cannot write ({exc.strerror})") from exc
        added.append((target, pattern))
    return added


def _glob_escape(name: str) -> str:
    """A file name as a .kbignore glob that matches only that name."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _job_maker(kb: KnowledgeBase) -> Callable[[_Parse], ParseJob]:
    """What a parse worker (local or remote) is told about a file."""
    settings = kb.settings
    tok_file = kb.embedder.tokenizer_file

    def job(item: _Parse) -> ParseJob:
        return ParseJob.of(item.path, settings, tok_file)

    return job


def _parse_all(kb: KnowledgeBase, todo: list[_Parse], isolate: bool) -> Iterator[tuple[_Parse, ParsedChunks | str]]:
    """Parsed files: by parallel workers, fed in order and handed back as each finishes, so
    parsing runs ahead of (and beside) embedding; inline, one by one, without isolation."""
    settings = kb.settings
    job = _job_maker(kb)
    if not isolate:
        from ingest.errors import ParseError

        for item in todo:
            try:
                yield item, parse_and_chunk(job(item))
            except ParseError as exc:
                yield item, exc.reason
        return
    workers = min(settings.parse_workers, len(todo))
    with ParsePool[_Parse](workers, settings.parse_timeout, settings.parse_memory_mb, nice=PARSE_NICE) as pool:
        yield from pool.map(todo, job)
