"""`kb ingest`: add folders and files to the knowledge base, keeping it in step with them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    ConfigOpt,
    EmbedOpt,
    JsonOpt,
    KbOpt,
    RayAddressOpt,
    RayWorkersOpt,
    ThreadsOpt,
    display_path,
    engine_choice,
    plural,
    prepare_embedder,
    print_json,
    settings,
)
from cli.progress import Bar, IngestBar, ingest_progress

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
    group: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            "-g",
            help="Access group for every document under PATHS (repeatable); kept for later syncs. "
            "A .kbgroups file in a folder names groups too. See `kb groups`.",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would change.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 2 for any failed file, also those known from earlier runs.")
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Read again the files that failed before and have not changed (e.g. after --password or a higher "
            "parse_timeout).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_out: JsonOpt = False,
    engine: Annotated[
        str,
        typer.Option(
            help="Where files are parsed, chunked and embedded: local (this process) or ray (the workers "
            "of a Ray cluster; needs pip install 'kb[ray]'). Planning and storing stay here either way."
        ),
    ] = "local",
    ray_address: RayAddressOpt = None,
    ray_workers: RayWorkersOpt = None,
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

    With --engine ray the workers of a Ray cluster read the files (every path must be readable
    at the same place on every node: a shared filesystem), parse them with the same time and
    memory limits, chunk and embed them; this process plans, stores and reports as usual, and
    the knowledge base is the same as a local run's. When the collection passes the size at
    which the vector index becomes IVF (exact_search_max), the workers also build its shards.

    Access groups (for `kb serve` tokens): --group NAME puts every document under PATHS in
    group NAME, now and on every later sync; a `.kbgroups` file (one name per line) in a folder
    does the same for everything below it. A document without groups is visible to every token.

    A file that failed before and has not changed since is reported as a known failure without
    being read again (--retry-failed reads it anyway); `kb status --failed` lists them. Files and
    folders named in a .kbignore file (one glob per line) are left out.

    Exit status: 0 if every file was ingested, skipped or failed as before; 2 if a file failed
    that had not failed before (with --strict: if any failed); 1 on a usage error; 130 when
    interrupted (every file finished before is kept).
    """
    from kb.groups import parse_group_options
    from kb.indexer import ingest as run_ingest
    from kb.indexer import plan, require_paths
    from kb.knowledge import KnowledgeBase, kb_exists

    groups = parse_group_options(group or [])
    ray_args = engine_choice(engine, ray_address, ray_workers) if not dry_run else None
    if ray_args is not None:
        from kb.distributed import RayEngine

        ray_engine = RayEngine(**ray_args)
    else:
        ray_engine = None

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
    require_paths(paths)  # before a knowledge base is created: a failed command creates nothing
    stored = {"done": 0, "total": 0}

    def count_stored(done: int, total: int, result) -> None:
        stored["total"] = total
        if result is not None and result.status in ("added", "updated", "moved", "unchanged"):
            stored["done"] += 1

    try:
        if dry_run and not kb_exists(s.home):
            with Bar("checking", enabled=not quiet and not json_out) as bar:
                report = plan(s, [], paths, progress=ingest_progress(bar))
            counts = {"documents": 0, "chunks": 0, "keyword_entries": 0}
        else:
            # A dry run only reads, so it needs no lock and runs beside a writer.
            with KnowledgeBase(s, write=not dry_run) as base:
                if not dry_run and ray_engine is None:  # with Ray, the workers embed
                    prepare_embedder(base.embedder, quiet=quiet or json_out)
                with IngestBar("ingesting" if not dry_run else "checking", enabled=not quiet and not json_out) as bar:
                    report = run_ingest(
                        base,
                        paths,
                        progress=ingest_progress(bar, also=count_stored),
                        on_work=bar.work,
                        dry_run=dry_run,
                        engine=ray_engine,
                        retry_failed=retry_failed,
                        groups=groups,
                    )
                counts = base.store.counts()
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: {stored['done']} of {plural(stored['total'], 'file')} stored; run again to finish",
            err=True,
        )
        raise typer.Exit(130) from None
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
                        "known": r.known,
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
        known = len(report.failed) - len(report.new_failures)
        if known:
            parts += f" ({known} known from earlier runs)"
        head = f"{'Dry run: ' if dry_run else ''}{plural(len(report.results), 'file')}"
        pages = sum(r.pages for r in report.results)
        rate = f" ({pages:,} pages, {pages / report.seconds:,.1f} pages/s)" if pages and report.seconds > 0 else ""
        typer.echo(
            f"{head}: {parts} in {report.seconds:.1f} s{rate}. "
            f"Knowledge base {s.home}: {plural(counts['documents'], 'document')}, {plural(counts['chunks'], 'chunk')}.",
            err=True,
        )
        for r in report.results:
            if r.status == "moved" and not dry_run and not quiet:
                typer.echo(f"moved: {display_path(r.moved_from or '')} -> {display_path(r.path)}", err=True)
        for r in report.new_failures:
            typer.echo(f"failed: {display_path(r.path)}: {r.reason}", err=True)
        if known:
            typer.echo(
                f"{plural(known, 'file')} failed as before and {'was' if known == 1 else 'were'} not read again "
                "(`kb status --failed` lists failures; --retry-failed reads them again)",
                err=True,
            )
    if report.new_failures or (strict and report.failed):
        raise typer.Exit(EXIT_SOME_FAILED)
