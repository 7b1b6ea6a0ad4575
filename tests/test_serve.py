"""`kb serve` over HTTP: a real server on a free loopback port, driven with httpx and the openai client.

The models are the test stand-ins (hashing embedder, a quoting LLM), so these tests check the
server's logic: authentication, groups, streaming, citations, the queue, cancellation, freshness.
tests/test_serve_real.py does the same with the real models.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from kb.indexer import ingest
from kb.knowledge import KnowledgeBase
from kb.server.run import ThreadedServer, check_binding
from kb.server.service import Service
from kb.tokens import hash_token, parse_tokens
from tests.fakes import FakeEmbedder, QuotingLLM

SECRET = "Bluebird"  # in alice's answers
# What bob must never receive; no question below contains either, so an echo of the question is no leak.
LEAKS = ("codename is Bluebird", "14 March")
TOKENS = {"alice": "kb-alice", "bob": "kb-bob", "finder": "kb-finder", "root": "kb-root"}


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def kb_settings(settings, tmp_path):
    docs = tmp_path / "docs"
    _write(docs / "leave.md", "# Leave\n\nFull-time employees receive 28 days of annual leave per year.\n")
    _write(docs / "parttime.md", "# Part-time\n\nPart-time staff receive annual leave in proportion to hours.\n")
    _write(
        docs / "finance" / "merger.md",
        "# Merger\n\nThe merger codename is Bluebird. The merger closes on 14 March and the leave plan is unchanged.\n",
    )
    _write(docs / "finance" / ".kbgroups", "finance\n")
    tokens = parse_tokens(
        {
            "alice": {"sha256": hash_token(TOKENS["alice"]), "groups": ["finance"]},
            "bob": {"sha256": hash_token(TOKENS["bob"]), "groups": ["staff"]},
            "finder": {"sha256": hash_token(TOKENS["finder"]), "groups": [], "scopes": ["search"]},
            "root": {"sha256": hash_token(TOKENS["root"]), "groups": ["*"]},
        }
    )
    s = settings.with_overrides(min_relevance=0.0, min_answerability=0.0, serve_queue=1)
    s = dataclasses.replace(s, tokens=tokens)
    with KnowledgeBase(s, embedder=FakeEmbedder(), write=True) as kb:
        report = ingest(kb, [docs], isolate=False)
        assert not report.failed
    return s


@pytest.fixture
def llm():
    return QuotingLLM()


@pytest.fixture
def server(kb_settings, llm):
    service = Service(kb_settings, embedder=FakeEmbedder(), llm=llm)
    with ThreadedServer(service) as srv:
        srv.service = service
        yield srv
    service.close()


def _client(server, who="bob"):
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKENS[who]}"}, timeout=30)


def _oai(server, who="bob"):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=TOKENS[who], max_retries=0, timeout=30)


def test_health_needs_no_token_and_everything_else_does(server):
    assert httpx.get(server.url + "/health").json()["auth"] is True
    for method, path, body in [
        ("GET", "/v1/models", None),
        ("GET", "/v1/status", None),
        ("POST", "/v1/search", {"query": "leave"}),
        ("POST", "/v1/ask", {"question": "leave?"}),
    ]:
        r = httpx.request(method, server.url + path, json=body)
        assert r.status_code == 401, path
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert r.json()["error"]["type"] == "authentication_error"
        r = httpx.request(method, server.url + path, json=body, headers={"Authorization": "Bearer kb-wrong"})
        assert r.status_code == 401, path
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="nope", max_retries=0).models.list()


def test_a_search_only_token_is_forbidden_to_ask(server):
    with _client(server, "finder") as c:
        assert c.post("/v1/search", json={"query": "annual leave"}).status_code == 200
        for path, body in [
            ("/v1/ask", {"question": "How much leave?"}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "How much leave?"}]}),
            ("/v1/summarize", {"path": "/"}),
        ]:
            r = c.post(path, json=body)
            assert r.status_code == 403, path
            assert r.json()["error"]["type"] == "permission_error"
    with pytest.raises(openai.PermissionDeniedError):
        _oai(server, "finder").chat.completions.create(model="kb", messages=[{"role": "user", "content": "Leave?"}])


def test_models_and_status(server):
    models = _oai(server).models.list()
    assert [m.id for m in models.data] == [server.service.name]
    with _client(server, "bob") as c:
        status = c.get("/v1/status").json()
        assert status["documents"] == 2 and status["access"]["groups"] == ["staff"]
        assert status["queue"]["capacity"] == 2
    with _client(server, "alice") as c:
        assert c.get("/v1/status").json()["documents"] == 3
    with pytest.raises(openai.NotFoundError):
        _oai(server).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Leave?"}])


def test_search_and_ask_json_match_the_cli_schemas(server):
    with _client(server, "alice") as c:
        data = c.post("/v1/search", json={"query": "merger codename", "k": 3}).json()
        assert set(data) == {"query", "mode", "hits"} and data["mode"] == "hybrid"
        assert set(data["hits"][0]) == {
            "rank",
            "score",
            "relevance",
            "bm25",
            "path",
            "title",
            "page_start",
            "page_end",
            "heading",
            "member",
            "locator",
            "chunk_id",
            "char_start",
            "char_end",
            "text",
        }
        assert SECRET in data["hits"][0]["text"]
        answer = c.post("/v1/ask", json={"question": "What is the merger codename?"}).json()
        assert set(answer) >= {"question", "answer", "refused", "mode", "sentences", "sources", "closest", "timings"}
        assert not answer["refused"] and SECRET in answer["answer"]
        r = c.post("/v1/search", json={"query": "x", "k": 0})
        assert r.status_code == 400 and "k 0" in r.json()["error"]["message"]
        assert c.post("/v1/search", json={"query": "x", "colour": 1}).status_code == 422


def _check_citations(text, kb):
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
    cites = {c["n"]: c for c in kb["citations"]}
    assert markers and markers == set(cites), (text, list(cites))
    for c in cites.values():
        q = c["quote"]
        assert c["text"][q["start"] : q["end"]] == q["text"]
        assert c["path"].endswith(".md") and isinstance(c["chunk_id"], int)
        assert "page_start" in c and q["doc_end"] - q["doc_start"] == q["end"] - q["start"]
        assert {"page_start", "page_end"} <= set(q) and {"member", "locator"} <= set(c)


def test_openai_client_non_streamed_answer_carries_citations(server):
    r = _oai(server, "bob").chat.completions.create(
        model=server.service.name, messages=[{"role": "user", "content": "How many days of annual leave?"}]
    )
    text = r.choices[0].message.content
    assert "28 days" in text and r.choices[0].finish_reason == "stop"
    kb = r.model_extra["kb"]
    assert not kb["refused"] and kb["mode"] == "generative"
    _check_citations(text, kb)


def test_openai_client_stream_sends_sentences_then_citations(server):
    stream = _oai(server, "bob").chat.completions.create(
        model="kb", messages=[{"role": "user", "content": "How many days of annual leave?"}], stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].model_extra["kb"]["rewrite"]["how"] == "as asked"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    kb = chunks[-1].model_extra["kb"]
    _check_citations(text, kb)
    assert sum(1 for c in chunks if c.choices[0].delta.content) >= 1
    assert all("kb" not in (c.model_extra or {}) for c in chunks[1:-1])


def test_follow_up_is_rewritten_before_retrieval(server, llm):
    llm.rewrites = ["How many days of annual leave do part-time staff get?"]
    history = [
        {"role": "user", "content": "How many days of annual leave do full-time employees get?"},
        {"role": "assistant", "content": "Full-time employees receive 28 days of annual leave per year [1]."},
        {"role": "user", "content": "and for part-time staff?"},
    ]
    r = _oai(server, "bob").chat.completions.create(model="kb", messages=history)
    kb = r.model_extra["kb"]
    assert kb["rewrite"] == {
        "asked": "and for part-time staff?",
        "standalone": "How many days of annual leave do part-time staff get?",
        "how": "model",
    }
    assert kb["question"] == kb["rewrite"]["standalone"]
    assert "proportion" in r.choices[0].message.content
    # A useless rewrite falls back to the previous question joined to the follow-up.
    llm.rewrites = ["I don't know."]
    r = _oai(server, "bob").chat.completions.create(model="kb", messages=history)
    assert r.model_extra["kb"]["rewrite"]["how"] == "fallback"
    assert r.model_extra["kb"]["question"].startswith("How many days of annual leave do full-time")


def test_kb_ask_stream_events(server):
    with (
        _client(server, "bob") as c,
        c.stream("POST", "/v1/ask", json={"question": "annual leave days?", "stream": True}) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [b for b in r.read().decode().split("\n\n") if b.strip()]
    kinds = [e.split("\n")[0] for e in events]
    assert kinds[-1] == "event: answer" and "event: sentence" in kinds[:-1]
    answer = json.loads(events[-1].split("data: ", 1)[1])
    sentences = [json.loads(e.split("data: ", 1)[1])["text"] for e in events[:-1]]
    assert " ".join(sentences) == answer["answer"]


class _HeldLLM(QuotingLLM):
    """Writes one sentence of the leave document and the start of a second, then holds until the
    client has received the first sentence (or gives up after a while): the stream must deliver
    a verified sentence while the model is still writing."""

    def __init__(self) -> None:
        super().__init__()
        self.seen_by_client = threading.Event()
        self.held_until_seen: bool | None = None

    def chat(self, messages, *, max_tokens: int, temperature: float = 0.0, on_token=None, stop=None) -> str:
        if messages[-1]["content"].rstrip().endswith("Standalone question:"):
            return super().chat(messages, max_tokens=max_tokens, on_token=on_token)
        first, begun, rest = (
            "Full-time employees receive 28 days of annual leave per year.",
            " The leave",
            " is yearly.",
        )
        on_token(first)
        on_token(begun)
        self.held_until_seen = self.seen_by_client.wait(10)
        on_token(rest)
        return first + begun + rest


def test_a_verified_sentence_streams_while_the_model_still_writes(kb_settings):
    llm = _HeldLLM()
    service = Service(kb_settings, embedder=FakeEmbedder(), llm=llm)
    question = {"question": "How many days of annual leave do full-time employees get?", "stream": True}
    with ThreadedServer(service) as srv, _client(srv) as c, c.stream("POST", "/v1/ask", json=question) as r:
        events = []
        for line in r.iter_lines():
            if line.startswith("event: "):
                events.append(line[len("event: ") :])
                if events[-1] == "sentence":
                    llm.seen_by_client.set()
    service.close()
    assert events[0] == "sentence" and events[-1] == "answer"
    assert llm.held_until_seen is True  # the sentence arrived before the model had finished


QUESTIONS = [
    "What is the merger codename?",
    "Bluebird",
    "When does the merger close?",
    "Tell me everything about the leave plan and the merger",
    "codename",
]


def test_a_secret_of_another_group_never_reaches_a_token_without_it(server, llm):
    """bob (group staff) never receives the finance document: not by search, ask, the OpenAI
    endpoint (plain and streamed), a chat follow-up, a summary, nor through the model's prompt."""
    seen = []
    with _client(server, "bob") as c:
        for q in QUESTIONS:
            for mode in ("hybrid", "dense", "keyword"):
                seen.append(c.post("/v1/search", json={"query": q, "k": 10, "mode": mode}).text)
            seen.append(c.post("/v1/ask", json={"question": q}).text)
            seen.append(c.post("/v1/ask", json={"question": q, "extractive": True}).text)
            seen.append(c.post("/v1/ask", json={"question": q, "stream": True}).text)
            msgs = [{"role": "user", "content": q}]
            seen.append(c.post("/v1/chat/completions", json={"model": "kb", "messages": msgs}).text)
            seen.append(c.post("/v1/chat/completions", json={"model": "kb", "messages": msgs, "stream": True}).text)
            follow = [*msgs, {"role": "assistant", "content": "I don't know."}, {"role": "user", "content": "and it?"}]
            seen.append(c.post("/v1/chat/completions", json={"messages": follow}).text)
        r = c.post("/v1/summarize", json={"path": str(server.service.folder.parent / "docs")})
        assert r.status_code == 200, r.text
        seen.append(r.text)
        assert {f["path"].rsplit("/", 1)[-1] for f in r.json()["files"]} == {"leave.md", "parttime.md"}
        hidden = c.post("/v1/summarize", json={"path": str(server.service.folder.parent / "docs" / "finance")})
        assert hidden.status_code == 404 and "not in the knowledge base" in hidden.text
        seen.append(c.get("/v1/status").text)
    prompts = json.dumps(llm.prompts)
    assert not [(leak, text) for text in seen for leak in LEAKS if leak in text]
    assert not [leak for leak in LEAKS if leak in prompts] and "merger.md" not in prompts
    # The same questions do reach it for a token of group finance, so the test can fail.
    with _client(server, "alice") as c:
        assert SECRET in c.post("/v1/search", json={"query": "merger codename"}).text
        assert SECRET in c.post("/v1/ask", json={"question": "What is the merger codename?"}).text
    with _client(server, "root") as c:
        assert SECRET in c.post("/v1/search", json={"query": "merger codename"}).text


