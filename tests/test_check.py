"""`kb check` finds every way the store, FAISS and keyword index can disagree; `kb repair` fixes them."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from kb.check import check, repair
from kb.indexer import ingest
from kb.knowledge import KnowledgeBase
from kb.retrieval import Retriever
from kb.store import Store
from kb.vectors import VectorIndex


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def built(settings, fake_embedder, tmp_path):
    """A knowledge base of three documents; returns its settings."""
    docs = tmp_path / "docs"
    _write(docs / "leave.md", "# Leave\n\n" + "Employees receive 28 days of annual leave per year. " * 12)
    _write(docs / "faq.txt", "Q: What is the uptime SLA?\nA: The SLA guarantees 99.9% uptime. " * 12)
    _write(docs / "sub" / "travel.md", "# Travel\n\n" + "Trains are first class for long journeys. " * 12)
    with KnowledgeBase(settings, embedder=fake_embedder, write=True) as kb:
        ingest(kb, [docs], isolate=False)
    return settings


def _db(settings):
    db = sqlite3.connect(settings.home / "kb.sqlite", isolation_level=None)
    db.execute("PRAGMA foreign_keys=OFF")
    return db


def _codes(settings, embedder):
    return check(settings, embedder=embedder).codes()


def _assert_healthy(settings, embedder):
    report = check(settings, embedder=embedder)
    assert report.ok, report.problems
    with KnowledgeBase(settings, embedder=embedder) as kb:
        counts = kb.store.counts()
        assert counts["chunks"] == counts["keyword_entries"] == kb.vectors.size
        assert Retriever(kb).search("annual leave", k=3)


def test_clean_knowledge_base_passes(built, fake_embedder):
    report = check(built, embedder=fake_embedder)
    assert report.ok and not report.notes
    assert report.counts["chunks"] == report.counts["keyword_entries"] == report.counts["vectors"] > 0
    assert report.counts["generation"] == report.counts["faiss_generation"]


def _drop_fts_row(db):
    db.execute("DELETE FROM chunks_fts WHERE rowid = (SELECT min(id) FROM chunks)")


def _extra_fts_row(db):
    db.execute("INSERT INTO chunks_fts(rowid, title, heading, body) VALUES (999999, 't', '', 'ghost words')")


def _stale_fts_row(db):
    db.execute("UPDATE chunks_fts SET body = 'something else' WHERE rowid = (SELECT max(id) FROM chunks)")


def _orphan_chunk(db):
    db.execute("DELETE FROM documents WHERE path LIKE '%faq.txt'")


def _document_without_chunks(db):
    db.execute("DELETE FROM chunks WHERE doc_id = (SELECT id FROM documents WHERE path LIKE '%travel.md')")


def _wrong_count(db):
    db.execute("UPDATE documents SET n_chunks = n_chunks + 5 WHERE path LIKE '%leave.md'")


def _damaged_vector(db):
    db.execute("UPDATE chunks SET vector = x'0000' WHERE id = (SELECT min(id) FROM chunks)")


DAMAGE = {
    "keyword_missing": _drop_fts_row,
    "keyword_orphaned": _extra_fts_row,
    "keyword_stale": _stale_fts_row,
    "chunk_orphaned": _orphan_chunk,
    "document_without_chunks": _document_without_chunks,
    "document_chunk_count": _wrong_count,
    "vector_damaged": _damaged_vector,
}


@pytest.mark.parametrize("code", sorted(DAMAGE))
def test_store_damage_is_found_and_repaired(built, fake_embedder, code):
    db = _db(built)
    DAMAGE[code](db)
    db.close()
    assert code in _codes(built, fake_embedder)
    result = repair(built, embedder=fake_embedder)
    assert code in result.before.codes() and result.actions and result.after.ok, result.after.problems
    _assert_healthy(built, fake_embedder)


def test_stale_faiss_is_found_and_repaired(built, fake_embedder):
    db = _db(built)
    db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    db.close()
    assert _codes(built, fake_embedder) == {"faiss_stale"}
    assert repair(built, embedder=fake_embedder).after.ok


def test_damaged_or_missing_faiss_file(built, fake_embedder):
    (built.home / "vectors.faiss").write_bytes(b"garbage")
    assert _codes(built, fake_embedder) == {"faiss_damaged"}
    assert repair(built, embedder=fake_embedder).after.ok
    (built.home / "vectors.faiss").unlink()
    (built.home / "vectors.json").unlink()
    assert _codes(built, fake_embedder) == {"faiss_missing"}
    assert repair(built, embedder=fake_embedder).after.ok


def test_faiss_of_right_generation_but_wrong_content(built, fake_embedder):
    """A FAISS file stamped with the current generation that disagrees with SQLite (ids and vectors)."""
    with KnowledgeBase(built, embedder=fake_embedder) as kb:
        generation, dim = kb.store.generation(), kb.manifest.dim
        ids, vecs = next(kb.store.iter_vectors())
    bad = VectorIndex(dim)
    wrong = vecs.copy()
    wrong[1] = -wrong[1]
    bad.add(ids[1:], wrong[1:])  # first chunk missing, second vector wrong
    bad.add([424242], vecs[:1])  # a vector of no chunk
    bad.save(built.home, generation)
    assert _codes(built, fake_embedder) == {"faiss_missing_ids", "faiss_extra", "faiss_vectors_differ"}
    assert repair(built, embedder=fake_embedder).after.ok
    _assert_healthy(built, fake_embedder)


def test_manifest_problems_are_reported_not_repaired(built, fake_embedder):
    other = built.with_overrides(chunk_tokens=64)
    assert _codes(other, fake_embedder) == {"manifest_settings"}
    manifest = built.home / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "dim": -3}))
    codes = _codes(built, fake_embedder)
    assert "manifest_invalid" in codes
    manifest.write_text("{ not json")
    assert "manifest_damaged" in _codes(built, fake_embedder)
    manifest.unlink()
    result = repair(built, embedder=fake_embedder)
    assert not result.after.ok and {p.code for p in result.after.problems} == {"manifest_missing"}
    assert not any(p.fixable for p in result.after.problems)


def test_leftovers_are_noted_and_cleared(built, fake_embedder):
    (built.home / "vectors.faiss.tmp").write_bytes(b"half written")
    staging = built.home.parent / f".{built.home.name}.rebuild-12345"
    staging.mkdir()
    report = check(built, embedder=fake_embedder)
    assert report.ok and len(report.notes) == 2
    result = repair(built, embedder=fake_embedder)
    assert len(result.actions) == 2 and not staging.exists() and not (built.home / "vectors.faiss.tmp").exists()


def test_missing_source_files_are_noted(built, fake_embedder, tmp_path):
    (tmp_path / "docs" / "faq.txt").unlink()
    report = check(built, embedder=fake_embedder)
    assert report.ok and any("no longer exist" in n for n in report.notes)


def test_many_problems_at_once(built, fake_embedder):
    db = _db(built)
    for damage in DAMAGE.values():
        damage(db)
    db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    db.close()
    result = repair(built, embedder=fake_embedder)
    assert len(result.before.problems) >= 5 and result.after.ok, result.after.problems
    _assert_healthy(built, fake_embedder)


def test_cli_check_and_repair(settings, tmp_path, monkeypatch):
    from cli.app import app

    monkeypatch.setenv("KB_EMBED_MODEL", "fake:")
    monkeypatch.setenv("KB_HOME", str(settings.home))
    runner = CliRunner()
    _write(tmp_path / "docs" / "leave.md", "# Leave\n\n" + "Employees receive 28 days of annual leave. " * 30)
    _write(tmp_path / "docs" / "faq.txt", "The SLA guarantees 99.9% uptime. " * 30)
    assert runner.invoke(app, ["ingest", str(tmp_path / "docs")]).exit_code == 0
    ok = runner.invoke(app, ["check"])
    assert ok.exit_code == 0 and ok.stdout.startswith("OK: ")
    db = _db(settings)
    _drop_fts_row(db)
    _wrong_count(db)
    db.close()
    bad = runner.invoke(app, ["check"])
    assert bad.exit_code == 2
    assert [line.split(":")[1].strip() for line in bad.stdout.splitlines() if line.startswith("problem: ")] == [
        "document_chunk_count",
        "keyword_missing",
    ]
    data = json.loads(runner.invoke(app, ["check", "--json"]).stdout)
    assert not data["ok"] and {p["code"] for p in data["problems"]} == {"keyword_missing", "document_chunk_count"}
    assert all(p["fixable"] and p["message"] for p in data["problems"])
    assert set(data["counts"]) >= {"documents", "chunks", "keyword_entries", "vectors", "generation"}
    fixed = runner.invoke(app, ["repair", "--json"])
    assert fixed.exit_code == 0
    data = json.loads(fixed.stdout)
    assert data["ok"] and data["actions"] and len(data["problems_before"]) == 2 and data["problems_after"] == []
    assert runner.invoke(app, ["check"]).exit_code == 0
    assert runner.invoke(app, ["repair"]).stdout.strip().endswith("nothing to repair.")


def test_damaged_database_file(built, fake_embedder):
    from kb.errors import KBDamaged

    (built.home / "kb.sqlite").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (built.home / f"kb.sqlite{suffix}").unlink(missing_ok=True)
    report = check(built, embedder=fake_embedder)
    assert report.codes() == {"store_damaged"} and not report.problems[0].fixable
    with pytest.raises(KBDamaged, match="kb check"):
        KnowledgeBase(built, embedder=fake_embedder)


def test_a_writer_committing_during_check_is_not_reported_as_damage(built, fake_embedder, monkeypatch):
    """The FAISS file is judged against the store generation read in the same snapshot as the chunks."""
    load = VectorIndex.load

    def load_then_commit(*args, **kwargs):
        loaded = load(*args, **kwargs)
        writer = Store(built.home / "kb.sqlite")  # a writer removes a document right now
        try:
            writer.remove_document(writer.documents()[0].path)
        finally:
            writer.close()
        return loaded

    monkeypatch.setattr("kb.check.writer_active", lambda folder: True)
    monkeypatch.setattr("kb.check.VectorIndex.load", load_then_commit)
    report = check(built, embedder=fake_embedder)
    assert report.ok, report.problems
    assert any("FAISS file is of store generation" in n for n in report.notes)
