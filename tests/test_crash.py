"""Crash safety: SIGKILL a real `kb ingest` / `kb rebuild` anywhere; parsers that hang, crash or eat memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from kb.check import check
from kb.config import Settings
from kb.embeddings import HashingEmbedder
from kb.indexer import ingest
from kb.isolation import ParsedChunks, ParseJob, ParsePool, ParseWorker, parse_and_chunk
from kb.knowledge import KnowledgeBase
from kb.rebuild import leftover_folders
from kb.retrieval import Retriever
from tests.kbproc import REPO, alive, children, kb_env, run_kb, sigkill, start_kb, stored_documents, wait_for

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and RLIMIT_AS")

# --- the parse worker ----------------------------------------------------------------------------


def _hang(job: ParseJob, cache: dict) -> ParsedChunks:
    while True:
        time.sleep(0.05)


def _spin(job: ParseJob, cache: dict) -> ParsedChunks:
    while True:  # a parser stuck in a loop: it burns CPU, so its budget runs at the pace its CPU share allows
        sum(range(10_000))


def _eat_memory(job: ParseJob, cache: dict) -> ParsedChunks:
    blocks = []
    while True:
        blocks.append(bytearray(64 << 20))


def _abort(job: ParseJob, cache: dict) -> ParsedChunks:
    os.abort()


def _by_name(job: ParseJob, cache: dict) -> ParsedChunks:
    """Misbehave according to the file name; parse normally otherwise."""
    name = os.path.basename(job.path)
    for prefix, misbehave in (("hang", _hang), ("spin", _spin), ("oom", _eat_memory), ("abort", _abort)):
        if name.startswith(prefix):
            return misbehave(job, cache)
    return parse_and_chunk(job, cache)


def _job(path) -> ParseJob:
    return ParseJob(str(path), "", "", 40, 8)


@linux_only
def test_worker_survives_hang_crash_and_memory_blowup(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("Plain words for a plain file. " * 20)
    worker = ParseWorker(timeout=1.5, memory_mb=512, parse=_by_name)
    try:
        results = {}
        for name in ("good.txt", "hang.txt", "good.txt", "oom.txt", "good.txt", "abort.txt", "good.txt"):
            worker.submit(_job(tmp_path / name if name != "good.txt" else good))
            results.setdefault(name, []).append(worker.result())
    finally:
        worker.close()
    assert all(isinstance(r, ParsedChunks) and r.chunks for r in results["good.txt"])
    assert results["hang.txt"] == ["timed out after 1.5 s (raise parse_timeout)"]
    assert results["oom.txt"][0].startswith("out of memory while parsing (over parse_memory_mb=512")
    assert results["abort.txt"] == ["parser crashed (SIGABRT)"]


def _slow_pages(job: ParseJob, cache: dict) -> ParsedChunks:
    """Five "pages" of 0.4 s each, reported as they finish: 2 s in all."""
    from kb import isolation

    for _ in range(5):
        time.sleep(0.4)
        isolation._page_done()
    return parse_and_chunk(job, cache)


def _pdfium_aborts(job: ParseJob, cache: dict) -> ParsedChunks:
    if job.pdf_engine == "auto":
        os.abort()
    return parse_and_chunk(job, cache)


@linux_only
def test_parallel_workers_carry_on_when_one_crashes_or_times_out(tmp_path):
    for name in ("0", "1", "2", "a", "b", "c", "d", "e", "f"):
        (tmp_path / f"good-{name}.txt").write_text(f"Plain words of file {name}. " * 20)
    # One file per worker first, so all three have started before the endless loop; the loop
    # burns CPU (as a stuck parser does), so on a busy machine its budget runs no faster than the
    # other workers' parsing.
    names = ["good-0.txt", "good-1.txt", "good-2.txt", "spin.txt", "good-a.txt", "abort.txt", "good-b.txt"]
    names += ["good-c.txt", "oom.txt", "good-d.txt", "good-e.txt", "good-f.txt"]
    seen = []
    started = time.monotonic()
    with ParsePool(3, timeout=5.0, memory_mb=512, parse=_by_name) as pool:
        for name, result in pool.map(names, lambda n: _job(tmp_path / n)):
            seen.append((name, result, time.monotonic() - started))
    got = {name: result for name, result, _ in seen}
    assert sorted(got) == sorted(names)
    assert got["spin.txt"] == "timed out after 5 s (raise parse_timeout)"
    assert got["abort.txt"] == "parser crashed (SIGABRT)"
    assert got["oom.txt"].startswith("out of memory while parsing (over parse_memory_mb=512")
    good = [(name, at) for name, result, at in seen if name.startswith("good")]
    assert all(isinstance(got[name], ParsedChunks) and got[name].chunks for name, _ in good)
    # The other workers went on while the first one hung: the files queued right behind it were
    # parsed (and handed back) before it timed out.
    hang_at = next(at for name, _, at in seen if name == "spin.txt")
    assert all(at < hang_at for name, at in good if name in ("good-a.txt", "good-b.txt")), seen


@linux_only
def test_a_long_pdf_is_timed_per_page_not_as_a_whole(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("Words of a long file. " * 20)
    worker = ParseWorker(timeout=1.0, parse=_slow_pages)
    try:
        worker.submit(_job(path))
        result = worker.result()
    finally:
        worker.close()
    assert isinstance(result, ParsedChunks), result  # 2 s in all, never 1 s without a finished page


def test_the_budget_leaves_out_time_spent_waiting_for_a_core(monkeypatch):
    from kb import isolation

    queued = iter([10.0, 14.5])  # at the start, then now: 4.5 s spent runnable, waiting for a core
    monkeypatch.setattr(isolation, "_waited_for_cpu", lambda pid: next(queued))
    clock = iter([100.0, 105.0])
    monkeypatch.setattr(isolation.time, "monotonic", lambda: next(clock))
    assert isolation._Budget(pid=1234).used() == pytest.approx(0.5)


@linux_only
def test_a_pdf_that_crashes_pdfium_is_read_again_with_pypdf(tmp_path):
    from tests.ingest_fixtures import make_pdf

    path = tmp_path / "odd.pdf"
    path.write_bytes(make_pdf([["Text that pypdf reads."]]))
    with ParsePool(1, timeout=30.0, parse=_pdfium_aborts) as pool:
        [(_, result)] = list(pool.map([path], lambda p: ParseJob(str(p), "", "", 40, 8, pdf_engine="auto")))
    assert isinstance(result, ParsedChunks) and result.chunks[0].text == "Text that pypdf reads."
    assert result.warnings == ("PDFium crashed on it; read with pypdf",)


_ORPHAN_SCRIPT = """
import sys, time
from kb.isolation import ParseJob, ParseWorker
from tests.test_crash import _hang
w = ParseWorker(timeout=60, parse=_hang)
w.submit(ParseJob("x.txt", "", "", 40, 8))
print(w._proc.pid, flush=True)
time.sleep(60)
"""


@linux_only
def test_worker_dies_with_a_killed_parent():
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    worker_pid = int(parent.stdout.readline())
    assert alive(worker_pid)
    sigkill(parent)
    assert wait_for(lambda: not alive(worker_pid), timeout=10), "the parse worker outlived its parent"


# --- killing kb ingest ---------------------------------------------------------------------------

TOPICS = ["leave", "travel", "uptime", "passwords", "expenses", "onboarding", "laptops", "parking", "badges"]


def _write_docs(folder, n=24):
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i:02d}-{topic}.md").write_text(
            f"# {topic} {i}\n\n" + " ".join(f"The {topic} rule {j} of part {i} applies." for j in range(30)) + "\n"
        )
    (folder / "big.txt").write_text(" ".join(f"Clause {j}: the big contract binds party {j % 7}." for j in range(500)))


def _settings(env) -> Settings:
    return Settings.load(environ=env)


def _snapshot(settings) -> dict[str, tuple]:
    """{path: (sha, chunk texts, vectors)} of a knowledge base, read-only."""
    with KnowledgeBase(settings, embedder=HashingEmbedder()) as kb:
        out = {}
        for d in kb.store.documents():
            chunks = kb.store.document_chunks(d.id)
            vecs = kb.store.vectors([c.id for c in chunks], kb.manifest.dim)
            out[d.path] = (d.sha256, tuple(c.text for c in chunks), vecs.round(5).tobytes())
        return out


def _clean_build(settings, docs) -> dict[str, tuple]:
    with KnowledgeBase(settings, embedder=HashingEmbedder(), write=True) as kb:
        ingest(kb, [docs], isolate=False)
    return _snapshot(settings)


def _kill_ingest(env, docs, when: str, wait: float) -> tuple[subprocess.Popen, list[int]]:
    """Start `kb ingest` and SIGKILL it `wait` s after `when`: "start", "manifest" (the KB folder exists)
    or "commit" (the next document is stored)."""
    home = _settings(env).home
    stored = stored_documents(home)
    proc = start_kb(env, "ingest", docs, "--quiet")
    if when == "manifest":
        wait_for(lambda: (home / "manifest.json").exists() or proc.poll() is not None, timeout=60)
    elif when == "commit":
        wait_for(lambda: stored_documents(home) > stored or proc.poll() is not None, timeout=60, step=0.005)
    time.sleep(wait)
    workers = children(proc.pid)
    if proc.poll() is None:
        sigkill(proc)
    else:
        proc.communicate()
    return proc, workers


def _assert_rerun_equals(tmp_path, docs, settings, expected) -> None:
    """After the kills, one plain `kb ingest` gives exactly the clean build, and `kb check` passes."""
    done = run_kb(kb_env(tmp_path), "ingest", docs)
    assert done.returncode == 0, done.stderr
    assert _snapshot(settings) == expected
    assert check(settings, embedder=HashingEmbedder()).ok


def _assert_consistent(settings, *allowed_versions: dict[str, tuple]) -> int:
    """The KB opens, answers and agrees with itself; each stored document is whole, in one of the allowed versions.

    Returns the number of documents stored.
    """
    if not (settings.home / "manifest.json").exists():
        return 0  # killed before the knowledge base existed: a re-run creates it
    report = check(settings, embedder=HashingEmbedder())
    # After a kill the FAISS file may lag the store; it is rebuilt from SQLite on open.
    assert report.codes() <= {"faiss_stale", "faiss_missing"}, report.problems
    with KnowledgeBase(settings, embedder=HashingEmbedder()) as kb:
        counts = kb.store.counts()
        assert counts["chunks"] == counts["keyword_entries"] == kb.vectors.size
        if counts["chunks"]:
            assert Retriever(kb).search("rule applies", k=3)
    for path, version in _snapshot(settings).items():
        assert any(v.get(path) == version for v in allowed_versions), f"{path} is stored half-done or wrong"
    return counts["documents"]


@linux_only
def test_killed_ingest_leaves_a_working_kb_and_rerun_completes(tmp_path):
    docs = tmp_path / "docs"
    _write_docs(docs)
    env = kb_env(tmp_path, delay=0.01)
    settings = _settings(env)
    reference = _clean_build(settings.with_overrides(home=tmp_path / "reference"), docs)

    stored = []
    # Killed during start-up, then at several points of the run (each re-run resumes the previous one).
    for when, wait in (("start", 0.3), ("commit", 0.0), ("commit", 0.12), ("manifest", 2.0)):
        proc, workers = _kill_ingest(env, docs, when, wait)
        assert proc.returncode in (-9, 0)
        stored.append(_assert_consistent(settings, reference))
        assert wait_for(lambda ws=workers: not any(alive(w) for w in ws), timeout=10), "parse worker left running"
    assert any(0 < n < len(reference) for n in stored), f"no kill landed mid-run ({stored}): the test proves nothing"

    _assert_rerun_equals(tmp_path, docs, settings, reference)


@linux_only
def test_killed_sync_keeps_each_document_whole(tmp_path):
    docs = tmp_path / "docs"
    _write_docs(docs)
    env = kb_env(tmp_path, delay=0.01)
    settings = _settings(env)
    before = _clean_build(settings, docs)
    # Edit, delete, move and add files, then kill the sync at several points.
    for i, path in enumerate(sorted((docs / "a").iterdir())):
        if i < 4:
            path.write_text(path.read_text().replace("applies", "was changed"))
        elif i < 7:
            path.unlink()
        elif i < 10:
            path.rename(docs / "b" / f"moved-{path.name}")
    (docs / "c").mkdir()
    for i in range(4):
        (docs / "c" / f"new-{i}.md").write_text(" ".join(f"New rule {j} of new file {i} applies." for j in range(40)))
    after = _clean_build(settings.with_overrides(home=tmp_path / "reference"), docs)
    for when, wait in (("commit", 0.05), ("manifest", 1.0)):
        _kill_ingest(env, docs, when, wait)
        _assert_consistent(settings, before, after)
    _assert_rerun_equals(tmp_path, docs, settings, after)


@linux_only
def test_killed_rebuild_leaves_the_old_kb_working(tmp_path):
    docs = tmp_path / "docs"
    _write_docs(docs, n=12)
    env = kb_env(tmp_path, delay=0.02)
    settings = _settings(env)
    before = _clean_build(settings, docs)
    proc = start_kb(env, "rebuild", "--chunk-tokens", "24", "--chunk-overlap", "4", "--quiet")
    assert wait_for(lambda: leftover_folders(settings.home) or proc.poll() is not None, timeout=60)
    time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    sigkill(proc)
    assert leftover_folders(settings.home), "the half-built knowledge base sits beside the old one"
    assert _snapshot(settings) == before
    assert check(settings, embedder=HashingEmbedder()).ok
    done = run_kb(kb_env(tmp_path), "rebuild", "--chunk-tokens", "24", "--chunk-overlap", "4")
    assert done.returncode == 0, done.stderr
    assert not leftover_folders(settings.home)
    new = settings.with_overrides(chunk_tokens=24, chunk_overlap=4)
    assert set(_snapshot(new)) == set(before) and check(new, embedder=HashingEmbedder()).ok


def test_interrupt_between_commit_and_faiss_update_is_not_saved_as_current(tmp_path, settings, fake_embedder):
    """Ctrl-C right after a file's commit, before FAISS follows: closing must not stamp a lagging cache."""
    docs = tmp_path / "docs"
    _write_docs(docs, n=6)
    with KnowledgeBase(settings, embedder=fake_embedder, write=True) as kb:
        ingest(kb, [docs / "a"], isolate=False)
        real_add = kb.vectors.add

        def interrupted(ids, vectors):
            raise KeyboardInterrupt

        kb.vectors.add = interrupted
        with pytest.raises(KeyboardInterrupt):
            ingest(kb, [docs / "b"], isolate=False)
        kb.vectors.add = real_add
    assert check(settings, embedder=fake_embedder).ok