def test_concurrent_searches_of_two_groups_match_sequential_ones_and_never_mix(kb_settings, llm):
    """Searches sent at once by alice (finance) and bob (staff), whose query vectors are embedded
    in shared batches and remembered across them, return exactly what each gets alone."""
    held = _HeldEmbedder()
    # One embedding worker, whose first batch waits until more queries are queued: batches of
    # several queries form whatever the machine's load.
    service = Service(dataclasses.replace(kb_settings, threads=1), embedder=held, llm=llm)
    held.shared = service.embedder
    with ThreadedServer(service) as server:
        server.service = service
        _searches_match(server)
    service.close()


class _HeldEmbedder(FakeEmbedder):
    """The fake embedder, whose first call after `hold` is set waits (up to 10 s) until at least
    two more queries are queued behind it."""

    def __init__(self) -> None:
        super().__init__(delay=0.02)
        self.shared: Any = None
        self.hold = False

    def embed(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        if self.hold and self.shared is not None:
            self.hold = False
            deadline = time.monotonic() + 10
            while len(self.shared._queue) < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
        return super().embed(texts, batch_size=batch_size)


def _searches_match(server: ThreadedServer) -> None:

    queries = [*QUESTIONS, "merger codename Bluebird", "annual leave days", "part-time staff hours"]
    jobs = [(who, q, mode) for who in ("alice", "bob") for q in queries for mode in ("hybrid", "dense", "keyword")]

    def search(job: tuple[str, str, str]) -> dict:
        who, q, mode = job
        with _client(server, who) as c:
            r = c.post("/v1/search", json={"query": q, "k": 10, "mode": mode})
            assert r.status_code == 200, r.text
            return r.json()

    alone = [search(job) for job in jobs]
    server.service.embedder._cache.clear()  # embed again, this time in concurrent batches
    inner = server.service.embedder.inner
    if isinstance(inner, _HeldEmbedder):
        inner.hold = True
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(search, jobs * 2))
    assert together == alone * 2
    assert max(server.service.embedder.batches) > 1, "some queries were embedded together"
    bob = [json.dumps(r) for (who, _, _), r in zip(jobs, alone, strict=True) if who == "bob"]
    alice = [json.dumps(r) for (who, _, _), r in zip(jobs, alone, strict=True) if who == "alice"]
    assert not [leak for text in bob for leak in LEAKS if leak in text]
    assert any(SECRET in text for text in alice), "the secret is there to leak"


