"""`kb ingest`: add folders and files to the knowledge base, keeping it in step with them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import ConfigOpt, EmbedOpt, JsonOpt, KbOpt, ThreadsOpt, display_path, print_json, settings
from cli.progress import Bar, ingest_progress

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
    threads: ThreadsOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would change.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_out: JsonOpt = False,
    engine: Annotated[
        str,
        typer.Option(
            help="Where files are parsed, chunked and embedded: local (this process) or ray (the workers "
            "of a Ray cluster; needs pip install 'kb[ray]'). Planning and storing stay here either way."
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to join with --engine ray, e.g. auto or HEAD:6379 (default: RAY_ADDRESS, or a "
            "cluster started with `ray start` on this machine, else a local one for this run)."
        ),
    ] = None,
    ray_workers: Annotated[
        int | None,
        typer.Option(
            help="Ray workers (actors, one CPU each) with --engine ray (default: one per CPU of the cluster)."
        ),
    ] = None,
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
    the knowledge base is the same as a local run's.

    Exit status: 0 if every file was ingested or skipped, 2 if some failed, 1 on a usage error.
    """
    from kb.indexer import ingest as run_ingest
    from kb.indexer import plan
    from kb.knowledge import KnowledgeBase, kb_exists

    ray_engine = _engine(engine, ray_address, ray_workers) if not dry_run else None

    s = settings(
        config,
        home=kb,
        embed_model=embed_model,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        pdf_password=password,
        threads=threads,
    )
    with Bar("ingesting" if not dry_run else "checking", enabled=not quiet and not json_out) as bar:
        progress = ingest_progress(bar)

        if dry_run and not kb_exists(s.home):
            report = plan(s, [], paths, progress=progress)
            counts = {"documents": 0, "chunks": 0, "keyword_entries": 0}
        else:
            # A dry run only reads, so it needs no lock and runs beside a writer.
            with KnowledgeBase(s, write=not dry_run) as base:
                report = run_ingest(base, paths, progress=progress, dry_run=dry_run, engine=ray_engine)
                counts = base.store.counts()
    if json_out:
        print_json(
            {
                "kb": str(s.home),
                "dry_run": dry_run,
                "seconds": round(report.seconds, 3),
                "summary": report.summary(),
                "totals": counts,
                "files": [
                    {
                        "path": r.path,
                        "status": r.status,
                        "reason": r.reason,
                        "chunks": r.chunks,
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
        typer.echo(
            f"{'Dry run: ' if dry_run else ''}{len(report.results)} files: {parts} in {report.seconds:.1f} s. "
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


def _engine(name: str, address: str | None, workers: int | None) -> Any:
    """The kb.indexer.ingest engine for --engine (None: local); Ray's absence is a one-line error."""
    from kb.distributed import ENGINES, RayEngine, import_ray
    from kb.errors import InputError

    if name not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)} (got {name!r})")
    if name == "local":
        if address is not None or workers is not None:
            raise InputError("--ray-address and --ray-workers need --engine ray")
        return None
    if workers is not None and workers < 1:
        raise InputError(f"--ray-workers must be at least 1 (got {workers})")
    import_ray()  # fail before opening the knowledge base
    return RayEngine(address=address, workers=workers)
