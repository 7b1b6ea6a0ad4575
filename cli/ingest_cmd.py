"""`kb ingest`: add folders and files to the knowledge base, keeping it in step with them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import ConfigOpt, EmbedOpt, JsonOpt, KbOpt, ThreadsOpt, display_path, print_json, settings
from cli.progress import Bar

EXIT_SOME_FAILED = 2
_WOULD = {"added": "add", "updated": "update", "moved": "move", "removed": "remove", "skipped": "skip", "failed": "fail"}


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("ingest")(ingest)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (folders are read recursively).")],
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    chunk_tokens: Annotated[int | None, typer.Option(help="Chunk size in embedding tokens (default 200).")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Tokens shared by neighbouring chunks (default 32).")] = None,
    password: Annotated[str | None, typer.Option(help="Password for encrypted PDFs.")] = None,
    threads: ThreadsOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would change.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Ingest files and folders: parse, chunk, embed and index them.

    Unchanged files are skipped without re-embedding; changed files are re-indexed; files
    moved inside an ingested folder keep their vectors; files deleted from an ingested folder
    are removed. A file that cannot be read is reported as `path: reason` and the run goes on.

    Exit status: 0 if every file was ingested or skipped, 2 if some failed, 1 on a usage error.
    """
    from kb.indexer import ingest as run_ingest
    from kb.knowledge import KnowledgeBase

    s = settings(config, home=kb, embed_model=embed_model, chunk_tokens=chunk_tokens,
                 chunk_overlap=chunk_overlap, pdf_password=password, threads=threads)
    with KnowledgeBase(s, write=True) as base, Bar("ingesting", enabled=not quiet and not json_out) as bar:
        def progress(done: int, total: int, result) -> None:  # noqa: ANN001
            if result is not None and result.status == "failed":
                bar.log(f"{display_path(result.path)}: {result.reason}")
            bar.update(done, total, Path(result.path).name if result else "")

        report = run_ingest(base, paths, progress=progress, dry_run=dry_run)
        counts = base.store.counts()
    if json_out:
        print_json({
            "kb": str(s.home), "dry_run": dry_run, "seconds": round(report.seconds, 3), "summary": report.summary(),
            "totals": counts,
            "files": [
                {"path": r.path, "status": r.status, "reason": r.reason, "chunks": r.chunks, "moved_from": r.moved_from}
                for r in report.results
            ],
        })
    else:
        if dry_run:
            for r in report.results:
                if r.status != "unchanged":
                    verb = _WOULD.get(r.status, r.status)
                    typer.echo(f"would {verb}: {display_path(r.path)}" + (f" ({r.reason})" if r.reason else ""))
        elif not quiet:
            for r in report.results:
                if r.status == "skipped":
                    typer.echo(f"skipped {display_path(r.path)}: {r.reason}", err=True)
        sm = report.summary()
        parts = ", ".join(f"{n} {k}" for k, n in sm.items() if n or k in ("added", "failed"))
        typer.echo(
            f"{'Dry run: ' if dry_run else ''}{len(report.results)} files: {parts} in {report.seconds:.1f} s. "
            f"Knowledge base {s.home}: {counts['documents']} documents, {counts['chunks']} chunks.",
            err=True,
        )
        for r in report.failed:
            typer.echo(f"failed: {display_path(r.path)}: {r.reason}", err=True)
    if report.failed:
        raise typer.Exit(EXIT_SOME_FAILED)
