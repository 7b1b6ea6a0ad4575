"""`kb ingest --engine ray` (kb/distributed.py): the merging logic without Ray, then real builds
on a local Ray (`ray.init(num_cpus=2)`, the `ray_cluster` fixture) compared with local builds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kb.distributed import RAY_MISSING, ParseEmbedWorker, RayEngine, WorkerConfig, merge, pack
from kb.indexer import embedding_text, ingest
from kb.isolation import ParsedChunks, ParseJob
from kb.knowledge import KnowledgeBase
from kb.retrieval import Retriever
from tests.conftest import SAMPLES

QUESTIONS = ["How many days of annual leave?", "password rotation policy", "office move date", "licence seats"]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path):
    """The samples plus a few generated files, in one folder."""
    folder = tmp_path / "docs"
    shutil.copytree(SAMPLES, folder / "samples", ignore=shutil.ignore_patterns("source", "questions.jsonl"))
    for i in range(6):
        words = " ".join(f"topic{i} word{j % 17} policy{j % 5}" for j in range(120))
        _write(folder / "generated" / f"note-{i}.md", f"# Note {i}\n\n{words}.\n")
    _write(folder / "generated" / "empty.txt", "")
    return folder


def _settings(settings, name: str, embed_model: str = "fake:"):
    return settings.with_overrides(home=settings.home.parent / name, embed_model=embed_model)


def _snapshot(kb: KnowledgeBase) -> dict:
    """Everything a build stores, keyed by path and chunk ordinal (never by row id)."""
    db = kb.store.db
    docs = sorted((d.path, d.sha256, d.format, d.title, d.n_pages, d.n_chunks) for d in kb.store.documents())
    chunks = sorted(
        db.execute(
            "SELECT d.path, c.ordinal, c.text, c.char_start, c.char_end, c.page_start, c.page_end, c.heading, "
            "c.n_tokens, c.extra FROM chunks c JOIN documents d ON d.id = c.doc_id"
        ).fetchall()
    )
    fts = sorted(
        db.execute(
            "SELECT d.path, c.ordinal, f.title, f.heading, f.body FROM chunks_fts f "
            "JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.doc_id"
        ).fetchall()
    )
    vectors = {
        (path, ordinal): np.frombuffer(blob, dtype=np.float32)
        for path, ordinal, blob in db.execute(
            "SELECT d.path, c.ordinal, c.vector FROM chunks c JOIN documents d ON d.id = c.doc_id"
        )
    }
    counts = kb.store.counts()
    assert counts["chunks"] == counts["keyword_entries"] == kb.vectors.size == len(vectors)
    searches = [
        [(h.chunk.path, h.chunk.ordinal, round(h.score, 5)) for h in Retriever(kb).search(q, k=5)] for q in QUESTIONS
    ]
    return {"docs": docs, "chunks": chunks, "fts": fts, "vectors": vectors, "searches": searches}


def _assert_same(a: dict, b: dict) -> None:
    assert a["docs"] == b["docs"]
    assert a["chunks"] == b["chunks"]
    assert a["fts"] == b["fts"]
    assert a["vectors"].keys() == b["vectors"].keys()
    for key, vec in a["vectors"].items():
        np.testing.assert_allclose(vec, b["vectors"][key], atol=1e-5, err_msg=str(key))
    assert a["searches"] == b["searches"]


def _statuses(report) -> dict[str, tuple[str, str]]:
    return {Path(r.path).name: (r.status, r.reason) for r in report.results}


# --- without Ray -----------------------------------------------------------------------------


def _parsed() -> ParsedChunks:
    return ParsedChunks("text", "t", None, [], ())


def test_merge_yields_every_item_once_in_arrival_order():
    items = ["a", "b", "c"]
    rows = [pack(2, _parsed(), None), pack(0, "bad file", None), pack(2, _parsed(), None), pack(1, _parsed(), None)]
    got = [(item, outcome if isinstance(outcome, str) else "ok") for item, outcome, _ in merge(items, rows)]
    assert got == [("c", "ok"), ("a", "bad file"), ("b", "ok")]


def test_merge_reports_the_items_a_failed_stream_never_answered():
    def rows():
        yield pack(1, _parsed(), np.ones((1, 4), dtype=np.float32))
        raise RuntimeError("actor died\nray.exceptions.ActorDiedError: worker killed")

    got = list(merge(["a", "b", "c"], rows()))
    assert [item for item, _, _ in got] == ["b", "a", "c"]
    np.testing.assert_array_equal(got[0][2], np.ones((1, 4)))
    for _, outcome, vectors in got[1:]:
        assert isinstance(outcome, str) and outcome.startswith("the Ray cluster failed on it (RuntimeError")
        assert vectors is None


def test_merge_reports_items_missing_from_a_finished_stream():
    got = list(merge(["a", "b"], [pack(0, _parsed(), None)]))
    assert got[1][0] == "b" and got[1][1] == "not processed by the Ray cluster"


def test_worker_embeds_what_it_parsed_like_the_driver(tmp_path, settings):
    s = _settings(settings, "w")
    doc = _write(tmp_path / "a.md", "# Title\n\n" + "alpha beta gamma " * 60)
    missing = tmp_path / "gone.md"
    worker = ParseEmbedWorker(WorkerConfig.of(s, "hashing64", threads=1, isolate=False))
    jobs = [(i, ParseJob(str(p), "", "", s.chunk_tokens, s.chunk_overlap)) for i, p in enumerate([doc, missing])]
    (i0, parsed, vecs), (i1, failure, none) = worker.process(jobs)
    assert (i0, i1) == (0, 1) and isinstance(parsed, ParsedChunks) and isinstance(failure, str) and none is None
    texts = [embedding_text(parsed.title, c.heading_path, c.text) for c in parsed.chunks]
    assert len(texts) > 1
    np.testing.assert_array_equal(vecs, worker.embedder.embed(texts))


def test_worker_refuses_another_embedding_model(settings):
    from kb.errors import ModelNotFound

    with pytest.raises(ModelNotFound, match="differs from the driver's"):
        ParseEmbedWorker(WorkerConfig.of(_settings(settings, "w"), "another-model", threads=1, isolate=False))


def test_an_engine_in_process_builds_the_local_knowledge_base(corpus, settings):
    """The indexer's engine hook alone (no Ray): vectors made by the engine are stored as given."""

    def engine(kb, items, make_job):
        worker = ParseEmbedWorker(WorkerConfig.of(kb.settings, kb.embedder.fingerprint, 1, isolate=False))
        for item in reversed(items):  # finishing order is the engine's: the result must not depend on it
            ((_, outcome, vectors),) = worker.process([(0, make_job(item))])
            yield item, outcome, vectors

    with KnowledgeBase(_settings(settings, "local"), write=True) as kb:
        local_report = ingest(kb, [corpus], isolate=False)
        local = _snapshot(kb)
    with KnowledgeBase(_settings(settings, "engine"), write=True) as kb:
        report = ingest(kb, [corpus], isolate=False, engine=engine)
        _assert_same(local, _snapshot(kb))
    assert _statuses(report) == _statuses(local_report)


