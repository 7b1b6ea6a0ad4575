"""Incremental sync: added, changed, deleted and moved files; dry runs; `kb remove`; `kb rebuild`."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from kb.check import check
from kb.errors import InputError, ManifestMismatch
from kb.indexer import ingest, plan, remove
from kb.knowledge import KnowledgeBase, kb_exists
from kb.rebuild import leftover_folders, rebuild
from kb.retrieval import Retriever

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "sigma"]


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _text(topic: str, n: int = 60) -> str:
    return f"# {topic}\n\n" + " ".join(f"{topic} {WORDS[i % len(WORDS)]}" for i in range(n)) + ".\n"


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    _write(folder / "a" / "leave.md", _text("leave"))
    _write(folder / "a" / "travel.md", _text("travel"))
    _write(folder / "b" / "faq.txt", _text("uptime"))
    _write(folder / "b" / "deep" / "security.md", _text("passwords"))
    return folder


def _open(settings, embedder, write=True):
    return KnowledgeBase(settings, embedder=embedder, write=write)


def _snapshot(kb):
    """{path: (sha, chunk texts)} plus the invariant that every chunk has one vector and one keyword entry."""
    counts = kb.store.counts()
    assert counts["chunks"] == counts["keyword_entries"] == kb.vectors.size
    return {d.path: (d.sha256, [c.text for c in kb.store.document_chunks(d.id)]) for d in kb.store.documents()}


def _chunk_ids(kb, path):
    return [c.id for c in kb.store.document_chunks(kb.store.document(str(path)).id)]


def _statuses(report):
    return {os.path.basename(r.path): r.status for r in report.results}


def test_rename_across_subfolders_keeps_chunks_and_vectors(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        ids = _chunk_ids(kb, docs / "a" / "leave.md")
        calls = fake_embedder.calls
        (docs / "b" / "deep" / "x").mkdir()
        (docs / "a" / "leave.md").rename(docs / "b" / "deep" / "x" / "holidays.md")
        report = ingest(kb, [docs], isolate=False)
        assert report.summary()["moved"] == 1 and report.summary()["removed"] == 0
        moved = next(r for r in report.results if r.status == "moved")
        assert moved.moved_from == str(docs / "a" / "leave.md")
        assert fake_embedder.calls == calls
        assert _chunk_ids(kb, docs / "b" / "deep" / "x" / "holidays.md") == ids
        assert kb.store.document(str(docs / "a" / "leave.md")) is None
        hits = Retriever(kb).search("leave", k=3, mode="keyword")
        assert hits and hits[0].chunk.path.endswith("holidays.md")
        _snapshot(kb)


def test_file_replaced_by_another_with_same_name(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        target = docs / "a" / "travel.md"
        new = _write(docs / "incoming.tmpfile", _text("trains"))
        os.replace(new, target)
        report = ingest(kb, [docs], isolate=False)
        assert _statuses(report)["travel.md"] == "updated"
        texts = " ".join(_snapshot(kb)[str(target)][1])
        assert "trains" in texts and "travel" not in texts.replace("# ", "")


def test_replacement_with_same_size_and_mtime_is_noticed(settings, fake_embedder, docs):
    """cp -p of another version: the size and mtime match, the content does not."""
    target = docs / "a" / "leave.md"
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        st = target.stat()
        other = _write(docs / "other.tmpfile", target.read_text().replace("leave", "LEAVE"))
        assert other.stat().st_size == st.st_size
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(other, target)
        assert target.stat().st_mtime_ns == st.st_mtime_ns and target.stat().st_size == st.st_size
        report = ingest(kb, [docs], isolate=False)
        assert _statuses(report)["leave.md"] == "updated"
        assert "LEAVE" in " ".join(_snapshot(kb)[str(target)][1])
        # And an in-place rewrite with the old times restored is noticed too (ctime moves on).
        target.write_text(target.read_text().replace("LEAVE", "Leave"))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert _statuses(ingest(kb, [docs], isolate=False))["leave.md"] == "updated"


def test_two_identical_files(settings, fake_embedder, docs):
    twin = docs / "b" / "leave-copy.md"
    shutil.copyfile(docs / "a" / "leave.md", twin)
    with _open(settings, fake_embedder) as kb:
        report = ingest(kb, [docs], isolate=False)
        assert report.summary()["added"] == 5
        snap = _snapshot(kb)
        assert snap[str(twin)] == snap[str(docs / "a" / "leave.md")]
        # Deleting one copy removes exactly that one.
        twin.unlink()
        report = ingest(kb, [docs], isolate=False)
        assert report.summary()["removed"] == 1 and str(twin) not in _snapshot(kb)
        assert str(docs / "a" / "leave.md") in _snapshot(kb)


def test_two_identical_files_both_moved(settings, fake_embedder, docs):
    shutil.copyfile(docs / "a" / "leave.md", docs / "a" / "leave2.md")
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        calls = fake_embedder.calls
        (docs / "c").mkdir()
        (docs / "a" / "leave.md").rename(docs / "c" / "one.md")
        (docs / "a" / "leave2.md").rename(docs / "c" / "two.md")
        report = ingest(kb, [docs], isolate=False)
        sm = report.summary()
        assert sm["moved"] == 2 and sm["added"] == 0 and sm["removed"] == 0
        assert fake_embedder.calls == calls, "both copies keep their vectors"
        assert {os.path.basename(p) for p in _snapshot(kb)} == {
            "one.md",
            "two.md",
            "travel.md",
            "faq.txt",
            "security.md",
        }


def test_moved_and_changed_file(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        old = docs / "b" / "faq.txt"
        new = docs / "a" / "faq-2024.txt"
        _write(new, old.read_text() + "\nNew answer: the SLA is now 99.95 percent.\n")
        old.unlink()
        report = ingest(kb, [docs], isolate=False)
        st = _statuses(report)
        assert st["faq-2024.txt"] == "added" and st["faq.txt"] == "removed"
        snap = _snapshot(kb)
        assert str(old) not in snap and "99.95" in " ".join(snap[str(new)][1])


def test_sync_matches_a_clean_build(settings, fake_embedder, docs, tmp_path):
    """After adds, edits, deletes and moves, an incremental sync equals a build from scratch."""
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        _write(docs / "new.md", _text("onboarding"))
        _write(docs / "a" / "travel.md", _text("travel", 90))
        (docs / "b" / "faq.txt").unlink()
        (docs / "b" / "deep" / "security.md").rename(docs / "security.md")
        ingest(kb, [docs], isolate=False)
        incremental = _snapshot(kb)
    clean = settings.with_overrides(home=tmp_path / "clean")
    with _open(clean, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        assert _snapshot(kb) == incremental


def test_vanished_files_only_removed_under_ingested_folders(settings, fake_embedder, docs, tmp_path):
    other = _write(tmp_path / "elsewhere" / "notes.md", _text("notes"))
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs, other], isolate=False)
        (docs / "a" / "leave.md").unlink()
        report = ingest(kb, [docs / "b"], isolate=False)  # a sibling folder: nothing vanished under it
        assert report.summary()["removed"] == 0
        report = ingest(kb, [other], isolate=False)  # a file named explicitly never removes anything
        assert report.summary()["removed"] == 0
        report = ingest(kb, [docs], isolate=False)
        assert [r.path for r in report.results if r.status == "removed"] == [str(docs / "a" / "leave.md")]


def test_unreadable_subfolder_is_reported_and_its_documents_kept(settings, fake_embedder, docs, monkeypatch):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        before = {d.path for d in kb.store.documents()}
        real_scandir = os.scandir
        blocked = docs / "b"

        def scandir(path):
            if os.fspath(path) == os.fspath(blocked):  # as a folder whose permissions were taken away
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_scandir(path)

        monkeypatch.setattr("ingest.discover.os.scandir", scandir)
        dry = plan(kb.settings, kb.store.documents(), [docs])
        report = ingest(kb, [docs], isolate=False)
        for r in (dry, report):
            assert [(x.path, x.status) for x in r.failed] == [(str(blocked.resolve()), "failed")]
            assert "cannot read folder" in r.failed[0].reason and "Permission denied" in r.failed[0].reason
            assert r.summary()["removed"] == 0
        assert {d.path for d in kb.store.documents()} == before  # b/faq.txt and b/deep/security.md kept
        monkeypatch.undo()
        (docs / "b" / "faq.txt").unlink()
        report = ingest(kb, [docs], isolate=False)  # readable again: a file really gone is removed
        assert [r.path for r in report.results if r.status == "removed"] == [str((docs / "b" / "faq.txt").resolve())]


def test_file_that_became_unsupported_is_removed(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        (docs / "a" / "leave.md").rename(docs / "a" / "leave.md.bak")
        st = _statuses(ingest(kb, [docs], isolate=False))
        assert st["leave.md"] == "removed" and st["leave.md.bak"] == "skipped"


def test_failed_update_keeps_the_previous_version(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        before = _snapshot(kb)[str(docs / "b" / "faq.txt")]
        (docs / "b" / "faq.txt").write_bytes(b"")
        report = ingest(kb, [docs], isolate=False)
        failed = report.failed
        assert len(failed) == 1 and "previously indexed version is kept" in failed[0].reason
        assert _snapshot(kb)[str(docs / "b" / "faq.txt")] == before


def test_dry_run_lists_changes_and_writes_nothing(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
    _write(docs / "new.md", _text("onboarding"))
    _write(docs / "a" / "travel.md", _text("travel", 80))
    (docs / "b" / "faq.txt").unlink()
    (docs / "a" / "leave.md").rename(docs / "leave.md")
    os.utime(docs / "b" / "deep" / "security.md", (1, 1))
    db = settings.home / "kb.sqlite"
    mtime = db.stat().st_mtime_ns
    with _open(settings, fake_embedder, write=False) as kb:
        generation = kb.store.generation()
        docs_before = kb.store.documents()
        report = ingest(kb, [docs], dry_run=True)
        assert report.dry_run
        assert _statuses(report) == {
            "new.md": "added",
            "travel.md": "updated",
            "faq.txt": "removed",
            "leave.md": "moved",
            "security.md": "unchanged",
        }
        assert kb.store.generation() == generation and kb.store.documents() == docs_before
    assert db.stat().st_mtime_ns == mtime


def test_dry_run_on_a_new_knowledge_base_creates_nothing(settings, docs):
    report = plan(settings, [], [docs])
    assert report.summary()["added"] == 4
    assert not settings.home.exists()


def test_remove_documents_and_folders(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        gone = remove(kb, [docs / "b"])
        assert sorted(os.path.basename(r.path) for r in gone) == ["faq.txt", "security.md"]
        (docs / "a" / "leave.md").unlink()  # a file already deleted from disk can still be removed
        assert [r.path for r in remove(kb, [docs / "a" / "leave.md"])] == [str(docs / "a" / "leave.md")]
        assert set(_snapshot(kb)) == {str(docs / "a" / "travel.md")}
        assert Retriever(kb).search("uptime", k=3, mode="keyword") == []
        assert not check(kb.settings, embedder=fake_embedder).problems


def test_remove_unknown_path_removes_nothing(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        with pytest.raises(InputError, match="not in the knowledge base"):
            remove(kb, [docs / "a" / "leave.md", docs / "nope.md"])
        with pytest.raises(InputError):
            remove(kb, [docs / "a" / "lea"])  # a prefix of a name is not a folder
        assert len(_snapshot(kb)) == 4
        assert remove(kb, [docs / "a"], dry_run=True) and len(_snapshot(kb)) == 4


def test_rebuild_with_new_chunk_settings(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        old_chunks = kb.store.counts()["chunks"]
    new = settings.with_overrides(chunk_tokens=20, chunk_overlap=4)
    with pytest.raises(ManifestMismatch, match="kb rebuild"):
        KnowledgeBase(new, embedder=fake_embedder)
    report = rebuild(new, embedder=fake_embedder, isolate=False)
    assert report.swapped and not report.lost
    assert report.before["chunks"] == old_chunks < report.after["chunks"]
    with _open(new, fake_embedder, write=False) as kb:
        assert len(_snapshot(kb)) == 4 and kb.manifest.chunk_tokens == 20
        assert Retriever(kb).search("passwords", k=1, mode="keyword")
    with pytest.raises(ManifestMismatch):
        KnowledgeBase(settings, embedder=fake_embedder)
    assert not leftover_folders(settings.home) and not check(new, embedder=fake_embedder).problems


def test_rebuild_refuses_to_lose_documents(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
    (docs / "a" / "leave.md").unlink()
    with pytest.raises(InputError, match="no longer exist"):
        rebuild(settings, embedder=fake_embedder, isolate=False)
    (docs / "a" / "travel.md").write_bytes(b"")  # no longer readable: found only while rebuilding
    with _open(settings, fake_embedder) as kb:
        remove(kb, [docs / "a" / "leave.md"])
    report = rebuild(settings, embedder=fake_embedder, isolate=False)
    assert not report.swapped and [os.path.basename(p) for p in report.lost] == ["travel.md"]
    with _open(settings, fake_embedder, write=False) as kb:
        assert str(docs / "a" / "travel.md") in _snapshot(kb), "the old knowledge base is untouched"
    report = rebuild(settings, embedder=fake_embedder, isolate=False, allow_losses=True)
    assert report.swapped
    with _open(settings, fake_embedder, write=False) as kb:
        assert set(map(os.path.basename, _snapshot(kb))) == {"faq.txt", "security.md"}


def test_failed_rebuild_leaves_the_old_knowledge_base(settings, fake_embedder, docs):
    with _open(settings, fake_embedder) as kb:
        ingest(kb, [docs], isolate=False)
        before = _snapshot(kb)

    class Broken(type(fake_embedder)):
        def embed(self, texts, *, batch_size=32):
            raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError):
        rebuild(settings, embedder=Broken(), isolate=False)
    assert not leftover_folders(settings.home)
    with _open(settings, fake_embedder, write=False) as kb:
        assert _snapshot(kb) == before


# --- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch, settings):
    """Run the real CLI in-process with the fake embedder and the test's knowledge-base folder."""
    from cli.app import app

    monkeypatch.setenv("KB_EMBED_MODEL", "fake:")
    monkeypatch.setenv("KB_HOME", str(settings.home))
    monkeypatch.setenv("KB_CHUNK_TOKENS", "40")
    monkeypatch.setenv("KB_CHUNK_OVERLAP", "8")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_cli_ingest_summary_and_json(cli, docs, settings):
    first = cli("ingest", docs, "--json")
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["summary"] == {
        "added": 4,
        "updated": 0,
        "moved": 0,
        "unchanged": 0,
        "removed": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert data["totals"]["documents"] == 4 and data["seconds"] >= 0 and not data["dry_run"]
    (docs / "b" / "faq.txt").unlink()
    (docs / "a" / "bad.pdf").write_bytes(b"%PDF-1.4 not really")
    (docs / "a" / "leave.md").rename(docs / "leave.md")
    second = cli("ingest", docs)
    assert second.exit_code == 2
    assert "0 added, 0 updated, 1 moved, 2 unchanged, 1 removed, 1 failed in" in second.stderr, second.stderr
    assert second.stderr.count("bad.pdf") == 1, "each failure is reported once"
    assert "failed: " in second.stderr and "bad.pdf: " in second.stderr
    files = {os.path.basename(f["path"]): f for f in json.loads(cli("ingest", docs, "--json").stdout)["files"]}
    assert files["bad.pdf"]["status"] == "failed" and files["bad.pdf"]["reason"]
    assert files["leave.md"]["status"] == "unchanged"


def test_cli_dry_run_does_not_create_a_knowledge_base(cli, docs, settings):
    result = cli("ingest", docs, "--dry-run")
    assert result.exit_code == 0
    assert result.stdout.count("would add: ") == 4
    assert not kb_exists(settings.home)


def test_cli_remove(cli, docs, settings):
    assert cli("ingest", docs).exit_code == 0
    result = cli("remove", docs / "a", "--json")
    assert result.exit_code == 0
    assert sorted(os.path.basename(r["path"]) for r in json.loads(result.stdout)["removed"]) == [
        "leave.md",
        "travel.md",
    ]
    missing = cli("remove", docs / "nope.md")  # cli.app.main turns the error into one line and exit 1
    assert isinstance(missing.exception, InputError) and "not in the knowledge base" in str(missing.exception)


def test_cli_rebuild(cli, docs, settings):
    assert cli("ingest", docs).exit_code == 0
    result = cli("rebuild", "--chunk-tokens", "24", "--chunk-overlap", "4", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["swapped"] and data["after"]["documents"] == 4 and not data["failed"] and not data["missing"]
    refused = cli("status")  # the environment still asks for 40-token chunks
    assert isinstance(refused.exception, ManifestMismatch)
    assert "chunk_tokens: built with 24, now 40" in str(refused.exception)


def test_unsupported_extensions_get_reasons_and_content_wins(settings, fake_embedder, docs, monkeypatch):
    from ingest import legacy
    from tests.ingest_fixtures import make_pdf

    monkeypatch.setattr(legacy, "soffice", lambda: None)  # as on a machine without LibreOffice
    (docs / "report.bin").write_bytes(make_pdf([["Quarterly uptime was 99.95 percent."]]))
    (docs / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))
    (docs / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with _open(settings, fake_embedder) as kb:
        report = ingest(kb, [docs], isolate=False)
        by_name = {os.path.basename(r.path): r for r in report.results}
        assert by_name["report.bin"].status == "added", by_name["report.bin"]
        assert by_name["old.doc"].status == "skipped" and "save the file as .docx" in by_name["old.doc"].reason
        # Images are read by OCR now; this one is a PNG signature and nothing else.
        assert by_name["photo.png"].status == "failed" and "not a readable image" in by_name["photo.png"].reason
