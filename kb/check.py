"""Check and repair: do the store, the FAISS index and the keyword index agree?

SQLite holds the truth (documents, chunks and their vectors); the FTS5 keyword table and the
FAISS file are derived from it. `check` reads everything in one SQLite snapshot and lists
each disagreement as a Problem; `repair` fixes what can be fixed without re-reading files
(orphans deleted, keyword index and FAISS rebuilt from the chunks) and says what it did.
Problems only a rebuild can fix (manifest missing or of other settings, SQLite corruption)
are left for `kb rebuild`.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kb.config import Settings
from kb.embeddings import Embedder, load_embedder
from kb.errors import KBError, KBNotFound
from kb.knowledge import (
    DB_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    Manifest,
    acquire_write_lock,
    read_manifest,
    release_write_lock,
    writer_active,
)
from kb.rebuild import leftover_folders
from kb.store import SCHEMA_VERSION, Store, _heading_path
from kb.vectors import INDEX_FILE, STATE_FILE, IndexPolicy, VectorIndex

EXAMPLES = 3  # paths or ids quoted per problem line


@dataclass(frozen=True)
class Problem:
    """One disagreement, reported as one line. `code` is stable (for scripts); `fixable` by `kb repair`."""

    code: str
    message: str
    fixable: bool


@dataclass
class CheckReport:
    """What `check` found."""

    folder: Path
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing disagrees."""
        return not self.problems

    def codes(self) -> set[str]:
        """The codes of the problems found."""
        return {p.code for p in self.problems}

    def add(self, code: str, message: str, fixable: bool = True) -> None:
        """Record a problem."""
        self.problems.append(Problem(code, message, fixable))


@dataclass
class RepairReport:
    """What `repair` did and what is still wrong afterwards."""

    actions: list[str]
    before: CheckReport
    after: CheckReport


def _n(count: int, noun: str, one: str = "", many: str = "") -> str:
    """'1 chunk has', '2 chunks have': a count with its noun (and verb) agreeing."""
    verb = (one if count == 1 else many) if one else ""
    return f"{count} {noun if count == 1 else noun + 's'}" + (f" {verb}" if verb else "")


def _examples(items: list) -> str:
    shown = ", ".join(str(i) for i in items[:EXAMPLES])
    return shown + (", ..." if len(items) > EXAMPLES else "")


def _wanted_manifest(settings: Settings, embedder: Embedder | None) -> Manifest:
    embedder = embedder or load_embedder(settings.embed_model, threads=settings.threads, backend=settings.embed_backend)
    return Manifest.for_settings(settings, embedder)


def check(settings: Settings, *, embedder: Embedder | None = None, holding_lock: bool = False) -> CheckReport:
    """Verify the knowledge base at `settings.home`; never writes anything.

    `holding_lock`: the caller holds the writer lock, so no writer can be running.
    """
    folder = settings.home
    report = CheckReport(folder)
    if not (folder / MANIFEST_FILE).exists() and not (folder / DB_FILE).exists():
        raise KBNotFound(f"no knowledge base at {folder}")
    busy = not holding_lock and writer_active(folder)
    if busy:
        report.notes.append("a writer is running: counts may change and the FAISS file may lag meanwhile")
    dim = _check_manifest(report, settings, embedder)
    if not (folder / DB_FILE).is_file():
        report.add(
            "store_missing",
            f"{DB_FILE} is missing: nothing is stored; `kb rebuild` cannot help, ingest again",
            fixable=False,
        )
        return report
    try:
        store = Store(folder / DB_FILE)
    except sqlite3.DatabaseError as exc:
        report.add("store_damaged", f"{DB_FILE} cannot be opened ({exc})", fixable=False)
        return report
    try:
        _check_store(report, store, dim)
        _check_faiss(report, store, dim, busy)
    except sqlite3.DatabaseError as exc:
        report.add("store_damaged", f"{DB_FILE}: {exc}", fixable=False)
    finally:
        store.close()
    _check_leftovers(report)
    return report


