"""The HTTP routes of `kb serve` (FastAPI), over a Service.

Endpoints (JSON in and out; errors are {"error": {"message", "type", "code"}}):
    GET  /                      the web page (kb/web/)
    GET  /health                liveness, no token needed
    GET  /v1/models             the knowledge base, as the one "model"
    GET  /v1/status             documents visible to the caller, models, queue
    POST /v1/search             {"query", "k", "mode"} -> the JSON of `kb search --json`
    POST /v1/ask                {"question", "extractive", "k", "mode", "stream"} -> `kb ask --json`;
                                with "stream": true, events `sentence` ({"text"}) then `answer`
    POST /v1/chat/completions   OpenAI-compatible, citations in the `kb` extension field
    POST /v1/summarize          {"path", "words", "overview_words", "style"}
Work that needs the LLM waits in a bounded queue (429 with Retry-After when it is full); search
never waits for it. A client that disconnects cancels its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from kb.chat import split_conversation
from kb.errors import InputError, KBError
from kb.server import openai_compat as oai
from kb.server.queue import Cancelled, QueueFull, Ticket
from kb.server.service import Caller, Forbidden, NotFound, Service, Unauthorized

WEB = Path(__file__).resolve().parent.parent / "web"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
POLL = 0.25  # seconds between checks that a client waiting for the LLM is still there


class SearchRequest(BaseModel):
    """POST /v1/search."""

    model_config = ConfigDict(extra="forbid")
    query: str
    k: int = 10
    mode: str | None = None


class AskRequest(BaseModel):
    """POST /v1/ask."""

    model_config = ConfigDict(extra="forbid")
    question: str
    extractive: bool = False
    k: int | None = None
    mode: str | None = None
    stream: bool = False


class Options(BaseModel):
    """kb's own options in a chat request (`"kb": {...}`, the `extra_body` of OpenAI clients)."""

    model_config = ConfigDict(extra="forbid")
    extractive: bool = False
    k: int | None = None
    mode: str | None = None