def _kb_without_ray(*args: str) -> subprocess.CompletedProcess:
    """The real `kb` entry point in a subprocess where `import ray` fails."""
    code = "import sys; sys.modules['ray'] = None; from cli.app import main; sys.argv[0] = 'kb'; main()"
    env = {**os.environ, "KB_EMBED_MODEL": "fake:"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("command", ["ingest", "summarize"])
def test_engine_ray_without_ray_is_one_line(corpus, command):
    out = _kb_without_ray(command, str(corpus), "--engine", "ray")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"kb: error: {RAY_MISSING}"]


def test_unknown_engine_is_refused(corpus):
    out = _kb_without_ray("ingest", str(corpus), "--engine", "spark")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == ["kb: error: --engine must be one of local, ray (got 'spark')"]


# --- on a local Ray ----------------------------------------------------------------------------


def test_ray_build_and_sync_equal_local(ray_cluster, corpus, settings):
    local_s, ray_s = _settings(settings, "local"), _settings(settings, "ray")
    engine = RayEngine(workers=2)

    def both() -> tuple[dict, dict]:
        with KnowledgeBase(local_s, write=True) as kb:
            local_report = ingest(kb, [corpus])
            local = _snapshot(kb)
        with KnowledgeBase(ray_s, write=True) as kb:
            ray_report = ingest(kb, [corpus], engine=engine)
            remote = _snapshot(kb)
        assert _statuses(ray_report) == _statuses(local_report)
        _assert_same(local, remote)
        return _statuses(ray_report), remote

    first, built = both()
    assert first["employee-handbook.pdf"][0] == "added" and first["empty.txt"][0] == "failed"
    assert len(built["docs"]) == 15  # the nine samples (one a scanned page, read by OCR) and six notes

    gen = corpus / "generated"
    _write(gen / "note-0.md", "# Note 0\n\nrewritten text about holidays and leave " * 20)
    (gen / "note-1.md").rename(gen / "moved-note-1.md")
    (gen / "note-2.md").unlink()
    second, _ = both()
    assert second["note-0.md"][0] == "updated"
    assert second["moved-note-1.md"][0] == "moved" and second["note-2.md"][0] == "removed"


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def _ray_workers() -> list[int]:
    """Process ids of this test's Ray actors running ParseEmbedWorker: their title names it, and
    their raylet is a child of this process (never another run's workers on the same machine)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            mine = _parent(_parent(int(entry.name))) == os.getpid()
            if mine and title.startswith(b"ray::") and b"ParseEmbedWorker" in title:
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the Ray worker in /proc")
def test_a_killed_ray_worker_loses_nothing(ray_cluster, corpus, settings):
    """SIGKILL a worker while it embeds: its batch is retried on a restarted worker (or reported
    failed), every file stored before stays stored, and a re-run completes the job."""
    s = _settings(settings, "killed", embed_model="fake:delay=0.02")
    killed: list[int] = []

    def progress(done, total, result):
        if result is not None and result.status == "added" and not killed:
            victims = _ray_workers()
            if victims:
                os.kill(victims[0], signal.SIGKILL)
                killed.append(victims[0])

    stored_before_kill: list[str] = []
    with KnowledgeBase(s, write=True) as kb:
        report = ingest(kb, [corpus], progress=progress, engine=RayEngine(workers=2, files_per_batch=2))
        assert killed, "no Ray worker was found to kill"
        stored_before_kill = [d.path for d in kb.store.documents()]
    statuses = _statuses(report)
    for name, (status, reason) in statuses.items():
        assert status in ("added", "failed"), name
        if status == "failed" and name != "empty.txt":
            assert "Ray" in reason, (name, reason)
    with KnowledgeBase(s, write=True) as kb:
        again = ingest(kb, [corpus], engine=RayEngine(workers=2))
        after = {d.path for d in kb.store.documents()}
        kb_snapshot = _snapshot(kb)
    assert set(stored_before_kill) <= after
    assert {name for name, (st, _) in _statuses(again).items() if st == "failed"} == {"empty.txt"}
    with KnowledgeBase(_settings(settings, "reference", embed_model="fake:delay=0.02"), write=True) as kb:
        ingest(kb, [corpus])
        _assert_same(_snapshot(kb), kb_snapshot)


def test_kb_ingest_engine_ray_cli_joins_a_running_cluster(ray_cluster, corpus, settings, monkeypatch):
    """The real command in a subprocess joins the test's cluster by its address."""
    import json

    address = ray_cluster.get_runtime_context().gcs_address
    env = {**os.environ, "KB_EMBED_MODEL": "fake:", "KB_HOME": str(settings.home.parent / "cli")}
    args = ["ingest", str(corpus / "generated"), "--engine", "ray", "--ray-address", str(address), "--ray-workers", "1"]
    out = subprocess.run(
        [sys.executable, "-m", "cli", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr  # empty.txt has no text
    data = json.loads(out.stdout)
    assert data["summary"]["added"] == 6 and data["summary"]["failed"] == 1
    assert data["totals"]["documents"] == 6


@pytest.mark.models
def test_summarize_on_ray_fills_the_cache_a_local_run_reuses(ray_cluster, tmp_path, settings):
    """The real LLM on two Ray workers: the same summaries as a local run, stored in the same cache,
    so a local run afterwards summarises nothing; the overview is made on the driver."""
    from kb.distributed import RaySummaryEngine, llm_model_id
    from kb.embeddings import load_embedder
    from kb.llm import load_llm
    from kb.summarize import Summarizer, SummaryCache, SummaryOptions, summarize_paths

    folder = tmp_path / "memos"
    _write(
        folder / "leave.md",
        "# Leave\n\nFull-time employees get 25 days of annual leave. Unused days expire in March.\n",
    )
    _write(
        folder / "travel.md", "# Travel\n\nTrain travel is booked in second class. Flights need a manager's approval.\n"
    )
    _write(folder / "blank.txt", "")
    s = _settings(settings, "sum").with_overrides(threads=1)

    def summarizer() -> Summarizer:
        embedder = load_embedder(s.embed_model)
        return Summarizer(lambda: load_llm(s), llm_model_id(s), embedder, s, SummaryOptions(words=40))

    def texts(report) -> dict[str, tuple[str, str]]:
        return {Path(f.path).name: (f.status, f.summary.text() if f.summary else f.reason) for f in report.files}

    cache = SummaryCache(tmp_path / "cache")
    remote = summarize_paths([folder], summarizer(), cache, engine=RaySummaryEngine(workers=2))
    local = summarize_paths([folder], summarizer(), None)  # no cache: summarised here again
    reused = summarize_paths([folder], summarizer(), cache)
    assert texts(remote) == texts(local)
    assert [v[0] for v in texts(remote).values()].count("summarised") == 2
    assert texts(remote)["blank.txt"][0] == "failed"
    assert {k: v[0] for k, v in texts(reused).items() if k != "blank.txt"} == {
        "leave.md": "cached",
        "travel.md": "cached",
    }
    assert remote.overview is not None and local.overview is not None
    assert remote.overview.text() == local.overview.text()
