"""`kb status`: what the knowledge base holds and how it was built."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import ConfigOpt, EmbedOpt, JsonOpt, KbOpt, display_path, print_json, settings


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("status")(status)
    app.command("config")(config)


def status(kb: KbOpt = None, config: ConfigOpt = None, embed_model: EmbedOpt = None, json_out: JsonOpt = False) -> None:
    """Show the knowledge base's location, models, settings and documents."""
    from kb.knowledge import KnowledgeBase

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
        }
    if json_out:
        print_json(data)
        return
    typer.echo(f"Knowledge base: {s.home}")
    typer.echo(
        f"Documents: {data['documents']}   chunks: {data['chunks']}   vectors: {data['vectors']}   "
        f"size on disk: {size / 2**20:.1f} MB"
    )
    typer.echo(f"Embedding model: {m.embed_name} ({m.dim} dims, fingerprint {m.embed_fingerprint})")
    typer.echo(f"Chunking: {m.chunk_tokens} tokens, overlap {m.chunk_overlap}")
    for d in docs:
        pages = f", {d.n_pages} pages" if d.n_pages else ""
        typer.echo(f"  {display_path(d.path)}  ({d.format}{pages}, {d.n_chunks} chunks)")


def config(config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Show every setting: its effective value (defaults < config file < KB_* variables) and meaning."""
    from dataclasses import asdict

    from kb.config import Settings

    s = settings(config)
    values = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()}
    if json_out:
        print_json(values)
        return
    for name, doc, _default in Settings.fields_doc():
        typer.echo(f"{name} = {values[name]!r}\n    {doc} (env KB_{name.upper()})")