class ChatRequest(BaseModel):
    """POST /v1/chat/completions; sampling parameters (temperature, max_tokens...) are accepted and
    ignored: kb's settings govern generation, and answers are verified whatever the model writes."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    kb: Options = Options()


class SummarizeRequest(BaseModel):
    """POST /v1/summarize."""

    model_config = ConfigDict(extra="forbid")
    path: str
    words: int = Field(150, ge=20, le=2000)
    overview_words: int = Field(200, ge=20, le=4000)
    style: str = "bullets"


async def _caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
    # async: a hash and a lookup, not worth the thread FastAPI would run a plain function in.
    return request.app.state.service.caller(authorization)


Who = Annotated[Caller, Depends(_caller)]  # who is asking, from the Authorization header

_STATUS = {Unauthorized: 401, Forbidden: 403, NotFound: 404, QueueFull: 429}


def create_app(service: Service) -> FastAPI:
    """The ASGI app over `service`."""
    app = FastAPI(title="kb", version="1", docs_url=None, redoc_url=None)  # the docs pages load a CDN
    app.state.service = service
    app.state.workers = ThreadPoolExecutor(max_workers=service.queue.capacity + 16, thread_name_prefix="kb-answer")
    # Searches run in a few threads of their own: more would only take turns for the interpreter
    # lock, each hand-over costing time, while the ones queued here wait for nothing but a thread.
    searchers = ThreadPoolExecutor(max_workers=max(2, service.settings.threads), thread_name_prefix="kb-search")
    app.state.searchers = searchers
    if not service.auth_required:
        # Open on loopback: answer only requests addressed to a loopback name, so a web page
        # elsewhere cannot reach this server by pointing its own host name at 127.0.0.1.
        app.add_middleware(LoopbackOnly)

    @app.exception_handler(KBError)
    async def kb_error(_: Request, exc: KBError) -> JSONResponse:
        return _error(exc)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB), name="static")

    @app.get("/health")
    @app.get("/v1/health")
    def health() -> dict:
        return {"status": "ok", "name": service.name, "kb_id": service.id, "auth": service.auth_required}

    @app.get("/v1/models")
    def models(who: Who) -> dict:
        return {"object": "list", "data": [_model(service)]}

    @app.get("/v1/models/{model_id}")
    def model(model_id: str, who: Who) -> dict:
        _check_model(service, model_id)
        return _model(service)

    @app.get("/v1/status")
    def status(who: Who) -> dict:
        return service.status(who)

    @app.post("/v1/search", response_model=None)
    async def search(body: SearchRequest, who: Who) -> JSONResponse:
        mode = service.check_search(who, body.query, body.k, body.mode)
        # The query vector first, awaited here: it joins the next batch of query embeddings (the
        # queries of concurrent requests embed together) and is remembered, so the search below
        # finds it without waiting again.
        await service.embedder.embed_async([body.query])
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(searchers, service.search, who, body.query, body.k, mode)
        # Sent as it is: a returned dict would be walked again by FastAPI's encoder on every search.
        return JSONResponse(found)

    @app.post("/v1/ask", response_model=None)
    async def ask(body: AskRequest, request: Request, who: Who) -> Any:
        who.require("ask")
        if not body.question.strip():
            raise InputError("question: empty")
        ticket = None if body.extractive else service.queue.admit()
        if not body.stream:
            answer = await _job(
                request,
                ticket,
                lambda cancel: service.ask(
                    who,
                    body.question,
                    extractive=body.extractive,
                    k=body.k,
                    mode=body.mode,
                    ticket=ticket,
                    cancel=cancel,
                ),
            )
            return JSONResponse(answer.to_json())

        def work(emit: Callable[[str], None], cancel: threading.Event) -> None:
            answer = service.ask(
                who,
                body.question,
                extractive=body.extractive,
                k=body.k,
                mode=body.mode,
                ticket=ticket,
                cancel=cancel,
                on_sentence=lambda text: emit(oai.sse({"text": text}, "sentence")),
            )
            emit(oai.sse(answer.to_json(), "answer"))

        return _sse(request, ticket, work)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatRequest, request: Request, who: Who) -> Any:
        who.require("ask")
        if body.model:
            _check_model(service, body.model)
        try:
            split_conversation(body.messages)
        except ValueError as exc:
            raise InputError(f"messages: {exc}") from None
        model_name = service.name
        opts = body.kb
        ticket = None if opts.extractive else service.queue.admit()
        cid = oai.completion_id()
        if not body.stream:
            rw, answer = await _job(
                request,
                ticket,
                lambda cancel: service.chat(
                    who,
                    body.messages,
                    extractive=opts.extractive,
                    k=opts.k,
                    mode=opts.mode,
                    ticket=ticket,
                    cancel=cancel,
                ),
            )
            return JSONResponse(oai.completion(cid, model_name, rw, answer))

        def work(emit: Callable[[str], None], cancel: threading.Event) -> None:
            started: list[bool] = []

            def on_rewrite(rw: Any) -> None:
                started.append(True)
                emit(oai.chunk(cid, model_name, {"role": "assistant", "content": ""}, kb={"rewrite": rw.to_json()}))

            def on_sentence(text: str) -> None:
                emit(oai.chunk(cid, model_name, {"content": text if len(started) == 1 else " " + text}))
                started.append(True)

            rw, answer = service.chat(
                who,
                body.messages,
                extractive=opts.extractive,
                k=opts.k,
                mode=opts.mode,
                ticket=ticket,
                cancel=cancel,
                on_rewrite=on_rewrite,
                on_sentence=on_sentence,
            )
            emit(oai.chunk(cid, model_name, {}, "stop", kb=oai.kb_extension(rw, answer)))
            emit(oai.sse("[DONE]"))

        return _sse(request, ticket, work)

    @app.post("/v1/summarize")
    async def summarize(body: SummarizeRequest, request: Request, who: Who) -> dict:
        who.require("summarize")
        if body.style not in ("bullets", "prose"):
            raise InputError(f"style {body.style!r}: use bullets or prose")
        ticket = service.queue.admit()
        return await _job(
            request,
            ticket,
            lambda cancel: service.summarize(
                who,
                body.path,
                words=body.words,
                overview_words=body.overview_words,
                style=body.style,
                ticket=ticket,
                cancel=cancel,
            ),
        )

    return app


class LoopbackOnly:
    """ASGI middleware: 400 for any HTTP request whose Host header is not a loopback name.

    Plain ASGI rather than `@app.middleware("http")`, whose wrapper costs a task group and a
    stream per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            if host_name(host) not in LOOPBACK_HOSTS:
                body = oai.error_body("this server answers only requests addressed to a loopback name", "invalid_host")
                await JSONResponse(body, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def host_name(host: str) -> str:
    """The name in a Host header, without its port ("[::1]:8765" -> "[::1]")."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


def _model(service: Service) -> dict:
    return {"id": service.name, "object": "model", "created": int(service.started), "owned_by": "kb"}


def _check_model(service: Service, name: str) -> None:
    if name not in (service.name, "kb"):
        raise NotFound(
            f"model {name!r} does not exist; this server's knowledge base is {service.name!r}", "model_not_found"
        )


def _error(exc: Exception) -> JSONResponse:
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 429: "rate_limit_error"}
    code = getattr(exc, "code", None) or {429: "queue_full", 401: "invalid_api_key"}.get(status)
    headers = {}
    if isinstance(exc, QueueFull):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        oai.error_body(str(exc), kind.get(status, "invalid_request_error"), code), status_code=status, headers=headers
    )


def _workers(request: Request) -> ThreadPoolExecutor:
    """The threads that run answers: enough for every place in the queue and the extractive answers
    beside them, so a job admitted to the queue never also waits for a thread."""
    return request.app.state.workers


async def _job(request: Request, ticket: Ticket | None, work: Callable[[threading.Event], Any]) -> Any:
    """Run `work` in a thread; if the client goes away meanwhile, cancel it (freeing its place)."""
    cancel = threading.Event()
    task = asyncio.get_running_loop().run_in_executor(_workers(request), work, cancel)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL)
            if done:
                return task.result()
            if await request.is_disconnected():
                cancel.set()
                with contextlib.suppress(Cancelled):
                    await task
                raise Cancelled()
    finally:
        cancel.set()
        if ticket is not None:
            # Given back when the work has ended, whichever way it ended (idempotent).
            task.add_done_callback(lambda _: ticket.release())


def _sse(
    request: Request, ticket: Ticket | None, work: Callable[[Callable[[str], None], threading.Event], None]
) -> StreamingResponse:
    """Stream the events `work` emits from its thread; a disconnect cancels it."""

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def emit(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ("event", text))

        def run() -> None:
            try:
                work(emit, cancel)
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except Cancelled:
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except Exception as exc:  # reported in the stream: the status line is already sent
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

        task = loop.run_in_executor(_workers(request), run)
        try:
            while True:
                try:
                    kind, value = await asyncio.wait_for(queue.get(), timeout=POLL)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    continue
                if kind == "end":
                    return
                if kind == "error":
                    message = str(value) if isinstance(value, KBError) else f"internal error ({type(value).__name__})"
                    yield oai.sse(oai.error_body(message, "server_error"))
                    return
                yield value
        finally:
            # No await here: a cancelled scope would cancel it again. The place in the queue is
            # given back when the worker thread has stopped (at its next token at the latest).
            cancel.set()
            if ticket is not None:
                task.add_done_callback(lambda _: ticket.release())

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
