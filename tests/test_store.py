"""The SQLite store: chunk metadata kept and read back, and older stores brought up to date."""

from __future__ import annotations

import sqlite3

import numpy as np

from ingest.types import Chunk
from kb.store import SCHEMA_VERSION, Store


def _chunks() -> list[Chunk]:
    one = Chunk(0, "First page text. Second page text.", 0, 34, 9, 10, ("Intro",), 6, ((0, 9), (17, 10)), {"ocr": 0.9})
    two = Chunk(1, "Plain chunk.", 36, 48, 10, 10, (), 2)
    return [one, two]


def test_pages_and_meta_are_kept_per_chunk(tmp_path) -> None:
    store = Store(tmp_path / "kb.sqlite")
    _, ids = store.replace_document(
        path="/d/a.pdf",
        sha256="x",
        size=1,
        mtime=0.0,
        format="pdf",
        title="A",
        n_pages=10,
        chunks=_chunks(),
        vectors=np.zeros((2, 4), dtype=np.float32),
    )
    rows = store.chunks(ids)
    first, second = rows[ids[0]], rows[ids[1]]
    assert first.extra == {"ocr": 0.9, "pages": [[0, 9], [17, 10]]}
    assert first.page_at(0) == 9 and first.page_at(16) == 9 and first.page_at(17) == 10
    assert first.pages_of(17, 34) == (10, 10) and first.pages_of(0, 34) == (9, 10)
    assert second.extra == {} and second.page_at(5) == 10
    store.close()


def test_a_version_2_store_gains_the_extra_column(tmp_path) -> None:
    path = tmp_path / "kb.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE documents (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL,
            size INTEGER NOT NULL, mtime REAL NOT NULL, format TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
            n_pages INTEGER, n_chunks INTEGER NOT NULL DEFAULT 0, ingested_at REAL NOT NULL,
            ctime_ns INTEGER NOT NULL DEFAULT 0, inode INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL, ordinal INTEGER NOT NULL,
            text TEXT NOT NULL, char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, page_start INTEGER,
            page_end INTEGER, heading TEXT NOT NULL DEFAULT '[]', n_tokens INTEGER NOT NULL, vector BLOB NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '2');
        INSERT INTO documents VALUES (1, '/d/old.txt', 'h', 1, 0, 'text', 'Old', NULL, 1, 0, 0, 0);
        INSERT INTO chunks VALUES (1, 1, 0, 'old text', 0, 8, 4, 5, '[]', 2, x'00000000');
        """
    )
    db.commit()
    db.close()
    store = Store(path)
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    row = store.chunks([1])[1]
    assert row.text == "old text" and row.extra == {}
    assert row.page_at(3) == 4  # no page map: the chunk's first page
    store.close()
