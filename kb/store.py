"""The SQLite store: documents, chunks (with their vectors) and the FTS5 keyword index.

SQLite is the source of truth. Every change to a document (its row, chunks, vectors and
keyword entries) happens in one transaction, so a crash leaves either the old or the new
state, never a mix. The FAISS file is a cache derived from the vectors stored here.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ingest.types import Chunk

# 2: documents.ctime_ns and inode, so a same-size same-mtime replacement is noticed.
# 3: chunks.extra, JSON: where pages begin inside the chunk, and what a citation can name beyond
#    file and page (a slide, a sheet range, OCR confidence).
SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    format TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    n_pages INTEGER,
    n_chunks INTEGER NOT NULL DEFAULT 0,
    ingested_at REAL NOT NULL,
    ctime_ns INTEGER NOT NULL DEFAULT 0,
    inode INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    page_start INTEGER,
    page_end INTEGER,
    heading TEXT NOT NULL DEFAULT '[]',
    n_tokens INTEGER NOT NULL,
    vector BLOB NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ordinal);
CREATE TABLE IF NOT EXISTS failures (
    path TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    mtime REAL NOT NULL DEFAULT 0,
    ctime_ns INTEGER NOT NULL DEFAULT 0,
    inode INTEGER NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
);
-- Access groups (kb/groups.py): a document's groups, and the `kb ingest --group` rules that name them.
CREATE TABLE IF NOT EXISTS document_groups (
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    PRIMARY KEY (doc_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS document_groups_name ON document_groups(name, doc_id);
CREATE TABLE IF NOT EXISTS group_rules (
    root TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (root, name)
) WITHOUT ROWID;
"""
_FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, heading, body, tokenize = 'porter unicode61 remove_diacritics 2'
)
"""


@dataclass(frozen=True)
class DocumentRow:
    """A stored document."""

    id: int
    path: str
    sha256: str
    size: int
    mtime: float
    format: str
    title: str
    n_pages: int | None
    n_chunks: int
    ingested_at: float
    ctime_ns: int = 0  # status-change time and inode seen at ingest: any replacement of the file changes them
    inode: int = 0


@dataclass(frozen=True)
class UnreadFile:
    """A file an ingest met but did not index: one that failed (status "failed": it cannot be
    read) or one of a type kb does not read ("skipped"), as it was when last seen."""

    path: str
    status: str
    reason: str
    size: int
    mtime: float
    ctime_ns: int
    inode: int
    first_seen: float
    last_seen: float

    def same_file(self, size: int, mtime: float, ctime_ns: int, inode: int) -> bool:
        """Whether a file with this stat is the one seen then, unchanged (any rewrite changes ctime)."""
        return (self.size, self.mtime, self.ctime_ns, self.inode) == (size, mtime, ctime_ns, inode) and inode != 0


@dataclass(frozen=True)
class ChunkRow:
    """A stored chunk with the document it belongs to."""

    id: int
    doc_id: int
    path: str
    title: str
    ordinal: int
    text: str
    char_start: int
    char_end: int
    page_start: int | None
    page_end: int | None
    heading_path: tuple[str, ...]
    # Chunk.pages as "pages" ([offset, page] pairs) and Chunk.meta's keys; {} when there is none.
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def page_at(self, offset: int) -> int | None:
        """The page that character `offset` of the chunk text lies on."""
        page = self.page_start
        for start, p in self.extra.get("pages", ()):
            if start > offset:
                break
            page = p
        return page

    def pages_of(self, start: int, end: int) -> tuple[int | None, int | None]:
        """(first page, last page) of the characters [start, end) of the chunk text."""
        return self.page_at(start), self.page_at(max(start, end - 1))

    def location_json(self) -> dict:
        """Where the chunk comes from, as search hits and answer sources print it."""
        return {
            "path": self.path,
            "title": self.title,
            "page_start": self.page_start,
            "page_end": self.page_end,
            "heading": list(self.heading_path),
            # The file inside the file (an e-mail attachment, an archive member: "a.zip › b.pdf")
            # and the position a page number cannot give ("slide 3", "Budget!A2:F40"), or null.
            "member": self.extra.get("member"),
            "locator": self.extra.get("locator"),
            "chunk_id": self.id,
            # Confidence (0-1) when the text was read by OCR, else absent.
            **({"ocr": self.extra["ocr"]} if "ocr" in self.extra else {}),
        }


_CHUNK_SELECT = """
SELECT c.id, c.doc_id, d.path, d.title, c.ordinal, c.text, c.char_start, c.char_end,
       c.page_start, c.page_end, c.heading, c.extra
