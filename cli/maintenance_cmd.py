"""`kb remove`, `kb rebuild`, `kb check`, `kb repair`: keeping a knowledge base in order."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import ConfigOpt, EmbedOpt, JsonOpt, KbOpt, ThreadsOpt, display_path, err, plural, print_json, settings
from cli.progress import IngestBar, ingest_progress

EXIT_PROBLEMS = 2  # the command finished, but something is wrong (problems found, files lost)


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    app.command("remove")(remove)
    app.command("rebuild")(rebuild)
    app.command("check")(check)
    app.command("repair")(repair)


def remove(
    paths: Annotated[list[Path], typer.Argument(help="Documents, or folders (everything stored under them).")],
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    ignore: Annotated[
        bool,
        typer.Option(
            "--ignore", help="Also add each path to the .kbignore of its folder, so the next ingest leaves it out."
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Remove documents from the knowledge base (the files themselves are not touched).

    A folder removes every document stored under it. The files need not exist any more. If a
    path matches nothing in the knowledge base, nothing is removed and the exit status is 1.
    A file that still exists inside an ingested folder comes back with the next `kb ingest` of
    that folder, unless it is named in a .kbignore file: --ignore adds it there.
    """
    from kb.errors import KBNotFound
    from kb.indexer import ignore_paths
    from kb.indexer import remove as run_remove
    from kb.knowledge import KnowledgeBase, kb_exists

    s = settings(config, home=kb, embed_model=embed_model)
    if not kb_exists(s.home):
        raise KBNotFound(f"no knowledge base at {s.home}; nothing to remove")
    with KnowledgeBase(s, write=not dry_run) as base:
        removed = run_remove(base, list(paths), dry_run=dry_run)
        counts = base.store.counts()
    ignored = ignore_paths(list(paths)) if ignore and not dry_run else []
    if json_out:
        print_json(
            {
                "kb": str(s.home),
                "dry_run": dry_run,
                "removed": [{"path": r.path, "chunks": r.chunks} for r in removed],
                "ignored": [{"file": str(f), "pattern": p} for f, p in ignored],
                "totals": counts,
            }
        )
        return
    verb = "would remove" if dry_run else "removed"
    for r in removed:
        typer.echo(f"{verb}: {display_path(r.path)} ({plural(r.chunks, 'chunk')})")
    chunks = sum(r.chunks for r in removed)
    typer.echo(
        f"{'Dry run: ' if dry_run else ''}{verb} {plural(len(removed), 'document')} ({plural(chunks, 'chunk')}). "
        f"Knowledge base {s.home}: {plural(counts['documents'], 'document')}, {plural(counts['chunks'], 'chunk')}.",
        err=True,
    )
    for target, pattern in ignored:
        err(f"added {pattern} to {display_path(str(target))}: the next ingest of that folder leaves it out")
    if not ignore:
        back = [p for p in paths if p.exists()]
        if back:
            names = ", ".join(display_path(str(p)) for p in back[:3]) + (" ..." if len(back) > 3 else "")
            err(
                f"note: {names} still {'exists' if len(back) == 1 else 'exist'}: the next `kb ingest` of "
                "the folder holding it adds it again, unless it is in a .kbignore file (`kb remove --ignore` "
                "adds it there)"
            )