def test_a_token_that_sees_no_matching_document_gets_a_refusal(kb_settings, llm, tmp_path):
    s = kb_settings.with_overrides(min_relevance=0.2)
    service = Service(s, embedder=FakeEmbedder(), llm=llm)
    with ThreadedServer(service) as srv, _client(srv, "bob") as c:
        answer = c.post("/v1/ask", json={"question": "merger codename Bluebird"}).json()
        assert answer["refused"] and not [leak for leak in LEAKS if leak in json.dumps(answer)]
    service.close()


def test_a_full_queue_answers_429_and_search_runs_meanwhile(kb_settings):
    llm = QuotingLLM(delay=0.3)
    service = Service(kb_settings.with_overrides(serve_queue=0), embedder=FakeEmbedder(), llm=llm)
    with ThreadedServer(service) as srv:
        results = {}

        def slow():
            with _client(srv) as c:
                results["slow"] = c.post("/v1/ask", json={"question": "How many days of annual leave?"})

        t = threading.Thread(target=slow)
        t.start()
        deadline = time.monotonic() + 10
        while service.queue.stats().running == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        with _client(srv) as c:
            t0 = time.monotonic()
            r = c.post("/v1/ask", json={"question": "Part-time leave?"})
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
            assert r.json()["error"]["code"] == "queue_full"
            with pytest.raises(openai.RateLimitError):
                _oai(srv).chat.completions.create(model="kb", messages=[{"role": "user", "content": "Leave?"}])
            assert time.monotonic() - t0 < 2  # refused at once, never a hang
            found = c.post("/v1/search", json={"query": "annual leave"})
            assert found.status_code == 200 and service.queue.stats().running == 1  # while it generates
            assert c.post("/v1/ask", json={"question": "Leave?", "extractive": True}).status_code == 200
        t.join(30)
        assert results["slow"].status_code == 200
    service.close()


