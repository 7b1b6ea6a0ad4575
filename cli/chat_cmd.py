"""`kb chat`: an interactive conversation over the knowledge base, in the terminal."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.common import (
    ConfigOpt,
    EmbedOpt,
    KbOpt,
    LlmOpt,
    ModeOpt,
    ServerOpt,
    ThreadsOpt,
    TokenOpt,
    err,
    server_client,
    settings,
)

PROMPT = "you> "
QUIT = {"exit", "quit", ":q", "/exit", "/quit"}


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("chat")(chat)


def chat(
    extractive: Annotated[
        bool, typer.Option("--extractive", help="Answer with the best-supporting sentences, no LLM.")
    ] = False,
    k: Annotated[int | None, typer.Option("-k", "--top", help="Passages retrieved per question (default 6).")] = None,
    mode: ModeOpt = None,
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    llm_model: LlmOpt = None,
    threads: ThreadsOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """A conversation over the documents: ask, then ask follow-ups ("and for part-time staff?").

    Each follow-up is rewritten into a standalone question before the search, and the rewrite
    is shown ("searching for: ..."). Answers are verified and cited like `kb ask`; sentences
    are printed as they are verified. Runs against `kb serve` when it is running on the same
    knowledge base (or --server URL), else in-process. Type `exit` or press Ctrl-D to leave;
    `new` starts a new conversation.
    """
    s = settings(
        config, home=kb, embed_model=embed_model, llm_model=llm_model, top_k=k, search_mode=mode, threads=threads
    )
    explicit = any(v is not None for v in (embed_model, llm_model, threads))
    client = server_client(server, token, s.home, in_process_only=explicit)
    limits = (s.min_answerability, s.min_relevance)  # for saying why an answer is refused or partial
    if client is not None:
        err(f"kb: chatting through the server at {client.url}")
        with client:
            _loop(lambda messages: _turn_server(client, messages, extractive, k, mode, limits))
        return
    from kb.answer import Answerer
    from kb.knowledge import KnowledgeBase

    err("kb: loading the models…")
    with KnowledgeBase(s) as base:
        answerer = Answerer.for_kb(base, extractive=extractive)
        _loop(lambda messages: _turn_local(answerer, messages, extractive, limits))


def _loop(turn: Any) -> None:
    """Read questions until end of input, keeping the conversation."""
    messages: list[dict] = []
    while True:
        try:
            question = input(PROMPT).strip()
        except EOFError:
            typer.echo("")
            return
        if not question:
            continue
        if question.lower() in QUIT:
            return
        if question.lower() in ("new", "/new"):
            messages = []
            err("(new conversation)")
            continue
        messages.append({"role": "user", "content": question})
        text = turn(messages)
        messages.append({"role": "assistant", "content": text})
        typer.echo("")


def _show_rewrite(rewrite: dict) -> None:
    if rewrite["how"] != "as asked":
        typer.echo(f"(searching for: {rewrite['standalone']})")


def _turn_server(
    client: Any,
    messages: list[dict],
    extractive: bool,
    k: int | None,
    mode: str | None,
    limits: tuple[float, float],
) -> str:
    """One turn through the server, text printed as it streams."""
    from cli.ask_cmd import render_answer

    shown: list[str] = []

    def on_text(piece: str) -> None:
        typer.echo(piece, nl=False)
        shown.append(piece)

    text, final = client.chat_stream(
        messages, extractive=extractive, k=k, mode=mode, on_rewrite=_show_rewrite, on_text=on_text
    )
    if shown:
        typer.echo("")
    render_answer(_as_answer(text, final), *limits, streamed=[text] if shown else None)
    return text


def _turn_local(answerer: Any, messages: list[dict], extractive: bool, limits: tuple[float, float]) -> str:
    """One turn in-process: rewrite, answer with the verified sentences printed as they come, then the sources."""
    from cli.ask_cmd import render_answer
    from kb.chat import remaining_pieces, rewrite, sentence_piece, split_conversation

    history, question = split_conversation(messages)
    rw = rewrite(history, question, None if extractive else answerer.llm)
    _show_rewrite(rw.to_json())
    shown: list[str] = []

    def show(piece: str) -> None:
        typer.echo(("" if not shown else " ") + piece, nl=False)
        shown.append(piece)

    answer = answerer.ask(rw.standalone, extractive=extractive, on_sentence=lambda s: show(sentence_piece(s)))
    for piece in remaining_pieces(answer, shown):
        show(piece)
    typer.echo("")
    render_answer(answer.to_json(), *limits, streamed=shown, exact=answer.answerability)
    return answer.text


def _as_answer(text: str, kb: dict) -> dict:
    """The `kb` field of a chat completion in the shape render_answer reads (`kb ask --json`)."""
    return {
        "answer": text,
        "note": kb["note"],
        "refused": kb["refused"],
        "sources": kb["citations"],
        "closest": kb["closest"],
    }
