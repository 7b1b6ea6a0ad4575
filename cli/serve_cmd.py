"""`kb serve`: keep the models warm and answer over HTTP (JSON API, OpenAI-compatible chat, web page)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import ConfigOpt, EmbedOpt, KbOpt, LlmOpt, ThreadsOpt, err, settings


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("serve")(serve)


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Beyond loopback, tokens are required.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8765,
    no_llm: Annotated[
        bool, typer.Option("--no-llm", help="Do not load the LLM: search and extractive answers only.")
    ] = False,
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    llm_model: LlmOpt = None,
    threads: ThreadsOpt = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level (info logs every request).")] = (
        "warning"
    ),
) -> None:
    """Serve the knowledge base over HTTP until Ctrl-C, with the models loaded once.

    A web page at /, kb's JSON API (POST /v1/search, /v1/ask, /v1/summarize; GET /v1/status,
    /health) and an OpenAI-compatible POST /v1/chat/completions whose answers carry kb's
    citations (file, page, quote) in the `kb` field. Requests that need the LLM wait in a
    bounded queue (serve_queue); when it is full they get 429 with Retry-After.

    Tokens: with [tokens.NAME] entries in the config file (`kb token create`), every request
    needs `Authorization: Bearer TOKEN` and sees only the documents of the token's groups plus
    those in no group. Without tokens the server listens on loopback only and sees everything.

    While it runs, `kb ask` and `kb search` on the same knowledge base use it (see --server).
    """
    from kb.errors import InputError
    from kb.server.run import check_binding, serve_forever
    from kb.server.service import Service

    s = settings(config, home=kb, embed_model=embed_model, llm_model=llm_model, threads=threads)
    check_binding(host, s.tokens)
    if not 0 < port < 65536:
        raise InputError(f"--port {port}: must be between 1 and 65535")
    try:
        free_port_check(host, port)
    except OSError as exc:
        raise InputError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    err("kb: loading the models…")
    service = Service(s, load_llm=not no_llm)
    shown = f"[{host}]" if ":" in host else host
    auth = f"{len(s.tokens)} token(s)" if s.tokens else "no tokens (loopback only, every document visible)"
    err(f"kb: serving {s.home} on http://{shown}:{port}  (web page /, API /v1; {auth}); Ctrl-C stops")
    try:
        serve_forever(service, host, port, log_level=log_level)
    finally:
        service.close()


def free_port_check(host: str, port: int) -> None:
    """Raise OSError when `host:port` cannot be bound right now."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