def _check_manifest(report: CheckReport, settings: Settings, embedder: Embedder | None) -> int | None:
    """Manifest present, sane and matching the current settings; returns its vector dimension."""
    try:
        manifest = read_manifest(report.folder)
    except FileNotFoundError:
        report.add("manifest_missing", f"{MANIFEST_FILE} is missing: `kb rebuild` re-creates it", fixable=False)
        return None
    except (OSError, ValueError, TypeError) as exc:
        report.add(
            "manifest_damaged", f"{MANIFEST_FILE} is unreadable ({exc}): `kb rebuild` re-creates it", fixable=False
        )
        return None
    insane = []
    if manifest.format_version != FORMAT_VERSION:
        insane.append(f"format_version {manifest.format_version!r} (this kb reads {FORMAT_VERSION})")
    if not isinstance(manifest.dim, int) or manifest.dim <= 0:
        insane.append(f"dim {manifest.dim!r}")
    if not isinstance(manifest.chunk_tokens, int) or manifest.chunk_tokens < 1:
        insane.append(f"chunk_tokens {manifest.chunk_tokens!r}")
    elif not isinstance(manifest.chunk_overlap, int) or not 0 <= manifest.chunk_overlap < manifest.chunk_tokens:
        insane.append(f"chunk_overlap {manifest.chunk_overlap!r}")
    if not manifest.embed_name or not manifest.embed_fingerprint:
        insane.append("no embedding model recorded")
    if insane:
        report.add("manifest_invalid", f"{MANIFEST_FILE} holds invalid values: {'; '.join(insane)}", fixable=False)
        return manifest.dim if isinstance(manifest.dim, int) and manifest.dim > 0 else None
    try:
        diffs = manifest.differences(_wanted_manifest(settings, embedder))
    except KBError as exc:
        report.notes.append(f"not compared with the current settings: {exc}")
        diffs = []
    if diffs:
        report.add(
            "manifest_settings",
            f"built with other settings ({'; '.join(diffs)}): use them, or `kb rebuild`",
            fixable=False,
        )
    return manifest.dim


def _rows(store: Store, sql: str, *args: object) -> list:
    return store.db.execute(sql, args).fetchall()


def _check_store(report: CheckReport, store: Store, dim: int | None) -> None:
    """SQLite integrity, orphans, per-document counts, vector sizes and the FTS5 keyword index."""
    integrity = [r[0] for r in _rows(store, "PRAGMA quick_check")]
    if integrity != ["ok"]:
        report.add("sqlite_integrity", f"SQLite reports damage: {_examples(integrity)}", fixable=False)
    try:
        store.db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
    except sqlite3.DatabaseError as exc:
        if "locked" not in str(exc):
            report.add("keyword_corrupt", f"the keyword index (FTS5) fails its integrity check ({exc})")
    with store.snapshot():
        version = store.get_meta("schema_version")
        if version is None or not version.isdigit() or int(version) > SCHEMA_VERSION:
            report.add("schema_version", f"store schema version {version!r} is not one this kb reads", fixable=False)
        report.counts.update(store.counts())
        report.counts["generation"] = store.generation()
        orphans = [
            r[0]
            for r in _rows(store, "SELECT id FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents) ORDER BY id")
        ]
        if orphans:
            report.add(
                "chunk_orphaned",
                f"{_n(len(orphans), 'chunk', 'belongs', 'belong')} to no document (ids {_examples(orphans)})",
            )
        empty = [
            r[0]
            for r in _rows(
                store,
                "SELECT path FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.doc_id = d.id)"
                " ORDER BY path",
            )
        ]
        if empty:
            report.add(
                "document_without_chunks",
                f"{_n(len(empty), 'document', 'has', 'have')} no chunks (repair drops them; ingest adds them again): "
                f"{_examples(empty)}",
            )
        miscounted = [
            r[0]
            for r in _rows(
                store,
                "SELECT d.path FROM documents d WHERE d.n_chunks != "
                "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id) ORDER BY d.path",
            )
        ]
        if miscounted:
            report.add(
                "document_chunk_count",
                f"{_n(len(miscounted), 'document', 'records', 'record')} a wrong chunk count: {_examples(miscounted)}",
            )
        if dim is not None:
            bad = [
                r[0]
                for r in _rows(
                    store,
                    "SELECT id FROM chunks WHERE typeof(vector) != 'blob' OR length(vector) != ? ORDER BY id",
                    dim * 4,
                )
            ]
            if bad:
                report.add(
                    "vector_damaged",
                    f"{_n(len(bad), 'chunk', 'has', 'have')} no valid {dim}-dim vector "
                    f"(ids {_examples(bad)}); repair drops their documents, ingest adds them again",
                )
        _check_keywords(report, store)
        _note_missing_files(report, store)


