"""Summarising files and folders: discover, check the cache, parse in a worker, summarise each
file, then the folder overview; with progress events and one outcome per file."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ingest.discover import discover, unreadable_folder
from ingest.formats import SUPPORTED
from kb.errors import InputError
from kb.indexer import file_sha256
from kb.isolation import ParsedChunks, ParseJob, ParseWorker, parse_and_chunk
from kb.summarize.cache import SummaryCache
from kb.summarize.pipeline import Summarizer
from kb.summarize.points import Stats, Summary

# Summarises files elsewhere (kb/distributed.py): given the summarizer, the (file, content hash)
# pairs to summarise and how to make each file's ParseJob, it yields (file, hash, summary or the
# one-line reason it failed).
SummaryEngine = Callable[
    [Summarizer, list[tuple[Path, str]], Callable[[Path], ParseJob]], Iterator[tuple[Path, str, Summary | str]]
]


@dataclass
class FileOutcome:
    """What happened to one file."""

    path: str
    status: str  # "summarised", "cached", "failed" or "skipped"
    reason: str = ""
    summary: Summary | None = None


@dataclass
class SummaryReport:
    """The outcome of one `kb summarize` run."""

    files: list[FileOutcome] = field(default_factory=list)
    overview: Summary | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> list[FileOutcome]:
        """Files that could not be summarised."""
        return [f for f in self.files if f.status == "failed"]

    def stats(self) -> Stats:
        """Work done in this run (cached summaries cost nothing now)."""
        total = Stats()
        for f in self.files:
            if f.summary and not f.summary.cached:
                total.add(f.summary.stats)
        if self.overview and not self.overview.cached:
            total.add(self.overview.stats)
        return total


@dataclass(frozen=True)
class ProgressEvent:
    """Where a run is: files finished, bytes finished (for the ETA), and the current file's stage."""

    files_done: int
    files_total: int
    bytes_done: float
    bytes_total: int
    path: str
    stage: str  # "parse", "map", "reduce", "overview", "done"
    step: int = 0
    steps: int = 0


def summarize_paths(
    paths: list[Path],
    summarizer: Summarizer,
    cache: SummaryCache | None,
    *,
    overview: bool | None = None,
    isolate: bool = True,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
    engine: SummaryEngine | None = None,
) -> SummaryReport:
    """Summarise files and folders (one summary per file, then an overview), reusing cached summaries.

    `engine` summarises the files that need it elsewhere (kb/distributed.py, a Ray cluster); their
    summaries land in the same cache. The overview is always made here.
    """
    t0 = time.monotonic()
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
    unlisted: list[FileOutcome] = []  # folders that could not be read: one failure each, the rest goes on

    def cannot_list(folder: Path, exc: OSError) -> None:
        unlisted.append(FileOutcome(str(folder), "failed", unreadable_folder(exc)))

    files = list(dict.fromkeys(discover([p.resolve() for p in paths], on_error=cannot_list)))
    sizes = {f: _size(f) for f in files}
    total, done_bytes = sum(sizes.values()), 0.0
    report = SummaryReport()
    for failure in unlisted:
        report.files.append(failure)
        if on_file:
            on_file(failure)

    def emit(outcome: FileOutcome) -> None:
        nonlocal done_bytes
        report.files.append(outcome)
        done_bytes += sizes.get(Path(outcome.path), 0)
        if on_file:
            on_file(outcome)
        tell(outcome.path, "done")

    def tell(path: str, stage: str, step: int = 0, steps: int = 0, fraction: float = 0.0) -> None:
        if on_progress:
            size = sizes.get(Path(path), 0) if stage != "done" else 0
            on_progress(
                ProgressEvent(
                    len(report.files) - len(unlisted),
                    len(files),
                    done_bytes + fraction * size,
                    total,
                    path,
                    stage,
                    step,
                    steps,
                )
            )

    todo: list[tuple[Path, str]] = []
    for f in files:
        outcome = _precheck(f, sizes[f], summarizer, cache)
        if isinstance(outcome, FileOutcome):
            emit(outcome)
        else:
            todo.append((f, outcome))
    if engine is None:
        for f, sha, parsed in _parse_each(todo, summarizer, isolate, lambda p: tell(str(p), "parse")):
            emit(_summarize_one(f, sha, parsed, summarizer, cache, tell))
    else:
        start = len(report.files)
        for f, sha, made in engine(summarizer, todo, _job_maker(summarizer)):
            emit(_made_elsewhere(f, sha, made, summarizer, cache))
        # Told as they finish, reported (and given to the overview) in the order a local run has.
        position = {str(f): i for i, (f, _) in enumerate(todo)}
        report.files[start:] = sorted(report.files[start:], key=lambda o: position.get(o.path, len(position)))
    want = overview if overview is not None else (len(files) > 1 or any(p.is_dir() for p in paths))
    done = [o.summary for o in report.files if o.summary and o.summary.points]
    if want and len(done) > 1:
        report.overview = _overview(paths, done, summarizer, cache, tell)
    report.seconds = time.monotonic() - t0
    return report