FROM chunks c JOIN documents d ON d.id = c.doc_id
"""


def _chunk_row(r: sqlite3.Row | tuple) -> ChunkRow:
    # Most chunks have no heading and no extra: those skip the JSON parser (every search reads ~20 rows).
    heading = () if r[10] == "[]" else _headings(r[10])
    return ChunkRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], heading, _extra(r[11]))


@functools.lru_cache(maxsize=4096)
def _headings(stored: str) -> tuple[str, ...]:
    # Cached: the passages of one section share their heading path (a tuple: nothing can change it).
    return tuple(json.loads(stored))


def _extra(stored: str | None) -> dict[str, Any]:
    """The chunk's extra JSON; a damaged value reads as none."""
    if not stored or stored == "{}":
        return {}
    try:
        value = json.loads(stored or "{}")
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def chunk_extra(chunk: Chunk) -> str:
    """What `chunks.extra` stores for a chunk."""
    extra: dict[str, Any] = dict(chunk.meta)
    if chunk.pages:
        extra["pages"] = [list(p) for p in chunk.pages]
    return json.dumps(extra, ensure_ascii=False, separators=(",", ":")) if extra else "{}"


def _heading_path(stored: str) -> tuple[str, ...]:
    """The heading path kept as JSON; a damaged value reads as no heading."""
    try:
        value = json.loads(stored)
    except (ValueError, TypeError):
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _doc_row(r: sqlite3.Row | tuple) -> DocumentRow:
    return DocumentRow(*r)