def _check_keywords(report: CheckReport, store: Store) -> None:
    """Every chunk has exactly one FTS row with its current title, heading and text; no FTS row is left over."""
    extra = [
        r[0]
        for r in _rows(store, "SELECT rowid FROM chunks_fts WHERE rowid NOT IN (SELECT id FROM chunks) ORDER BY rowid")
    ]
    if extra:
        report.add("keyword_orphaned", f"{len(extra)} keyword entries have no chunk (rowids {_examples(extra)})")
    missing = [
        r[0] for r in _rows(store, "SELECT id FROM chunks WHERE id NOT IN (SELECT rowid FROM chunks_fts) ORDER BY id")
    ]
    if missing:
        report.add(
            "keyword_missing", f"{_n(len(missing), 'chunk', 'has', 'have')} no keyword entry (ids {_examples(missing)})"
        )
    stale = []
    cur = store.db.execute(
        "SELECT c.id, c.text, c.heading, d.title, f.title, f.heading, f.body FROM chunks c "
        "JOIN documents d ON d.id = c.doc_id JOIN chunks_fts f ON f.rowid = c.id"
    )
    for cid, text, heading, title, f_title, f_heading, f_body in cur:
        want_heading = " ".join(_heading_path(heading))
        if (f_body, f_title, f_heading) != (text, title, want_heading):
            stale.append(cid)
    if stale:
        report.add("keyword_stale", f"{len(stale)} keyword entries differ from their chunk (ids {_examples(stale)})")


def _note_missing_files(report: CheckReport, store: Store) -> None:
    gone = [
        r[0]
        for r in _rows(store, "SELECT path FROM documents ORDER BY path")
        if os.path.isabs(r[0]) and not os.path.exists(r[0])
    ]
    if gone:
        report.notes.append(
            f"the files of {_n(len(gone), 'document')} no longer exist ({_examples(gone)}): "
            "`kb ingest` their folder "
            "or `kb remove` them"
        )


def _check_faiss(report: CheckReport, store: Store, dim: int | None, busy: bool) -> None:
    """The FAISS file is of the store's generation and holds exactly the stored vectors."""
    folder = report.folder
    report.counts["vectors"] = None
    if dim is None:
        return
    loaded = VectorIndex.load(folder, dim)
    if loaded is None:
        if (folder / INDEX_FILE).exists() or (folder / STATE_FILE).exists():
            report.add("faiss_damaged", f"{INDEX_FILE} is unreadable or does not match {STATE_FILE}")
        elif report.counts.get("chunks"):
            report.add("faiss_missing", f"{INDEX_FILE} is missing (it is rebuilt from SQLite on open)")
        return
    index, state = loaded
    report.counts["vectors"] = index.size
    report.counts["faiss_generation"] = state.get("generation")
    # The generation and the stored chunks are read in one snapshot: a writer committing between
    # the two reads made a current-looking FAISS file seem to miss the new chunks.
    with store.snapshot():
        generation = store.generation()
        if state.get("generation") != generation:
            message = (
                f"the FAISS file is of store generation {state.get('generation')}, the store is at "
                f"{generation} (rebuilt from SQLite on open; repair saves it)"
            )
            if busy:
                report.notes.append(message)
            else:
                report.add("faiss_stale", message)
            return
        _compare_vectors(report, store, index, dim)