def _size(f: Path) -> int:
    try:
        return f.stat().st_size
    except OSError:
        return 0


def _precheck(f: Path, size: int, summarizer: Summarizer, cache: SummaryCache | None) -> FileOutcome | str:
    """A finished outcome (skipped, failed, cached), or the file's content hash when it needs work."""
    if f.suffix.lower() not in SUPPORTED:
        return FileOutcome(str(f), "skipped", f"unsupported file type '{f.suffix.lower() or f.name}'")
    max_mb = summarizer.settings.max_file_mb
    if size > max_mb * 1024 * 1024:
        return FileOutcome(str(f), "failed", f"too large ({size / 2**20:.0f} MB > max_file_mb {max_mb:g})")
    try:
        sha = file_sha256(f)
    except OSError as exc:
        return FileOutcome(str(f), "failed", f"cannot read ({exc.strerror})")
    hit = cache.get(summarizer.key("document", sha, words=summarizer.options.words)) if cache else None
    if hit is not None:
        hit.path, hit.cached = str(f), True  # the same content under another name is the same summary
        return FileOutcome(str(f), "cached", summary=hit)
    return sha


def _summarize_one(
    f: Path,
    sha: str,
    parsed: ParsedChunks | str,
    summarizer: Summarizer,
    cache: SummaryCache | None,
    tell: Callable[..., None],
) -> FileOutcome:
    if isinstance(parsed, str):
        return FileOutcome(str(f), "failed", parsed)
    if not parsed.chunks:
        return FileOutcome(str(f), "failed", "no text to summarise")
    # Map results do not depend on the word budget, so a resumed run may change --words.
    checkpoint = cache.checkpoint(summarizer.key("document-map", sha)) if cache else None

    def on_step(stage: str, i: int, n: int) -> None:
        tell(str(f), stage, i, n, 0.9 * i / n if stage == "map" else 0.9)

    summary = summarizer.summarize_document(str(f), parsed, checkpoint=checkpoint, on_step=on_step)
    if cache and checkpoint:
        cache.put(summarizer.key("document", sha, words=summarizer.options.words), summary)
        checkpoint.clear()
    return FileOutcome(str(f), "summarised", summary=summary)


def _made_elsewhere(
    f: Path, sha: str, made: Summary | str, summarizer: Summarizer, cache: SummaryCache | None
) -> FileOutcome:
    """The outcome of a file an engine summarised (or the reason it could not), cached as a local one."""
    if isinstance(made, str):
        return FileOutcome(str(f), "failed", made)
    if cache:
        cache.put(summarizer.key("document", sha, words=summarizer.options.words), made)
    return FileOutcome(str(f), "summarised", summary=made)


def _job_maker(summarizer: Summarizer) -> Callable[[Path], ParseJob]:
    """What a parse worker (local or remote) is told about a file."""
    s = summarizer.settings
    tok = summarizer.embedder.tokenizer_file if summarizer.embedder else ""

    def job(path: Path) -> ParseJob:
        return ParseJob.of(path, s, tok)

    return job


def _parse_each(
    todo: list[tuple[Path, str]], summarizer: Summarizer, isolate: bool, started: Callable[[Path], None]
) -> Iterator[tuple[Path, str, ParsedChunks | str]]:
    """Parsed files, one at a time, in a worker process that a hanging or crashing parser cannot take down."""
    from ingest.errors import ParseError

    s = summarizer.settings
    job = _job_maker(summarizer)
    if not isolate:
        for path, sha in todo:
            started(path)
            try:
                yield path, sha, parse_and_chunk(job(path))
            except ParseError as exc:
                yield path, sha, exc.reason
        return
    worker = ParseWorker(s.parse_timeout, s.parse_memory_mb)
    try:
        for path, sha in todo:
            # One at a time: the LLM wants both cores while it works, and a parsed 600-page
            # file waiting in memory is what bounded memory rules out.
            started(path)
            worker.submit(job(path))
            yield path, sha, worker.result()
    finally:
        worker.close()


def _overview(
    paths: list[Path],
    done: list[Summary],
    summarizer: Summarizer,
    cache: SummaryCache | None,
    tell: Callable[..., None],
) -> Summary:
    label = ", ".join(p.name or str(p) for p in paths)
    content = json.dumps([label, *([s.path, s.text("bullets")] for s in done)])
    key = summarizer.key(
        "folder", hashlib.sha256(content.encode()).hexdigest(), words=summarizer.options.overview_words
    )
    cached = cache.get(key) if cache else None
    if cached is not None:
        cached.cached = True
        return cached

    def on_step(stage: str, i: int, n: int) -> None:
        tell(label, "overview", i, n)

    result = summarizer.summarize_folder(label, done, on_step)
    if cache:
        cache.put(key, result)
    return result