def rebuild(
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    chunk_tokens: Annotated[int | None, typer.Option(help="Chunk size in embedding tokens (default 200).")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Tokens shared by adjacent chunks (default 32).")] = None,
    password: Annotated[str | None, typer.Option(help="Password for encrypted PDFs.")] = None,
    threads: ThreadsOpt = None,
    allow_losses: Annotated[
        bool, typer.Option("--allow-losses", help="Swap in the new knowledge base even if some documents are lost.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-read every stored file with the current settings into a fresh knowledge base.

    Use it after changing the embedding model or the chunking settings. The new knowledge base
    is built beside the old one, which keeps answering meanwhile, and replaces it in one atomic
    step; if the rebuild fails or is interrupted, the old one stays as it was. If a stored file
    is gone or no longer reads, nothing is replaced unless --allow-losses is given.

    Exit status: 0 when rebuilt without losses, 2 when files were lost (or the swap was
    refused because of them), 1 on a usage error.
    """
    from kb.rebuild import rebuild as run_rebuild

    s = settings(
        config,
        home=kb,
        embed_model=embed_model,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        pdf_password=password,
        threads=threads,
    )
    with IngestBar("rebuilding", enabled=not quiet and not json_out) as bar:
        progress = ingest_progress(bar)

        report = run_rebuild(s, progress=progress, on_work=bar.work, allow_losses=allow_losses)
    failed = [{"path": r.path, "reason": r.reason} for r in report.ingest.failed]
    if json_out:
        print_json(
            {
                "kb": str(s.home),
                "swapped": report.swapped,
                "seconds": round(report.seconds, 3),
                "summary": report.ingest.summary(),
                "before": report.before,
                "after": report.after if report.swapped else None,
                "missing": report.missing,
                "failed": failed,
            }
        )
    else:
        for path in report.missing:
            typer.echo(f"missing: {display_path(path)}: file no longer exists", err=True)
        for f in failed:
            typer.echo(f"failed: {display_path(f['path'])}: {f['reason']}", err=True)
        if report.swapped:
            typer.echo(
                f"Rebuilt {s.home} in {report.seconds:.1f} s: {plural(report.after['documents'], 'document')}, "
                f"{plural(report.after['chunks'], 'chunk')} (before: {plural(report.before['documents'], 'document')}, "
                f"{plural(report.before['chunks'], 'chunk')}).",
                err=True,
            )
        else:
            typer.echo(
                f"Not rebuilt: {plural(len(report.lost), 'document')} would be lost (listed above); the knowledge base "
                "is unchanged. Fix or `kb remove` them, or rerun with --allow-losses.",
                err=True,
            )
    if report.lost:
        raise typer.Exit(EXIT_PROBLEMS)


def _problems_json(problems) -> list[dict]:  # problems: list[kb.check.Problem]
    return [{"code": p.code, "message": p.message, "fixable": p.fixable} for p in problems]


def check(
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Verify that the store, the FAISS index and the keyword index agree.

    Checks the manifest, SQLite integrity, that every chunk belongs to a document and has
    exactly one valid vector and one up-to-date keyword entry, that every document has its
    chunks, and that the FAISS file is of the store's generation and holds exactly the stored
    vectors. Prints one line per problem. Exit status: 0 if all agree, 2 if problems were
    found (`kb repair` fixes those marked fixable), 1 on a usage error.
    """
    from kb.check import check as run_check

    s = settings(config, home=kb, embed_model=embed_model)
    report = run_check(s)
    if json_out:
        print_json(
            {
                "kb": str(s.home),
                "ok": report.ok,
                "problems": _problems_json(report.problems),
                "notes": report.notes,
                "counts": report.counts,
            }
        )
    else:
        for p in report.problems:
            typer.echo(f"problem: {p.code}: {p.message}" + ("" if p.fixable else " [not fixable by kb repair]"))
        for note in report.notes:
            typer.echo(f"note: {note}")
        c = report.counts
        summary = (
            f"{plural(c.get('documents') or 0, 'document')}, {plural(c.get('chunks') or 0, 'chunk')}, "
            f"{plural(c.get('keyword_entries') or 0, 'keyword entry', 'keyword entries')}, "
            f"{plural(c.get('vectors') or 0, 'FAISS vector')}"
        )
        if report.ok:
            typer.echo(f"OK: {s.home}: {summary}.")
        else:
            typer.echo(
                f"{plural(len(report.problems), 'problem')} in {s.home} ({summary}); `kb repair` fixes what it can.",
                err=True,
            )
    if not report.ok:
        raise typer.Exit(EXIT_PROBLEMS)


def repair(
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fix what `kb check` finds: delete orphans, rebuild the keyword index and the FAISS file from SQLite.

    Documents without chunks or with damaged vectors are removed, so the next `kb ingest` of
    their folder adds them again. Reports what it did and what is still wrong. Exit status: 0
    if everything agrees afterwards, 2 if problems remain (e.g. ones only `kb rebuild` fixes).
    """
    from kb.check import repair as run_repair

    s = settings(config, home=kb, embed_model=embed_model)
    report = run_repair(s)
    after = report.after
    if json_out:
        print_json(
            {
                "kb": str(s.home),
                "ok": after.ok,
                "actions": report.actions,
                "problems_before": _problems_json(report.before.problems),
                "problems_after": _problems_json(after.problems),
                "counts": after.counts,
            }
        )
    else:
        for action in report.actions:
            typer.echo(f"fixed: {action}")
        for p in after.problems:
            typer.echo(f"remaining: {p.code}: {p.message}")
        if after.ok:
            typer.echo(f"OK: {s.home}: " + ("repaired." if report.actions else "nothing to repair."))
    if not after.ok:
        raise typer.Exit(EXIT_PROBLEMS)