def _compare_vectors(report: CheckReport, store: Store, index: VectorIndex, dim: int) -> None:
    ids = index.ids()
    stored = np.array([r[0] for r in _rows(store, "SELECT id FROM chunks ORDER BY id")], dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        report.add("faiss_duplicate_ids", f"{len(ids) - len(np.unique(ids))} chunk ids appear twice in FAISS")
    extra = np.setdiff1d(ids, stored)
    missing = np.setdiff1d(stored, ids)
    if len(extra):
        report.add("faiss_extra", f"{len(extra)} FAISS vectors have no chunk (ids {_examples(extra.tolist())})")
    if len(missing):
        report.add(
            "faiss_missing_ids",
            f"{_n(len(missing), 'chunk', 'has', 'have')} no FAISS vector (ids {_examples(missing.tolist())})",
        )
    differ = []
    for batch_ids, vecs in index.iter_vectors():
        truth = _stored_vectors(store, batch_ids.tolist(), dim)
        for cid, vec in zip(batch_ids.tolist(), vecs, strict=True):
            if cid in truth and not np.allclose(vec, truth[cid], atol=1e-6):
                differ.append(cid)
    if differ:
        report.add("faiss_vectors_differ", f"{len(differ)} FAISS vectors differ from SQLite (ids {_examples(differ)})")


def _stored_vectors(store: Store, ids: list[int], dim: int) -> dict[int, np.ndarray]:
    """Valid stored vectors by chunk id (damaged ones are reported elsewhere)."""
    out = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ",".join("?" * len(part))
        for cid, blob in _rows(store, f"SELECT id, vector FROM chunks WHERE id IN ({marks})", *part):
            if isinstance(blob, bytes) and len(blob) == dim * 4:
                out[cid] = np.frombuffer(blob, dtype=np.float32)
    return out


def _check_leftovers(report: CheckReport) -> None:
    tmp = sorted(p.name for p in report.folder.glob("*.tmp"))
    staging = leftover_folders(report.folder)
    if tmp:
        report.notes.append(f"temporary files left by an interrupted run: {_examples(tmp)} (repair deletes them)")
    if staging:
        report.notes.append(
            f"folders left by an interrupted rebuild: {_examples([str(p) for p in staging])} (repair deletes them)"
        )


def repair(settings: Settings, *, embedder: Embedder | None = None) -> RepairReport:
    """Fix what `check` finds, under the writer lock; returns the actions taken and a fresh check."""
    folder = settings.home
    if not (folder / MANIFEST_FILE).exists() and not (folder / DB_FILE).exists():
        raise KBNotFound(f"no knowledge base at {folder}")
    actions: list[str] = []
    lock = acquire_write_lock(folder)
    try:
        before = check(settings, embedder=embedder, holding_lock=True)  # no writer changes things meanwhile
        codes = before.codes()
        dim = _manifest_dim(folder)
        if (folder / DB_FILE).is_file() and not codes & {"store_damaged", "sqlite_integrity"}:
            store = Store(folder / DB_FILE)
            try:
                actions += _repair_store(store, codes, dim)
                if dim is not None and (actions or codes & _FAISS_CODES):
                    index = VectorIndex.rebuild(store, dim, IndexPolicy.from_settings(settings))
                    index.save(folder, store.generation())
                    actions.append(f"rebuilt the FAISS file from the {store.counts()['chunks']} vectors in SQLite")
            finally:
                store.close()
        actions += _remove_leftovers(folder)
        after = check(settings, embedder=embedder, holding_lock=True)
    finally:
        release_write_lock(lock)
    return RepairReport(actions, before, after)


_FAISS_CODES = {
    "faiss_damaged",
    "faiss_missing",
    "faiss_stale",
    "faiss_duplicate_ids",
    "faiss_extra",
    "faiss_missing_ids",
    "faiss_vectors_differ",
}
_KEYWORD_CODES = {"keyword_corrupt", "keyword_orphaned", "keyword_missing", "keyword_stale"}


def _manifest_dim(folder: Path) -> int | None:
    try:
        dim = read_manifest(folder).dim
    except (OSError, ValueError, TypeError):
        return None
    return dim if isinstance(dim, int) and dim > 0 else None


def _repair_store(store: Store, codes: set[str], dim: int | None) -> list[str]:
    """Delete orphans and unusable documents, fix counts, rebuild the keyword index; one transaction."""
    actions = []
    db = store.db
    with store._transaction():
        n = db.execute("DELETE FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)").rowcount
        if n:
            actions.append(f"deleted {_n(n, 'chunk')} that belonged to no document")
        if dim is not None:
            bad = [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT d.path FROM documents d JOIN chunks c ON c.doc_id = d.id "
                    "WHERE typeof(c.vector) != 'blob' OR length(c.vector) != ? ORDER BY d.path",
                    (dim * 4,),
                )
            ]
            for path in bad:
                store._delete_document(path)
            if bad:
                actions.append(
                    f"removed {_n(len(bad), 'document')} with damaged vectors (ingest adds them again): "
                    f"{_examples(bad)}"
                )
        empty = [
            r[0]
            for r in db.execute(
                "SELECT path FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.doc_id = d.id)"
                " ORDER BY path"
            )
        ]
        if empty:
            db.executemany("DELETE FROM documents WHERE path = ?", [(p,) for p in empty])
            actions.append(
                f"removed {_n(len(empty), 'document')} without chunks (ingest adds them again): {_examples(empty)}"
            )
        n = db.execute(
            "UPDATE documents SET n_chunks = (SELECT count(*) FROM chunks c WHERE c.doc_id = documents.id) "
            "WHERE n_chunks != (SELECT count(*) FROM chunks c WHERE c.doc_id = documents.id)"
        ).rowcount
        if n:
            actions.append(f"corrected the chunk count of {_n(n, 'document')}")
        if actions or codes & _KEYWORD_CODES:
            actions.append(f"rebuilt the keyword index from {store.rebuild_keyword_index()} chunks")
        if actions:
            store._bump_generation()
    return actions


def _remove_leftovers(folder: Path) -> list[str]:
    import shutil

    actions = []
    tmp = sorted(folder.glob("*.tmp"))
    for p in tmp:
        p.unlink(missing_ok=True)
    if tmp:
        actions.append(f"deleted {len(tmp)} temporary files left by an interrupted run")
    staging = leftover_folders(folder)
    for p in staging:
        shutil.rmtree(p, ignore_errors=True)
    if staging:
        actions.append(f"deleted {len(staging)} folders left by an interrupted rebuild")
    return actions
