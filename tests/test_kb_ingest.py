"""Ingest into a real store and FAISS index with the fake embedder: add, skip, update, move, remove, fail."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from kb.errors import KBLocked, KBNotFound, ManifestMismatch
from kb.indexer import ingest
from kb.knowledge import KnowledgeBase
from kb.retrieval import Retriever


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    _write(folder / "leave.md", "# Leave\n\nEmployees receive 28 days of annual leave per year.\n")
    _write(folder / "faq.txt", "Q: What is the uptime SLA?\nA: The SLA guarantees 99.9% uptime every month.\n")
    _write(folder / "sub" / "travel.md", "# Travel\n\nTrains are first class for journeys over four hours.\n")
    return folder


def _open(settings, fake_embedder, write=True):
    return KnowledgeBase(settings, embedder=fake_embedder, write=write)


def test_ingest_adds_then_skips_unchanged(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        first = ingest(kb, [docs], isolate=False)
        assert first.summary()["added"] == 3 and not first.failed
        counts = kb.store.counts()
        assert counts["chunks"] == counts["keyword_entries"] == kb.vectors.size > 0
        calls = fake_embedder.calls
        second = ingest(kb, [docs], isolate=False)
        assert second.summary()["unchanged"] == 3
        assert fake_embedder.calls == calls, "unchanged files must not be re-embedded"


def test_touched_but_identical_file_is_not_reembedded(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        calls = fake_embedder.calls
        os.utime(docs / "faq.txt", (1, 1))
        report = ingest(kb, [docs], isolate=False)
        assert report.summary()["unchanged"] == 3 and fake_embedder.calls == calls


def test_changed_file_replaces_its_chunks(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        _write(docs / "leave.md", "# Leave\n\nEmployees now receive 30 days of annual leave.\n")
        report = ingest(kb, [docs], isolate=False)
        assert report.summary()["updated"] == 1
        hits = Retriever(kb).search("annual leave days", k=5, mode="keyword")
        texts = " ".join(h.chunk.text for h in hits)
        assert "30 days" in texts and "28 days" not in texts
        counts = kb.store.counts()
        assert counts["chunks"] == counts["keyword_entries"] == kb.vectors.size


def test_deleted_and_moved_files(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        (docs / "faq.txt").unlink()
        (docs / "sub" / "travel.md").rename(docs / "travel-policy.md")
        calls = fake_embedder.calls
        report = ingest(kb, [docs], isolate=False)
        sm = report.summary()
        assert sm["removed"] == 1 and sm["moved"] == 1
        assert fake_embedder.calls == calls, "a moved file keeps its vectors"
        paths = {d.path for d in kb.store.documents()}
        assert str((docs / "travel-policy.md").resolve()) in paths
        assert not any(p.endswith("faq.txt") for p in paths)
        assert Retriever(kb).search("uptime SLA", k=5, mode="keyword") == []
        counts = kb.store.counts()
        assert counts["chunks"] == counts["keyword_entries"] == kb.vectors.size


def test_bad_files_are_reported_and_the_batch_goes_on(settings, fake_embedder, docs):
    (docs / "empty.txt").write_text("")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (docs / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (docs / "backup.7z").write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(100))
    with _open(settings, fake_embedder) as kb:
        report = ingest(kb, [docs], isolate=False)
        by_name = {os.path.basename(r.path): r for r in report.results}
        assert by_name["empty.txt"].status == "failed" and by_name["empty.txt"].reason
        assert by_name["broken.pdf"].status == "failed" and by_name["broken.pdf"].reason
        assert by_name["image.png"].status == "failed" and "not a readable image" in by_name["image.png"].reason
        assert by_name["backup.7z"].status == "skipped" and ".7z" in by_name["backup.7z"].reason
        assert report.summary()["added"] == 3


def test_isolated_parsing_matches_inline(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        report = ingest(kb, [docs], isolate=True)
        assert report.summary()["added"] == 3 and not report.failed


def test_dry_run_changes_nothing(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        report = ingest(kb, [docs], dry_run=True, isolate=False)
        assert report.summary()["added"] == 3
        assert kb.store.counts()["documents"] == 0


def test_reader_needs_existing_kb(settings, fake_embedder):
    with pytest.raises(KBNotFound):
        KnowledgeBase(settings, embedder=fake_embedder)


def test_second_writer_is_refused(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        with pytest.raises(KBLocked):
            _open(settings, fake_embedder)
        with _open(settings, fake_embedder, write=False) as reader:  # readers keep working
            assert reader.store.counts()["documents"] == 3


def test_other_chunk_settings_are_refused(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
    with pytest.raises(ManifestMismatch, match="chunk_tokens"):
        KnowledgeBase(settings.with_overrides(chunk_tokens=64), embedder=fake_embedder)


def test_stale_faiss_cache_is_rebuilt_from_sqlite(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        n = kb.vectors.size
    (settings.home / "vectors.faiss").write_bytes(b"garbage")
    with _open(settings, fake_embedder, write=False) as kb:
        assert kb.vectors.size == n
        assert Retriever(kb).search("annual leave", k=3, mode="dense")


def test_a_large_file_reports_embedding_progress_in_steps(settings, fake_embedder, tmp_path, monkeypatch):
    monkeypatch.setattr("kb.indexer.EMBED_STEP", 40)  # settings.embed_batch (32) < 40 passages per step
    big = _write(tmp_path / "big" / "manual.txt", "\n\n".join(f"Section {i}. " + "word " * 150 for i in range(60)))
    seen = []
    with _open(settings, fake_embedder) as kb:
        report = ingest(kb, [big.parent], isolate=False, progress=lambda d, t, r: seen.append(r))
        chunks = kb.store.counts()["chunks"]
        assert chunks > 80 and kb.vectors.size == chunks
    steps = [r.reason for r in seen if r is not None and r.status == "embedding"]
    assert len(steps) == -(-chunks // 40) and steps[0] == f"0/{chunks} passages embedded"
    assert [r.status for r in report.results] == ["added"]  # progress-only, never in the report


def _pdf_folder(tmp_path):
    from tests.ingest_fixtures import make_pdf

    folder = tmp_path / "pdfs"
    folder.mkdir()
    topics = ["leave", "travel", "security", "pensions"]
    for i in range(3):
        pages = [
            [f"Report {i} on {t}.", f"The {t} rules of report {i} apply from page {n + 1}."]
            for n, t in enumerate(topics)
        ]
        (folder / f"report-{i}.pdf").write_bytes(make_pdf(pages))
    _write(folder / "notes.md", "# Notes\n\nA Markdown file between the PDFs.\n")
    return folder


def test_work_progress_counts_pages_passages_and_bytes(settings, fake_embedder, tmp_path):
    folder = _pdf_folder(tmp_path)
    seen = []
    with _open(settings, fake_embedder) as kb:
        report = ingest(kb, [folder], isolate=False, on_work=seen.append)
        chunks = kb.store.counts()["chunks"]
    assert [r.pages for r in sorted(report.results, key=lambda r: r.path)] == [0, 4, 4, 4]
    size = sum(p.stat().st_size for p in folder.iterdir())
    last = seen[-1]
    assert (last.files_done, last.files_total, last.pages, last.passages) == (4, 4, 12, chunks)
    assert last.bytes_done == last.bytes_total == size
    assert all(a.bytes_done <= b.bytes_done for a, b in itertools.pairwise(seen))
    assert set(report.timings) == {"parse", "chunk", "embed", "store", "wait"}
    assert report.timings["parse"] > 0 and report.timings["embed"] > 0


@pytest.mark.parametrize("engine", ["auto", "pypdf"])
def test_cli_ingest_in_parallel_workers_reports_pages_and_stage_times(tmp_path, engine):
    import json

    from tests.kbproc import kb_env, run_kb

    folder = _pdf_folder(tmp_path)
    done = run_kb(kb_env(tmp_path), "ingest", folder, "--json", "--workers", "3", "--pdf-engine", engine)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["summary"]["added"] == 4 and out["pages"] == 12
    assert {Path(f["path"]).name: f["pages"] for f in out["files"]} == {
        "notes.md": 0,
        "report-0.pdf": 4,
        "report-1.pdf": 4,
        "report-2.pdf": 4,
    }
    assert set(out["timings"]) == {"parse", "chunk", "embed", "store", "wait"}
