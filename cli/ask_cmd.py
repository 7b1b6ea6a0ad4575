"""`kb ask`: a short answer with [n] citations and the quoted sources, or a plain refusal."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import (
    ConfigOpt,
    EmbedOpt,
    JsonOpt,
    KbOpt,
    LlmOpt,
    ModeOpt,
    ThreadsOpt,
    location,
    print_json,
    settings,
)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("ask")(ask)


def ask(
    question: Annotated[str, typer.Argument(help="Your question, in quotes.")],
    extractive: Annotated[
        bool, typer.Option("--extractive", help="Answer with the best-supporting sentences, no LLM.")
    ] = False,
    k: Annotated[int | None, typer.Option("-k", "--top", help="Passages retrieved (default 6).")] = None,
    mode: ModeOpt = None,
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    llm_model: LlmOpt = None,
    threads: ThreadsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer a question from the documents, citing file, page and quote for every claim.

    Each sentence of the model's answer is checked against the passage it cites; sentences
    the passages do not back are dropped. When nothing relevant is found, kb says the
    documents do not answer, and shows the closest passages.
    """
    from kb.answer import Answerer
    from kb.knowledge import KnowledgeBase

    s = settings(
        config, home=kb, embed_model=embed_model, llm_model=llm_model, top_k=k, search_mode=mode, threads=threads
    )
    with KnowledgeBase(s) as base:
        answerer = Answerer.for_kb(base, extractive=extractive)
        for warning in answerer.warnings:
            typer.echo(f"kb: {warning}", err=True)
        answer = answerer.ask(question, extractive=extractive)
    if json_out:
        print_json(answer.to_json())
        return
    typer.echo(answer.text)
    if answer.note and not answer.refused:
        typer.echo(f"\n({answer.note})")
    if answer.sources:
        typer.echo("\nSources:")
        for src in answer.sources:
            c = src.hit.chunk
            # The pages of the quoted sentence, not of the whole passage.
            where = location(c, pages=c.pages_of(src.quote.start, src.quote.end) if src.quote else None)
            quote = " ".join((src.quote.text if src.quote else c.text[:200]).split())
            typer.echo(f'[{src.n}] {where}\n    "{quote}"')
    if answer.refused and answer.candidates:
        typer.echo("\nClosest passages (not enough to answer):")
        for src in answer.candidates:
            c = src.hit.chunk
            where = location(c, headings=False)
            snippet = " ".join(c.text.split())[:160]
            typer.echo(f"- {where}: {snippet}…")
