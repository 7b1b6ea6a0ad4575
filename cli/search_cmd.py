"""`kb search`: ranked passages, no LLM."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    ConfigOpt,
    EmbedOpt,
    JsonOpt,
    KbOpt,
    ModeOpt,
    ServerOpt,
    TokenOpt,
    chunk_view,
    display_path,
    position_label,
    prepare_embedder,
    print_json,
    server_client,
    settings,
    source_label,
    wrap,
)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("search")(search)


def hit_json(hit) -> dict:
    """The documented JSON form of a search hit."""
    return hit.to_json()


def _read_queries(path: Path) -> list[tuple[str, str]]:
    """(id, text) from a file: one query per line, or JSONL with `id` and `text`."""
    from kb.errors import InputError

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read queries ({exc})") from exc
    out = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
                out.append((str(obj.get("id", obj.get("_id", i))), str(obj["text"])))
            except (ValueError, KeyError) as exc:
                raise InputError(f"{path}:{i}: expected JSON with 'text' ({exc})") from exc
        else:
            out.append((str(i), line.strip()))
    return out


def search(
    query: Annotated[str | None, typer.Argument(help="What to look for.", show_default=False)] = None,
    k: Annotated[int, typer.Option("-k", "--top", help="Number of passages (at least 1).")] = 10,
    mode: ModeOpt = None,
    queries: Annotated[
        Path | None, typer.Option("--queries", help="File of queries: one per line, or JSONL with id and text.")
    ] = None,
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Show whole passages, not the first lines.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Search passages by meaning and keywords; prints file, page, heading, score and text.

    The score is how well a passage matched, relative to this search: in hybrid mode (the
    default) meaning and keyword scores are each divided by their best and added, 0.6 and 0.4,
    so the best passage scores close to 1. It ranks passages within one search; it is not
    comparable across searches. --json also gives the cosine similarity ("relevance") and BM25.

    When `kb serve` runs on the same knowledge base, a single QUERY goes to it (--server off
    searches in-process); --queries always runs in-process.
    """
    from kb.errors import InputError
    from kb.knowledge import KnowledgeBase
    from kb.retrieval import Retriever

    if (query is None) == (queries is None):
        raise InputError("give a QUERY or --queries FILE (one of them)")
    if k < 1:
        raise InputError(f"-k must be at least 1 (got {k})")
    if query is not None and not query.strip():
        raise InputError('the query is empty: say what to look for, e.g. kb search "travel expenses"')
    s = settings(config, home=kb, embed_model=embed_model, search_mode=mode)
    client = None if queries else server_client(server, token, s.home, in_process_only=embed_model is not None)
    if client is not None:
        with client:
            data = client.search(query or "", k, s.search_mode)
        if json_out:
            print_json(data)
        else:
            render_hits(data["hits"], full=full)
        return
    batch = _read_queries(queries) if queries else [("1", query or "")]
    if not batch:
        raise InputError(f"{queries}: no queries")
    with KnowledgeBase(s) as base:
        base.require_documents()
        prepare_embedder(base.embedder, quiet=json_out)
        results = Retriever(base).search_many([t for _, t in batch], k, s.search_mode)
    if queries:
        # JSONL: one line per query, so huge batches stream into other tools.
        for (qid, text), hits in zip(batch, results, strict=True):
            if json_out:
                sys.stdout.write(
                    json.dumps({"id": qid, "query": text, "hits": [hit_json(h) for h in hits]}, ensure_ascii=False)
                    + "\n"
                )
            else:
                for h in hits:
                    member = h.chunk.extra.get("member")
                    position = position_label(h.chunk, headings=False)
                    where = ", ".join(x for x in (f"› {member}" if member else "", position) if x)
                    typer.echo(f"{qid}\t{h.rank}\t{h.score:.4f}\t{display_path(h.chunk.path)}\t{where}")
        return
    found = [hit_json(h) for h in results[0]]
    if json_out:
        print_json({"query": query, "mode": s.search_mode, "hits": found})
        return
    render_hits(found, full=full)


def render_hits(hits: list[dict], *, full: bool = False) -> None:
    """Search hits (the `kb search --json` form) as text; whole passages with `full`."""
    if not hits:
        typer.echo("No passages found.")
        return
    for h in hits:
        c = chunk_view(h)
        where = position_label(c)
        typer.echo(f"{h['rank']}. {source_label(c)}" + (f" ({where})" if where else "") + f"  score {h['score']:.2f}")
        text = " ".join(h["text"].split()) if not full else h["text"].strip()
        if not full and len(text) > 300:
            text = text[:300].rsplit(" ", 1)[0] + " …"
        typer.echo(wrap(text, "   ") + "\n")
