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
    if client is not None:
        err(f"kb: chatting through the server at {client.url}")
        with client:
            _loop(lambda messages: _turn_server(client, messages, extractive, k, mode))
        return
    from kb.answer import Answerer
    from kb.knowledge import KnowledgeBase

    err("kb: loading the models…")
    with KnowledgeBase(s) as base:
        answerer = Answerer.for_kb(base, extractive=extractive)
        _loop(lambda messages: _turn_local(answerer, messages, extractive))


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


def _turn_server(client: Any, messages: list[dict], extractive: bool, k: int | None, mode: str | None) -> str:
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
    render_answer(_as_answer(text, final), text_shown=bool(shown))
    return text


def _turn_local(answerer: Any, messages: list[dict], extractive: bool) -> str:
    """One turn in-process: rewrite, answer, print the verified sentences, then the sources."""
    from cli.ask_cmd import render_answer
    from kb.chat import answer_pieces, rewrite, split_conversation

    history, question = split_conversation(messages)
    rw = rewrite(history, question, None if extractive else answerer.llm)
    _show_rewrite(rw.to_json())
    answer = answerer.ask(rw.standalone, extractive=extractive)
    typer.echo(" ".join(answer_pieces(answer)))
    render_answer(answer.to_json(), text_shown=True)
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
