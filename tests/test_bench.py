"""The benchmark runner: every module loads, --only checks section names, and a worker runs in a
fresh process through bench/run.py (a small FAISS scale run, real faiss)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

RUN = [sys.executable, str(REPO / "bench" / "run.py")]


def test_help_lists_every_section_and_each_modules_options():
    r = subprocess.run([*RUN, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for name in ("embed", "quality", "ingest", "warm", "cold", "llm", "weights", "scale"):
        assert name in r.stdout
    for option in ("--backends", "--copies", "--repeat", "--prompt-tokens", "--vectors", "--queries", "--llm-models"):
        assert option in r.stdout


def test_an_unknown_section_is_refused_with_its_name():
    r = subprocess.run([*RUN, "--only", "cold,nope"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "unknown section nope" in r.stderr


def test_a_worker_runs_in_its_own_process_and_returns_figures():
    from bench.common import worker

    r = worker("scale.scale", {"n": 3000, "dim": 16, "clusters": 20, "queries": 20, "nprobes": [4], "threads": 1})
    assert r["n"] == 3000 and r["rss_mb"] > 0
    assert 0.0 < r["ivf"]["by_nprobe"]["4"]["recall@10"] <= 1.0
    assert r["flat"]["bytes_per_vector"] >= 16 * 4


def test_a_new_benchmark_module_is_found_by_its_file_alone(tmp_path, monkeypatch):
    from bench.run import SECTIONS, modules

    pkg = tmp_path / "mybench"
    pkg.mkdir()
    for name in SECTIONS:
        (pkg / f"{name}.py").write_text(f"NAME = {name!r}\ndef run_section(o, tmp, res): pass\n")
    (pkg / "ingest_pdf.py").write_text("NAME = 'ingest_pdf'\ndef run_section(o, tmp, res): pass\n")
    (pkg / "helpers.py").write_text("X = 1\n")  # no run_section: not a benchmark
    monkeypatch.syspath_prepend(str(tmp_path))
    assert list(modules(pkg, "mybench")) == [*SECTIONS, "ingest_pdf"]


def test_serve_load_reports_a_search_only_run_without_ask_or_stream_rows():
    from bench.serve_load import report

    phase = {
        "clients": 32,
        "requests": 800,
        "errors": 0,
        "p50_ms": 40.0,
        "p95_ms": 90.0,
        "per_second": 400.0,
        "server_cpu_ms_per_request": 2.0,
    }
    run = {"date": "d", "loadavg": ["0.1"], "server_ready_s": 1.0, "search_distinct": phase, "search": phase}
    lines = report({"serve_load": {**run, "search_only": True}})
    assert any("search p95 (32 clients, distinct)" in line and "90.0 ms" in line for line in lines)
    assert not any(line.startswith("ask") or "stream" in line for line in lines)
    ask = {"clients": 8, "answered": 1, "refused_429": 0, "errors": 0, "p50_s": 1, "p95_s": 1}
    ask |= {"queue_wait_p50_s": 0, "queue_wait_p95_s": 0}
    stream = {"first_sentence_p50_s": 1.0, "complete_p50_s": 1.0}
    full = report({"serve_load": {**run, "ask": ask, "stream": stream}})
    assert any(line.startswith("ask errors") for line in full) and any("stream" in line for line in full)


def test_serve_load_raw_client_reads_the_same_answers_as_httpx(settings, tmp_path):
    """The lean client of `--raw-client` against a real server: same status and JSON as httpx."""
    import asyncio

    import httpx

    from bench.serve_load import RawClient, search_phase
    from kb.indexer import ingest
    from kb.knowledge import KnowledgeBase
    from kb.server.run import ThreadedServer
    from kb.server.service import Service
    from tests.fakes import FakeEmbedder

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nEmployees receive 28 days of annual leave.\n")
    with KnowledgeBase(settings, embedder=FakeEmbedder(), write=True) as kb:
        ingest(kb, [docs], isolate=False)
    service = Service(settings, embedder=FakeEmbedder(), load_llm=False)

    async def raw(url: str) -> list[tuple[int, bytes]]:
        c = RawClient(url)
        out = [await c.post("/v1/search", {"query": "annual leave", "k": 3}) for _ in range(3)]
        out.append(await c.post("/v1/search", {"query": "", "k": 3}))
        await c.close()
        return out

    with ThreadedServer(service) as srv:
        got = asyncio.run(raw(srv.url))
        want = httpx.post(srv.url + "/v1/search", json={"query": "annual leave", "k": 3})
        assert [s for s, _ in got] == [200, 200, 200, 400]
        assert all(json.loads(b) == want.json() for _, b in got[:3]) and want.json()["hits"]
        phase = asyncio.run(search_phase(srv.url, 4, 3, 30, distinct=True, raw=True))
        assert phase["requests"] == 12 and phase["errors"] == 0 and phase["client"] == "raw"
    service.close()
