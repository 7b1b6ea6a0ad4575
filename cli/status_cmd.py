"""`kb status`: what the knowledge base holds and how it was built."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    ConfigOpt,
    EmbedOpt,
    JsonOpt,
    KbOpt,
    display_path,
    loaded_settings,
    plural,
    print_json,
    settings,
    wrap,
)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("status")(status)
    app.command("config")(config)


def status(
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="List the files that could not be read, or were skipped, and why.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show the knowledge base's location, models, settings and documents.

    Files an ingest could not read (or skipped: a type kb does not read) are counted; --failed
    lists them with the reason. A failed file is read again when it changes, or with
    `kb ingest --retry-failed`.
    """
    from kb.knowledge import KnowledgeBase, unread_summary

    s = settings(config, home=kb, embed_model=embed_model)
    with KnowledgeBase(s) as base:
        # One read transaction: while a writer commits, documents, counts and the vector
        # index (rebuilt from this snapshot if the FAISS file is of another generation)
        # must all describe the same moment.
        base.store.db.execute("BEGIN")
        try:
            n_vectors = base.vectors.size
            docs = base.store.documents()
            counts = base.store.counts()
            unread = base.store.unread()
        finally:
            base.store.db.execute("COMMIT")
        m = base.manifest
        size = sum(p.stat().st_size for p in s.home.iterdir() if p.is_file())
        data = {
            "kb": str(s.home),
            "documents": counts["documents"],
            "chunks": counts["chunks"],
            "keyword_entries": counts["keyword_entries"],
            "vectors": n_vectors,
            "bytes_on_disk": size,
            "embedding": {"name": m.embed_name, "fingerprint": m.embed_fingerprint, "dim": m.dim},
            "chunking": {"chunk_tokens": m.chunk_tokens, "chunk_overlap": m.chunk_overlap},
            "files": [
                {
                    "path": d.path,
                    "format": d.format,
                    "title": d.title,
                    "pages": d.n_pages,
                    "chunks": d.n_chunks,
                    "sha256": d.sha256,
                    "ingested_at": d.ingested_at,
                }
                for d in docs
            ],
            "unread": [
                {
                    "path": u.path,
                    "status": u.status,
                    "reason": u.reason,
                    "first_seen": u.first_seen,
                    "last_seen": u.last_seen,
                }
                for u in unread
            ],
        }
    if json_out:
        print_json(data)
        return
    if failed:
        if not unread:
            typer.echo("No file failed or was skipped at the last ingest of each folder.")
        for u in unread:
            since = time.strftime("%Y-%m-%d %H:%M", time.localtime(u.first_seen))
            typer.echo(f"{u.status:<8} {display_path(u.path)}: {u.reason} (since {since})")
        return
    typer.echo(f"Knowledge base: {s.home}")
    typer.echo(
        f"Documents: {data['documents']}   chunks: {data['chunks']}   vectors: {data['vectors']}   "
        f"size on disk: {size / 2**20:.1f} MB"
    )
    typer.echo(f"Embedding model: {m.embed_name} ({m.dim} dims, fingerprint {m.embed_fingerprint})")
    typer.echo(f"Chunking: {m.chunk_tokens} tokens, overlap {m.chunk_overlap}")
    for d in docs:
        pages = f", {plural(d.n_pages, 'page')}" if d.n_pages else ""
        typer.echo(f"  {display_path(d.path)}  ({d.format}{pages}, {plural(d.n_chunks, 'chunk')})")
    summary = unread_summary(
        {"failed": sum(u.status == "failed" for u in unread), "skipped": sum(u.status == "skipped" for u in unread)}
    )
    if summary:
        typer.echo(f"{summary}: `kb status --failed`")


def config(kb: KbOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Show every setting: its effective value, where it comes from (default, the config file, a KB_*
    environment variable, or a flag) and what it means; and which config file was read.

    Precedence, lowest first: defaults, the config file ($KB_CONFIG or --config, else
    ~/.config/kb/config.toml), KB_<NAME> environment variables, then command-line flags.
    """
    from dataclasses import asdict

    from kb.config import Settings

    loaded = loaded_settings(config, home=kb)
    values = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(loaded.settings).items()}
    file = str(loaded.file) if loaded.file else None
    if json_out:
        print_json(
            {
                "config_file": file,
                "settings": {k: {"value": v, "source": loaded.sources[k]} for k, v in values.items()},
            }
        )
        return
    if file:
        typer.echo(f"Config file: {file}")
    else:
        typer.echo(f"Config file: none ({loaded.looked_at} does not exist; defaults apply)")
    typer.echo("")
    labels = {"default": "default", "file": f"from {file}", "flag": "from the command line"}
    for name, doc, _default in Settings.fields_doc():
        source = loaded.sources[name]
        label = labels.get(source) or f"from {source.removeprefix('env ')}"
        typer.echo(f"{name} = {values[name]!r}    ({label})")
        typer.echo(wrap(f"{doc} Environment variable: KB_{name.upper()}.", "    "))