class Store:
    """One SQLite database file; WAL mode so readers keep working while a writer runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA + _FTS_SCHEMA + ";")
        self._migrate()

    def _migrate(self) -> None:
        """Bring an older store up to SCHEMA_VERSION in place (columns added, nothing rebuilt)."""
        version = self.get_meta("schema_version")
        if version == str(SCHEMA_VERSION):
            return
        with self._transaction():
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(documents)")}
            for name in ("ctime_ns", "inode"):
                if name not in columns:
                    self.db.execute(f"ALTER TABLE documents ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")
            if "extra" not in {r[1] for r in self.db.execute("PRAGMA table_info(chunks)")}:
                self.db.execute("ALTER TABLE chunks ADD COLUMN extra TEXT NOT NULL DEFAULT '{}'")
            if version is None or int(version) < SCHEMA_VERSION:
                self.set_meta("schema_version", str(SCHEMA_VERSION))

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    # --- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """A value from the meta table, or None."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a meta value (inside the caller's transaction, if any)."""
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def generation(self) -> int:
        """A counter bumped by every change to the chunk set; the FAISS cache records it."""
        return int(self.get_meta("generation") or 0)

    def _bump_generation(self) -> None:
        self.set_meta("generation", str(self.generation() + 1))

    # --- documents --------------------------------------------------------------------------
    def documents(self) -> list[DocumentRow]:
        """All stored documents, by path."""
        rows = self.db.execute(
            "SELECT id, path, sha256, size, mtime, format, title, n_pages, n_chunks, ingested_at, ctime_ns, inode "
            "FROM documents ORDER BY path"
        ).fetchall()
        return [_doc_row(r) for r in rows]

    def document(self, path: str) -> DocumentRow | None:
        """The stored document at `path`, or None."""
        row = self.db.execute(
            "SELECT id, path, sha256, size, mtime, format, title, n_pages, n_chunks, ingested_at, ctime_ns, inode "
            "FROM documents WHERE path = ?",
            (path,),
        ).fetchone()
        return _doc_row(row) if row else None

    def replace_document(
        self,
        *,
        path: str,
        sha256: str,
        size: int,
        mtime: float,
        format: str,
        title: str,
        n_pages: int | None,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        ctime_ns: int = 0,
        inode: int = 0,
        groups: Sequence[str] = (),
    ) -> tuple[list[int], list[int]]:
        """Store a document with its chunks and access groups, replacing any older version, in one
        transaction (so it is never searchable without its groups).

        Returns (removed chunk ids, added chunk ids) so the vector cache can follow.
        """
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk required")
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._transaction():
            removed = self._delete_document(path)
            cur = self.db.execute(
                "INSERT INTO documents(path, sha256, size, mtime, format, title, n_pages, n_chunks, ingested_at,"
                " ctime_ns, inode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (path, sha256, size, mtime, format, title, n_pages, len(chunks), time.time(), ctime_ns, inode),
            )
            doc_id = int(cur.lastrowid or 0)
            self.db.executemany(
                "INSERT OR IGNORE INTO document_groups(doc_id, name) VALUES (?, ?)", [(doc_id, g) for g in groups]
            )
            added = []
            for chunk, vec in zip(chunks, vecs, strict=True):
                heading = json.dumps(list(chunk.heading_path), ensure_ascii=False)
                cur = self.db.execute(
                    "INSERT INTO chunks(doc_id, ordinal, text, char_start, char_end, page_start, page_end,"
                    " heading, n_tokens, vector, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        doc_id,
                        chunk.ordinal,
                        chunk.text,
                        chunk.start,
                        chunk.end,
                        chunk.page_start,
                        chunk.page_end,
                        heading,
                        chunk.n_tokens,
                        vec.tobytes(),
                        chunk_extra(chunk),
                    ),
                )
                cid = int(cur.lastrowid or 0)
                added.append(cid)
                self.db.execute(
                    "INSERT INTO chunks_fts(rowid, title, heading, body) VALUES (?, ?, ?, ?)",
                    (cid, title, " ".join(chunk.heading_path), chunk.text),
                )
            self._bump_generation()
        return removed, added

    def update_location(self, old_path: str, new_path: str, mtime: float, ctime_ns: int = 0, inode: int = 0) -> None:
        """Record that a document moved (same content), keeping its chunks and vectors."""
        with self._transaction():
            self.db.execute(
                "UPDATE documents SET path = ?, mtime = ?, ctime_ns = ?, inode = ? WHERE path = ?",
                (new_path, mtime, ctime_ns, inode, old_path),
            )

    def touch(self, path: str, mtime: float, ctime_ns: int = 0, inode: int = 0) -> None:
        """Record new file times for an unchanged document, so the fast check skips it next time."""
        self.db.execute(
            "UPDATE documents SET mtime = ?, ctime_ns = ?, inode = ? WHERE path = ?", (mtime, ctime_ns, inode, path)
        )

    def remove_document(self, path: str) -> list[int]:
        """Delete a document and everything derived from it; returns the removed chunk ids."""
        with self._transaction():
            removed = self._delete_document(path)
            if removed or self.document(path) is None:
                self._bump_generation()
        return removed

    def remove_documents(self, paths: Iterable[str]) -> list[int]:
        """Delete several documents in one transaction (all or none); returns the removed chunk ids."""
        removed: list[int] = []
        with self._transaction():
            for path in paths:
                removed.extend(self._delete_document(path))
            self._bump_generation()
        return removed

    def rebuild_keyword_index(self) -> int:
        """Drop the FTS5 table and refill it from the chunks (inside the caller's transaction); returns rows."""
        self.db.execute("DROP TABLE IF EXISTS chunks_fts")
        self.db.execute(_FTS_SCHEMA)
        rows = self.db.execute(
            "SELECT c.id, d.title, c.heading, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id"
        )
        n = 0
        for cid, title, heading, text in rows.fetchall():
            self.db.execute(
                "INSERT INTO chunks_fts(rowid, title, heading, body) VALUES (?, ?, ?, ?)",
                (cid, title, " ".join(_heading_path(heading)), text),
            )
            n += 1
        return n

    def _delete_document(self, path: str) -> list[int]:
        row = self.db.execute("SELECT id FROM documents WHERE path = ?", (path,)).fetchone()
        if row is None:
            return []
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE doc_id = ?", (row[0],))]
        self.db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        self.db.execute("DELETE FROM chunks WHERE doc_id = ?", (row[0],))
        self.db.execute("DELETE FROM document_groups WHERE doc_id = ?", (row[0],))
        self.db.execute("DELETE FROM documents WHERE id = ?", (row[0],))
        return ids

    # --- files that were not indexed ---------------------------------------------------------
    def unread(self) -> list[UnreadFile]:
        """Files that failed or were skipped when last seen, by path (failures table)."""
        rows = self.db.execute(
            "SELECT path, status, reason, size, mtime, ctime_ns, inode, first_seen, last_seen"
            " FROM failures ORDER BY path"
        ).fetchall()
        return [UnreadFile(*r) for r in rows]

    def unread_counts(self) -> dict[str, int]:
        """How many files failed, and how many were skipped, when last seen."""
        rows = dict(self.db.execute("SELECT status, count(*) FROM failures GROUP BY status").fetchall())
        return {"failed": int(rows.get("failed", 0)), "skipped": int(rows.get("skipped", 0))}

    def update_unread(self, seen: Sequence[tuple[str, str, str, int, float, int, int]], forget: Iterable[str]) -> None:
        """Record files seen failing or skipped, (path, status, reason, size, mtime, ctime_ns, inode), and
        forget others (indexed now, or gone), in one transaction. The chunk set is not touched."""
        now = time.time()
        with self._transaction():
            self.db.executemany("DELETE FROM failures WHERE path = ?", [(p,) for p in forget])
            for path, status, reason, size, mtime, ctime_ns, inode in seen:
                self.db.execute(
                    "INSERT INTO failures(path, status, reason, size, mtime, ctime_ns, inode, first_seen, last_seen)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET status = excluded.status,"
                    " reason = excluded.reason, size = excluded.size, mtime = excluded.mtime,"
                    " ctime_ns = excluded.ctime_ns, inode = excluded.inode, last_seen = excluded.last_seen,"
                    " first_seen = CASE WHEN failures.reason = excluded.reason THEN failures.first_seen"
                    " ELSE excluded.first_seen END",
                    (path, status, reason, size, mtime, ctime_ns, inode, now, now),
                )

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every query inside sees one consistent state, whatever writers do."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> None:
            self.db.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type, exc, tb) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _transaction(self) -> Store._Tx:
        return Store._Tx(self.db)

    # --- chunks -----------------------------------------------------------------------------
    def chunks(self, ids: Iterable[int]) -> dict[int, ChunkRow]:
        """Chunks by id (missing ids are simply absent)."""
        ids = list(ids)
        out: dict[int, ChunkRow] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for r in self.db.execute(f"{_CHUNK_SELECT} WHERE c.id IN ({marks})", part):
                out[r[0]] = _chunk_row(r)
        return out

    def document_chunks(self, doc_id: int) -> list[ChunkRow]:
        """Every chunk of a document, in order."""
        rows = self.db.execute(f"{_CHUNK_SELECT} WHERE c.doc_id = ? ORDER BY c.ordinal", (doc_id,))
        return [_chunk_row(r) for r in rows]

    def vectors(self, ids: Sequence[int], dim: int) -> np.ndarray:
        """Stored vectors for the given chunk ids, in that order."""
        found = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ",".join("?" * len(part))
            for cid, blob in self.db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({marks})", part):
                found[cid] = blob
        out = np.zeros((len(ids), dim), dtype=np.float32)
        for i, cid in enumerate(ids):
            if cid in found:
                out[i] = np.frombuffer(found[cid], dtype=np.float32)
        return out

    def iter_vectors(self, batch: int = 10000, dim: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in id order and batches, for rebuilding the FAISS cache.

        With `dim`, damaged vectors (a blob of another length) are left out; `kb check` reports them.
        """
        last = -1
        while True:
            rows = self.db.execute(
                "SELECT id, vector FROM chunks WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            last = int(rows[-1][0])
            if dim is not None:
                rows = [r for r in rows if isinstance(r[1], bytes) and len(r[1]) == dim * 4]
                if not rows:
                    continue
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vecs = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            yield ids, vecs

    def keyword_search(self, match: str, k: int, allow: Collection[int] | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score, higher is better) for an FTS5 MATCH expression; with `allow`,
        only chunks of those document ids, ranked among themselves."""
        if not match or (allow is not None and not allow):
            return []
        where, args = "", [match]
        if allow is not None:
            where = " AND rowid IN (SELECT id FROM chunks WHERE doc_id IN (SELECT value FROM json_each(?)))"
            args.append(json.dumps(sorted(allow)))
        rows = self.db.execute(
            "SELECT rowid, bm25(chunks_fts, 2.0, 1.5, 1.0) AS s FROM chunks_fts WHERE chunks_fts MATCH ?"
            f"{where} ORDER BY s LIMIT ?",
            (*args, k),
        ).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def chunk_ids_of(self, doc_ids: Collection[int]) -> np.ndarray:
        """The chunk ids of these documents, ascending."""
        rows = self.db.execute(
            "SELECT id FROM chunks WHERE doc_id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (json.dumps(sorted(doc_ids)),),
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    # --- access groups (kb/groups.py) -----------------------------------------------------------
    def group_rules(self) -> list[tuple[str, str]]:
        """(root path, group) rules recorded by `kb ingest --group`, sorted."""
        return [(r[0], r[1]) for r in self.db.execute("SELECT root, name FROM group_rules ORDER BY root, name")]

    def add_group_rules(self, rules: Iterable[tuple[str, str]]) -> None:
        """Record (root path, group) rules."""
        with self._transaction():
            self.db.executemany("INSERT OR IGNORE INTO group_rules(root, name) VALUES (?, ?)", list(rules))

    def remove_group_rules(self, root: str, name: str | None = None) -> int:
        """Drop the rules of a root (only group `name`, when given); returns how many went."""
        with self._transaction():
            if name is None:
                cur = self.db.execute("DELETE FROM group_rules WHERE root = ?", (root,))
            else:
                cur = self.db.execute("DELETE FROM group_rules WHERE root = ? AND name = ?", (root, name))
        return cur.rowcount

    def set_document_groups(self, path: str, groups: Sequence[str]) -> bool:
        """Give a stored document exactly these groups; returns whether they changed."""
        with self._transaction():
            row = self.db.execute("SELECT id FROM documents WHERE path = ?", (path,)).fetchone()
            if row is None:
                return False
            doc_id = int(row[0])
            old = {r[0] for r in self.db.execute("SELECT name FROM document_groups WHERE doc_id = ?", (doc_id,))}
            if old == set(groups):
                return False
            self.db.execute("DELETE FROM document_groups WHERE doc_id = ?", (doc_id,))
            self.db.executemany(
                "INSERT INTO document_groups(doc_id, name) VALUES (?, ?)", [(doc_id, g) for g in sorted(set(groups))]
            )
        return True

    def groups_by_document(self) -> dict[int, tuple[str, ...]]:
        """Document id -> its groups (documents without groups are absent)."""
        out: dict[int, list[str]] = {}
        for doc_id, name in self.db.execute("SELECT doc_id, name FROM document_groups ORDER BY doc_id, name"):
            out.setdefault(int(doc_id), []).append(name)
        return {k: tuple(v) for k, v in out.items()}

    def documents_in_groups(self, groups: Collection[str], *, include_ungrouped: bool) -> set[int]:
        """Ids of the documents in any of `groups`, plus those without a group when asked."""
        sql = (
            "SELECT d.id FROM documents d WHERE EXISTS (SELECT 1 FROM document_groups g WHERE g.doc_id = d.id"
            " AND g.name IN (SELECT value FROM json_each(?)))"
        )
        if include_ungrouped:
            sql += " OR NOT EXISTS (SELECT 1 FROM document_groups g WHERE g.doc_id = d.id)"
        return {int(r[0]) for r in self.db.execute(sql, (json.dumps(sorted(groups)),))}

    def chunk_count(self) -> int:
        """Number of chunks (passages) stored."""
        return int(self.db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def counts(self) -> dict[str, int]:
        """Numbers of documents, chunks and keyword entries."""
        one = lambda q: int(self.db.execute(q).fetchone()[0])
        return {
            "documents": one("SELECT count(*) FROM documents"),
            "chunks": self.chunk_count(),
            "keyword_entries": one("SELECT count(*) FROM chunks_fts"),
        }

    def phrase_documents(self, phrase: str, *, prefix: bool = False) -> int:
        """How many documents hold the words of `phrase` in a row (FTS5 stemming; with `prefix`, the
        last word may be the start of a longer one: "Mac" finds "macOS")."""
        words = " ".join(re.findall(r"\w+", phrase))
        if not words:
            return 0
        match = '"' + words + '"' + ("*" if prefix else "")
        row = self.db.execute(
            "SELECT count(DISTINCT c.doc_id) FROM chunks_fts f JOIN chunks c ON c.id = f.rowid"
            " WHERE chunks_fts MATCH ?",
            (match,),
        ).fetchone()
        return int(row[0])

    def document_count(self) -> int:
        """Number of documents stored."""
        return int(self.db.execute("SELECT count(*) FROM documents").fetchone()[0])

    def term_matches(self, term: str, ids: Sequence[int]) -> tuple[int, set[int]]:
        """For one word: how many chunks contain it (FTS5 stemming), and which of `ids` do."""
        match = '"' + term.replace('"', "") + '"'
        df = int(self.db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (match,)).fetchone()[0])
        if not df or not ids:
            return df, set()
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid IN ({marks})", (match, *ids)
        ).fetchall()
        return df, {int(r[0]) for r in rows}
