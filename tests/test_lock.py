"""One writer at a time, between real processes; readers keep working while a writer runs."""

from __future__ import annotations

import json

from kb.check import check
from kb.config import Settings
from kb.embeddings import HashingEmbedder
from kb.indexer import ingest
from kb.knowledge import KnowledgeBase, writer_active
from tests.kbproc import kb_env, run_kb, sigkill, start_kb, wait_for

TOPICS = ["leave", "travel", "uptime", "passwords", "expenses", "onboarding", "laptops", "parking"]


def _docs(folder, n):
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        path = folder / f"{i:02d}-{topic}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {topic} {i}\n\n" + f"The {topic} policy, part {i}, says this and that. " * 40)
    return folder


def test_second_writer_refused_while_readers_keep_working(tmp_path):
    env = kb_env(tmp_path, delay=0.05)
    settings = Settings.load(environ={**env, "KB_EMBED_MODEL": "fake:"})
    home = settings.home
    docs = _docs(tmp_path / "docs", 24)
    first = sorted(docs.iterdir())[:8]
    with KnowledgeBase(settings, embedder=HashingEmbedder(), write=True) as kb:
        ingest(kb, first, isolate=False)

    writer = start_kb(env, "ingest", docs, "--quiet")
    try:
        assert wait_for(lambda: writer_active(home) or writer.poll() is not None, timeout=60)
        assert writer.poll() is None, writer.communicate()
        readers = {
            "search": start_kb(env, "search", "leave policy", "--json"),
            "status": start_kb(env, "status", "--json"),
            "ask": start_kb(env, "ask", "What does the travel policy say?", "--extractive", "--json"),
            "check": start_kb(env, "check", "--json"),
        }
        writers = {
            "ingest": start_kb(env, "ingest", docs),
            "remove": start_kb(env, "remove", first[0]),
            "rebuild": start_kb(env, "rebuild"),
            "repair": start_kb(env, "repair"),
        }
        out = {name: (*p.communicate(timeout=120), p.returncode) for name, p in {**readers, **writers}.items()}
        assert writer.poll() is None, "the writer must still be running, or nothing overlapped"
    finally:
        if writer.poll() is None:
            sigkill(writer)
    for name in writers:
        stdout, stderr, code = out[name]
        assert code == 1, (name, stderr)
        assert stderr.count("\n") == 1 and stderr.startswith("kb: error: "), stderr
        assert "another kb process (pid " in stderr and "is writing" in stderr
    for name in readers:
        stdout, stderr, code = out[name]
        assert code == 0, (name, stderr)
        json.loads(stdout)
    hits = json.loads(out["search"][0])["hits"]
    assert hits and "leave" in hits[0]["text"]
    status = json.loads(out["status"][0])
    assert status["chunks"] == status["keyword_entries"] == status["vectors"] > 0
    assert json.loads(out["check"][0])["ok"], out["check"][0]
    # The killed writer kept what it finished; a new run completes the job.
    done = run_kb(kb_env(tmp_path), "ingest", docs, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["documents"] == 24
    assert check(settings, embedder=HashingEmbedder()).ok


def test_lock_is_released_when_the_writer_dies(tmp_path):
    env = kb_env(tmp_path, delay=0.05)
    settings = Settings.load(environ=env)
    docs = _docs(tmp_path / "docs", 10)
    writer = start_kb(env, "ingest", docs, "--quiet")
    assert wait_for(lambda: writer_active(settings.home) or writer.poll() is not None, timeout=60)
    sigkill(writer)
    assert not writer_active(settings.home)
    result = run_kb(kb_env(tmp_path), "ingest", docs, "--quiet")
    assert result.returncode == 0, result.stderr
