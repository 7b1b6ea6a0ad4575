"""`kb ingest`: add folders and files to the knowledge base, keeping it in step with them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import ConfigOpt, EmbedOpt, JsonOpt, KbOpt, ThreadsOpt, display_path, print_json, settings
from cli.progress import IngestBar, ingest_progress

EXIT_SOME_FAILED = 2
_WOULD = {
    "added": "add",
    "updated": "update",
    "moved": "move",
    "removed": "remove",
    "skipped": "skip",
    "failed": "fail",
}


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("ingest")(ingest)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (folders are read recursively).")],
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    chunk_tokens: Annotated[int | None, typer.Option(help="Chunk size in embedding tokens (default 200).")] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option(help="Tokens shared by neighbouring chunks (default 32).")
    ] = None,
    password: Annotated[str | None, typer.Option(help="Password for encrypted PDFs.")] = None,
    pdf_engine: Annotated[
        str | None,
        typer.Option(
            "--pdf-engine", help="PDF text reader: auto (PDFium, pypdf where PDFium fails; default), pdfium or pypdf."
        ),
    ] = None,
    ocr: Annotated[
        str | None,
        typer.Option(
            "--ocr",
            help="OCR: auto (images, and PDF pages without a usable text layer; default), always (every PDF page) "
            "or off.",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Parse worker processes (default: the cores).", min=1)
    ] = None,
    threads: ThreadsOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would change.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Ingest files and folders: parse, chunk, embed and index them.

    Unchanged files are skipped without re-embedding; changed files are re-indexed; files
    moved inside an ingested folder keep their vectors; files deleted from an ingested folder
    are removed. A file that cannot be read is reported as `path: reason` and the run goes on.
    Notes say what was read inside a file (rows indexed per sheet) and what was not (an
    attachment or archive member that could not be read, and why).

    Every run ends with a summary (added, updated, moved, unchanged, removed, skipped, failed
    with reasons, time taken) on stderr, or on stdout as JSON with --json. Only one process
    writes at a time: a second one is refused (exit 1); search and ask keep working. A run
    killed at any point keeps every file finished before; running it again completes the job.
    --dry-run reads nothing but file hashes and writes nothing (not even a new knowledge base).

    Exit status: 0 if every file was ingested or skipped, 2 if some failed, 1 on a usage error.
    """
    from kb.indexer import ingest as run_ingest
    from kb.indexer import plan
    from kb.knowledge import KnowledgeBase, kb_exists

    s = settings(
        config,
        home=kb,
        embed_model=embed_model,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        pdf_password=password,
        pdf_engine=pdf_engine,
        ocr=ocr,
        parse_workers=workers,
        threads=threads,
    )
    with IngestBar("ingesting" if not dry_run else "checking", enabled=not quiet and not json_out) as bar:
        progress = ingest_progress(bar)

        if dry_run and not kb_exists(s.home):
            report = plan(s, [], paths, progress=progress)
            counts = {"documents": 0, "chunks": 0, "keyword_entries": 0}
        else:
            # A dry run only reads, so it needs no lock and runs beside a writer.
            with KnowledgeBase(s, write=not dry_run) as base:
                report = run_ingest(base, paths, progress=progress, on_work=bar.work, dry_run=dry_run)
                counts = base.store.counts()
    if json_out:
        print_json(
            {
                "kb": str(s.home),
                "dry_run": dry_run,
                "seconds": round(report.seconds, 3),
                "summary": report.summary(),
                "totals": counts,
                "pages": sum(r.pages for r in report.results),
                "timings": {stage: round(t, 3) for stage, t in report.timings.items()},
                "files": [
                    {
                        "path": r.path,
                        "status": r.status,
                        "reason": r.reason,
                        "chunks": r.chunks,
                        "pages": r.pages,
                        "moved_from": r.moved_from,
                        "notes": list(r.notes),
                    }
                    for r in report.results
                ],
            }
        )
    else:
        if dry_run:
            for r in report.results:
                if r.status != "unchanged":
                    verb = _WOULD.get(r.status, r.status)
                    detail = r.reason or (f"from {display_path(r.moved_from)}" if r.moved_from else "")
                    typer.echo(f"would {verb}: {display_path(r.path)}" + (f" ({detail})" if detail else ""))
        elif not quiet:
            for r in report.results:
                if r.status == "skipped":
                    typer.echo(f"skipped {display_path(r.path)}: {r.reason}", err=True)
                for note in r.notes:  # rows indexed per sheet, attachments not read, ...
                    typer.echo(f"note: {display_path(r.path)}: {note}", err=True)
        sm = report.summary()
        always = ("added", "updated", "unchanged", "removed", "failed")
        parts = ", ".join(f"{n} {k}" for k, n in sm.items() if n or k in always)
        pages = sum(r.pages for r in report.results)
        rate = f" ({pages:,} pages, {pages / report.seconds:,.1f} pages/s)" if pages and report.seconds > 0 else ""
        typer.echo(
            f"{'Dry run: ' if dry_run else ''}{len(report.results)} files: {parts} in {report.seconds:.1f} s{rate}. "
            f"Knowledge base {s.home}: {counts['documents']} documents, {counts['chunks']} chunks.",
            err=True,
        )
        for r in report.results:
            if r.status == "moved" and not dry_run and not quiet:
                typer.echo(f"moved: {display_path(r.moved_from or '')} -> {display_path(r.path)}", err=True)
        for r in report.failed:
            typer.echo(f"failed: {display_path(r.path)}: {r.reason}", err=True)
    if report.failed:
        raise typer.Exit(EXIT_SOME_FAILED)