def test_a_client_that_disconnects_mid_stream_frees_its_place(kb_settings):
    llm = QuotingLLM(delay=0.5)
    service = Service(kb_settings.with_overrides(serve_queue=0), embedder=FakeEmbedder(), llm=llm)
    with ThreadedServer(service) as srv:
        body = {"messages": [{"role": "user", "content": "How many days of annual leave?"}], "stream": True}
        with _client(srv) as c, c.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            next(r.iter_bytes())  # the first chunk; then the client goes away
        t0 = time.monotonic()
        while service.queue.stats().cancelled == 0 and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        assert service.queue.stats().cancelled == 1
        with _client(srv) as c:
            r = c.post("/v1/ask", json={"question": "Part-time leave?", "extractive": False})
            assert r.status_code == 200
        assert time.monotonic() - t0 < 8  # the abandoned answer (about 6 s of tokens) was stopped
    service.close()


def test_an_ingest_in_another_process_is_seen_without_a_restart(server, tmp_path, kb_settings):
    new = _write(tmp_path / "more" / "parking.md", "# Parking\n\nThe car park opens at 6 am on weekdays.\n")
    with _client(server, "bob") as c:
        before = c.post("/v1/search", json={"query": "car park opens"}).json()["hits"]
        assert all("car park" not in h["text"] for h in before)
        cmd = [sys.executable, "-m", "cli", "ingest", str(new.parent), "--kb", str(kb_settings.home), "-q"]
        cmd += ["--embed-model", "fake:dim=64", "--chunk-tokens", "40", "--chunk-overlap", "8"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        for mode in ("keyword", "dense"):
            deadline = time.monotonic() + 15
            while True:
                hits = c.post("/v1/search", json={"query": "car park opens", "mode": mode}).json()["hits"]
                if hits and "car park" in hits[0]["text"]:
                    break
                assert time.monotonic() < deadline, mode
                time.sleep(0.2)
        assert c.get("/v1/status").json()["generation"] > 0


def test_binding_beyond_loopback_requires_tokens():
    from kb.errors import ConfigError

    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        check_binding(host, ())
    for host in ("0.0.0.0", "192.0.2.10", "::"):
        with pytest.raises(ConfigError, match="tokens"):
            check_binding(host, ())
        check_binding(host, ("a token",))


def test_without_tokens_a_loopback_server_is_open(settings, tmp_path):
    _write(tmp_path / "d" / "a.md", "# A\n\nThe office opens at 8 am.\n")
    with KnowledgeBase(settings, embedder=FakeEmbedder(), write=True) as kb:
        ingest(kb, [tmp_path / "d"], isolate=False)
    service = Service(settings, embedder=FakeEmbedder(), llm=QuotingLLM())
    with ThreadedServer(service) as srv:
        assert httpx.get(srv.url + "/health").json()["auth"] is False
        r = httpx.post(srv.url + "/v1/search", json={"query": "office opens"})
        assert r.status_code == 200 and "8 am" in r.json()["hits"][0]["text"]
        page = httpx.get(srv.url + "/")
        assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
        assert httpx.get(srv.url + "/static/app.js").status_code == 200
        assert "cdn" not in page.text.lower() and "http" not in httpx.get(srv.url + "/static/app.js").text
        # DNS rebinding: a request addressed to another host name is refused by an open server.
        r = httpx.post(srv.url + "/v1/search", json={"query": "office"}, headers={"Host": "attacker.example"})
        assert r.status_code == 400 and "8 am" not in r.text
    service.close()


def test_cli_ask_search_and_chat_use_a_running_server(server, llm, kb_settings, monkeypatch):
    from typer.testing import CliRunner

    from cli.app import app
    from kb.server.run import announced

    runner = CliRunner()
    home = ["--kb", str(kb_settings.home)]
    monkeypatch.setenv("KB_EMBED_MODEL", "fake:dim=64")
    monkeypatch.setenv("KB_CHUNK_TOKENS", "40")
    monkeypatch.setenv("KB_CHUNK_OVERLAP", "8")
    res = runner.invoke(
        app, ["ask", "How many days of annual leave?", "--server", server.url, "--token", "kb-bob", *home]
    )
    assert res.exit_code == 0, res.output
    assert "28 days" in res.output and "Sources:" in res.output and "[1]" in res.output
    asked = len(llm.prompts)
    assert asked == 1
    res = runner.invoke(
        app, ["search", "merger codename", "--server", server.url, "--json", *home], env={"KB_TOKEN": "kb-bob"}
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["hits"] and not [leak for leak in LEAKS if leak in res.output]
    # Found automatically: the server announces itself in the knowledge-base folder.
    with announced(server.service, "127.0.0.1", server.port):
        res = runner.invoke(app, ["ask", "Part-time annual leave?", "--json", *home], env={"KB_TOKEN": "kb-bob"})
        assert res.exit_code == 0, res.output
        assert len(llm.prompts) == asked + 1 and json.loads(res.output)["sources"]
        # Without a token the announced server cannot be used: the command works in-process instead.
        res = runner.invoke(app, ["search", "annual leave", "--json", *home])
        assert res.exit_code == 0 and json.loads(res.output)["hits"]
    llm.rewrites = ["How many days of annual leave do part-time staff get?"]
    talk = "How many days of annual leave do full-time employees get?\nand for part-time staff?\nexit\n"
    res = runner.invoke(app, ["chat", "--server", server.url, "--token", "kb-bob", *home], input=talk)
    assert res.exit_code == 0, res.output
    assert "(searching for: How many days of annual leave do part-time staff get?)" in res.output
    assert "28 days" in res.output and "proportion" in res.output
    res = runner.invoke(app, ["ask", "leave?", "--server", "http://127.0.0.1:9", *home])
    assert "cannot reach the kb server" in str(res.exception)
    res = runner.invoke(app, ["ask", "leave?", "--server", server.url, *home])
    assert "401" in str(res.exception)


def test_cli_chat_in_process_rewrites_and_answers(kb_settings, monkeypatch):
    from typer.testing import CliRunner

    from cli.app import app

    monkeypatch.setenv("KB_EMBED_MODEL", "fake:dim=64")
    monkeypatch.setenv("KB_MIN_RELEVANCE", "0")
    monkeypatch.setenv("KB_MIN_ANSWERABILITY", "0")
    monkeypatch.setenv("KB_CHUNK_TOKENS", "40")
    monkeypatch.setenv("KB_CHUNK_OVERLAP", "8")
    talk = "How many days of annual leave do full-time employees get?\nand for part-time staff?\n"
    res = CliRunner().invoke(
        app,
        ["chat", "--extractive", "--server", "off", "--kb", str(kb_settings.home)],
        input=talk,
    )
    assert res.exit_code == 0, res.output
    assert (
        "(searching for: How many days of annual leave do full-time employees get? and for part-time staff?)"
        in res.output
    )
    assert res.output.count("Sources:") == 2


def test_a_rebuilt_knowledge_base_is_followed(server, kb_settings, tmp_path):
    from kb.rebuild import rebuild

    with _client(server, "bob") as c:
        assert c.post("/v1/search", json={"query": "annual leave"}).json()["hits"]
        assert rebuild(kb_settings, embedder=FakeEmbedder(), isolate=False).swapped
        # The server must now read the new folder: a document added to it after the swap is found.
        new = _write(tmp_path / "more" / "parking.md", "# Parking\n\nThe car park opens at 6 am on weekdays.\n")
        with KnowledgeBase(kb_settings, embedder=FakeEmbedder(), write=True) as kb:
            ingest(kb, [new.parent], isolate=False)
        hits = c.post("/v1/search", json={"query": "car park opens", "mode": "keyword"}).json()["hits"]
        assert hits and "car park" in hits[0]["text"]
        hits = c.post("/v1/search", json={"query": "merger codename", "k": 10}).json()["hits"]
        assert hits and not [leak for h in hits for leak in LEAKS if leak in h["text"]]
        assert c.get("/v1/status").json()["documents"] == 3
