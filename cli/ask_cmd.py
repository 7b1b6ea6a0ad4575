"""`kb ask`: a short answer with [n] citations and the quoted sources, or a plain refusal."""

from __future__ import annotations

import math
import sys
from typing import Annotated

import typer

from cli.common import (
    ConfigOpt,
    EmbedOpt,
    JsonOpt,
    KbOpt,
    LlmOpt,
    ModeOpt,
    ServerOpt,
    ThreadsOpt,
    TokenOpt,
    chunk_view,
    err,
    location,
    prepare_embedder,
    print_json,
    server_client,
    settings,
    spinner,
    wrap,
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
    min_answerability: Annotated[
        float | None,
        typer.Option(
            "--min-answerability",
            help="Refuse below this answerability, 0-1 (default 0.56, setting min_answerability): lower answers "
            "more readily, higher refuses more.",
        ),
    ] = None,
    mode: ModeOpt = None,
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    llm_model: LlmOpt = None,
    threads: ThreadsOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer a question from the documents, citing file, page and quote for every claim.

    Each sentence of the model's answer is checked against the passage it cites; sentences
    the passages do not back are dropped. When nothing relevant is found, kb says the
    documents do not answer, why, and which setting decides it, and shows the closest passages.

    When `kb serve` runs on the same knowledge base, the question goes to it (models already
    loaded, sentences shown as they are verified); --server off answers in-process.
    """
    from kb.answer import Answerer
    from kb.errors import InputError
    from kb.knowledge import KnowledgeBase, unread_summary
    from kb.llm import BackgroundLLM

    if not question.strip():
        raise InputError('the question is empty: ask something, e.g. kb ask "How many days of leave do we get?"')
    s = settings(
        config,
        home=kb,
        embed_model=embed_model,
        llm_model=llm_model,
        top_k=k,
        search_mode=mode,
        threads=threads,
        min_answerability=min_answerability,
    )
    explicit = any(v is not None for v in (embed_model, llm_model, threads, min_answerability))
    client = server_client(server, token, s.home, in_process_only=explicit)
    if client is not None:
        streamed: list[str] = []

        def show(piece: str) -> None:
            typer.echo(("" if not streamed else " ") + piece, nl=False)
            streamed.append(piece)

        with client:
            if not json_out and sys.stdout.isatty():
                data = client.ask_stream(question, extractive=extractive, k=k, mode=mode, on_sentence=show)
            else:
                data = client.ask(question, extractive=extractive, k=k, mode=mode)
        if json_out:
            print_json(data)
            return
        if streamed:
            typer.echo("")
        render_answer(data, s.min_answerability, s.min_relevance, streamed=streamed)
        return
    with KnowledgeBase(s) as base:
        base.require_documents()
        unread = unread_summary(base.store.unread_counts())
        prepare_embedder(base.embedder, quiet=json_out)
        with spinner("searching" if extractive else "searching and answering", enabled=not json_out):
            # The language model loads in a thread while the question is searched and its
            # sentences ranked (both in native code); the answer waits for it.
            answerer = Answerer.for_kb(base, extractive=extractive, background=True)
            try:
                answer = answerer.ask(question, extractive=extractive)
            finally:
                if isinstance(answerer.llm, BackgroundLLM):
                    answerer.llm.wait()  # its load silences stderr, where warnings and errors go
    for warning in answerer.warnings:  # after the spinner, which would overwrite a line written under it
        typer.echo(f"kb: {warning}", err=True)
    if json_out:
        print_json(answer.to_json())
        return
    render_answer(answer.to_json(), s.min_answerability, s.min_relevance, exact=answer.answerability)
    if unread:
        err(f"note: {unread}, so their contents cannot be searched: `kb status --failed`")


def render_answer(
    data: dict,
    min_answerability: float,
    min_relevance: float,
    *,
    streamed: list[str] | None = None,
    exact: float | None = None,
) -> None:
    """An answer (the `kb ask --json` form) as text: the answer (unless its sentences were already
    `streamed`), why it was refused or is partial, its note, its sources or the closest passages.
    `exact`: the unrounded answerability, when known."""
    if not streamed:
        typer.echo(wrap(data["answer"]))
    elif " ".join(streamed) != data["answer"]:
        typer.echo("\nThe verified answer:\n" + wrap(data["answer"]))
    score = exact if exact is not None else data.get("answerability")
    if data["refused"]:
        typer.echo("\n" + wrap(why_refused(data, score, min_answerability, min_relevance)))
    elif data.get("partial"):
        typer.echo("\n" + wrap(data["note"]) + "\n" + wrap(why_partial(score, min_answerability)))
    elif data["note"]:
        typer.echo("\n" + wrap(f"({data['note']})"))
    if data["sources"]:
        typer.echo("\nSources:")
        for src in data["sources"]:
            q = src.get("quote")
            # The pages of the quoted sentence, not of the whole passage.
            where = location(chunk_view(src), pages=(q["page_start"], q["page_end"]) if q else None)
            quote = " ".join((q["text"] if q else src["text"][:200]).split())
            typer.echo(f"[{src['n']}] {where}\n" + wrap(f'"{quote}"', "    "))
    if data["refused"] and data["closest"]:
        typer.echo("\nClosest passages (not enough to answer):")
        for src in data["closest"]:
            text = " ".join(src["text"].split())
            snippet = text if len(text) <= 160 else text[:160].rsplit(" ", 1)[0] + " …"
            typer.echo(wrap(f"{location(chunk_view(src), headings=False)}: {snippet}", "  ", first="- "))


def why_refused(data: dict, answerability: float | None, min_answerability: float, min_relevance: float) -> str:
    """Why kb refused, in plain words, and the setting that decides it (or that none does)."""
    why = f"Why: {data['note']}." if data["note"] else "Why: no passage answers it well enough."
    signals = data.get("signals") or {}
    if signals.get("names_absent") and not signals.get("names_anchored"):
        return (
            f"{why} kb refuses a question about a name that no document mentions, whatever min_answerability is; "
            "check its spelling, or add the documents about it with `kb ingest`."
        )
    if answerability is not None:
        lower = max(0.0, round(answerability - 0.01, 2))
        return (
            f"{why} The threshold is min_answerability = {min_answerability:g}; to answer such questions, lower it "
            f"(kb ask --min-answerability {lower:g} ..., KB_MIN_ANSWERABILITY, or the config file). "
            "A lower threshold also answers more questions the documents do not answer."
        )
    if "relevant" in (data["note"] or ""):
        return (
            f"{why} The threshold is min_relevance = {min_relevance:g} (KB_MIN_RELEVANCE or the config file); "
            "rephrasing the question with the documents' own words may find closer passages."
        )
    return f"{why} Rephrasing the question with the documents' own words may find closer passages."


def why_partial(answerability: float | None, min_answerability: float) -> str:
    """What decides between answering in full, in part and refusing, and the setting that tunes it."""
    from kb.answer.gate import PARTIAL_BAND

    text = (
        f"kb answers in part when the evidence scores less than {PARTIAL_BAND:g} below min_answerability = "
        f"{min_answerability:g} and its document is about a name the question asks about."
    )
    if answerability is None:
        return text
    # Thresholds of two decimals: at most the score answers in full, above score + band refuses.
    full = math.floor(answerability * 100 + 1e-9) / 100
    refuse = (math.floor((answerability + PARTIAL_BAND) * 100 + 1e-9) + 1) / 100
    return (
        f"{text} With `kb ask --min-answerability` (or the setting) at {full:.2f} or below such a question is "
        f"answered in full; at {refuse:.2f} or above it is refused."
    )
