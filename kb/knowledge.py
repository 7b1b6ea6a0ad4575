"""Opening a knowledge-base folder: manifest check, writer lock, store and vector index."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kb.config import Settings
from kb.embeddings import Embedder, load_embedder
from kb.errors import KBDamaged, KBEmpty, KBLocked, KBNotFound, ManifestMismatch
from kb.store import Store
from kb.vectors import IndexPolicy, IvfBuilder, VectorIndex

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
DB_FILE = "kb.sqlite"
LOCK_FILE = "write.lock"


@dataclass(frozen=True)
class Manifest:
    """What shaped the stored vectors and chunks; a knowledge base only opens with the same."""

    format_version: int
    embed_name: str
    embed_fingerprint: str
    dim: int
    chunk_tokens: int
    chunk_overlap: int

    @classmethod
    def for_settings(cls, settings: Settings, embedder: Embedder) -> Manifest:
        """The manifest the current settings would produce."""
        return cls(
            FORMAT_VERSION,
            embedder.name,
            embedder.fingerprint,
            embedder.dim,
            settings.chunk_tokens,
            settings.chunk_overlap,
        )

    def differences(self, other: Manifest) -> list[str]:
        """Human-readable list of fields that differ."""
        out = []
        for name in self.__dataclass_fields__:
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                out.append(f"{name}: built with {a!r}, now {b!r}")
        return out


class KnowledgeBase:
    """A knowledge base folder opened for reading, or for writing under an exclusive lock."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None, write: bool = False) -> None:
        self.settings = settings
        self.folder = settings.home
        self.embedder = embedder or load_embedder(
            settings.embed_model, threads=settings.threads, backend=settings.embed_backend
        )
        self.write = write
        self._lock: IO[str] | None = None
        self._vectors: VectorIndex | None = None
        manifest_path = self.folder / MANIFEST_FILE
        wanted = Manifest.for_settings(settings, self.embedder)
        if not manifest_path.is_file():
            if not write:
                raise KBNotFound(f"no knowledge base at {self.folder}; create one with `kb ingest FOLDER`")
            self.folder.mkdir(parents=True, exist_ok=True)
        if write:
            self._lock = acquire_write_lock(self.folder)
        if manifest_path.is_file():
            try:
                stored = _read_manifest(manifest_path)
            except (OSError, ValueError, TypeError) as exc:
                self.close()
                raise KBDamaged(
                    f"{manifest_path}: unreadable manifest ({exc}); `kb rebuild` re-creates the knowledge base"
                ) from exc
            diffs = stored.differences(wanted)
            if diffs:
                self.close()
                raise ManifestMismatch(
                    f"{self.folder}: built with other settings ({'; '.join(diffs)}). "
                    "Use the original settings, or rebuild with `kb rebuild` (re-reads every stored file), "
                    "or choose another folder with --kb."
                )
        self.manifest = wanted
        self.fusion = read_fusion(self.folder)
        try:
            self.store = Store(self.folder / DB_FILE)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise KBDamaged(f"{self.folder / DB_FILE}: cannot be read ({exc}); see `kb check`") from exc
        if write and not manifest_path.is_file():
            n = self.store.counts()["documents"]
            if n:
                self.close()
                raise KBDamaged(
                    f"{manifest_path}: missing, yet the store holds {n} documents built with unknown settings; "
                    "`kb rebuild` re-creates the knowledge base with the current ones"
                )
            # Written after the store exists: a folder with a manifest is a knowledge base.
            write_manifest(self.folder, wanted)

    def require_documents(self) -> None:
        """Raise KBEmpty, saying how to fill it, when the knowledge base holds no documents."""
        if self.store.counts()["documents"]:
            return
        unread = self.store.unread_counts()
        why = ""
        if unread["failed"] or unread["skipped"]:
            why = f" ({unread_summary(unread)}: `kb status --failed`)"
        raise KBEmpty(f"the knowledge base at {self.folder} is empty{why}; add documents with `kb ingest FOLDER`")

    @property
    def vectors(self) -> VectorIndex:
        """The FAISS index, loaded (or rebuilt from SQLite) on first use."""
        if self._vectors is None:
            self._vectors, rebuilt = VectorIndex.load_or_rebuild(
                self.folder, self.store, self.manifest.dim, IndexPolicy.from_settings(self.settings)
            )
            if rebuilt and self.write:
                self._vectors.save(self.folder, self.store.generation())
        return self._vectors

    def use_vectors(self, index: VectorIndex) -> None:
        """Search with `index` from now on (a server shares one loaded index among its readers)."""
        self._vectors = index

    def save_vectors(self, build: IvfBuilder | None = None) -> None:
        """Persist the FAISS cache (writers only), stamped with the store generation it matches.

        An IVF index that becomes due is made by `build` (default: in this process); the manifest
        records how the index was built (its "vector_index" key).
        """
        if self._vectors is not None and self.write:
            generation = self.store.generation()
            if self._vectors.size != self.store.counts()["chunks"]:
                # Interrupted between a store commit and the matching FAISS update (Ctrl-C, an
                # error): never stamp a cache that lags the store as current; rebuild it instead.
                policy = IndexPolicy.from_settings(self.settings)
                self._vectors = VectorIndex.rebuild(self.store, self.manifest.dim, policy)
            self._vectors.save(self.folder, generation, build)
            if read_index_layout(self.folder) != self._vectors.layout:
                write_index_layout(self.folder, self._vectors.layout)

    def close(self) -> None:
        """Save what needs saving and release the lock."""
        try:
            if hasattr(self, "store"):
                self.save_vectors()
                self.store.close()
        finally:
            if self._lock is not None:
                release_write_lock(self._lock)
                self._lock = None

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def acquire_write_lock(folder: Path, *, wait: float = 1.0) -> IO[str]:
    """Take the knowledge base's exclusive writer lock, or raise KBLocked.

    The lock is an flock on `write.lock`: the kernel drops it when the holder exits, even by
    SIGKILL, so a crash never leaves a stale lock. A short `wait` rides out a `kb check` probe.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(folder / LOCK_FILE, "a+")  # noqa: SIM115 - held open for the lock's lifetime
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise KBLocked(
                f"{folder}: another kb process ({holder}) is writing to this knowledge base; "
                "wait for it to finish (search and ask keep working meanwhile)"
            ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}")
    fh.flush()
    return fh


def release_write_lock(fh: IO[str]) -> None:
    """Release a lock taken with acquire_write_lock."""
    fcntl.flock(fh, fcntl.LOCK_UN)
    fh.close()


def writer_active(folder: Path) -> bool:
    """Whether some process holds the writer lock right now (probed without blocking anyone for long)."""
    path = folder / LOCK_FILE
    if not path.is_file():
        return False
    with open(path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def read_manifest(folder: Path) -> Manifest:
    """The manifest stored in a knowledge-base folder (raises OSError or ValueError if unreadable)."""
    return _read_manifest(folder / MANIFEST_FILE)


def _read_manifest(path: Path) -> Manifest:
    data = json.loads(path.read_text())
    fields = Manifest.__dataclass_fields__
    return Manifest(**{k: data.get(k) for k in fields})


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write a manifest atomically."""
    _write_json_atomic(folder / MANIFEST_FILE, {**manifest.__dict__, "created_at": time.time()})


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def read_fusion(folder: Path) -> dict[str, Any] | None:
    """The fusion setting `kb tune` recorded in the manifest (its "fusion" key), or None.

    The record is advisory: a missing, damaged or foreign one means "use the default fusion",
    never a refusal to open, so it is kept out of the Manifest fields that must match.
    """
    try:
        record = json.loads((folder / MANIFEST_FILE).read_text()).get("fusion")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("dense_weight"), int | float):
        return None
    if not 0.0 <= record["dense_weight"] <= 1.0:
        return None
    return record


def write_fusion(folder: Path, record: dict[str, Any] | None) -> None:
    """Record (or, with None, forget) the tuned fusion in the manifest, keeping every other field.

    Call it holding the writer lock; the file is replaced atomically.
    """
    path = folder / MANIFEST_FILE
    data = json.loads(path.read_text())
    if record is None:
        data.pop("fusion", None)
    else:
        data["fusion"] = record
    _write_json_atomic(path, data)


def read_index_layout(folder: Path) -> dict[str, Any] | None:
    """How the vector index was built, as the manifest records it ("vector_index"), or None."""
    try:
        record = json.loads((folder / MANIFEST_FILE).read_text()).get("vector_index")
    except (OSError, ValueError, AttributeError):
        return None
    return record if isinstance(record, dict) else None


def write_index_layout(folder: Path, layout: dict[str, Any]) -> None:
    """Record the vector index's layout (kb.vectors.ivf_layout) in the manifest, keeping every other field.

    Advisory, like "fusion": the index file itself is what is searched, so an unreadable manifest
    (which `kb check` reports) is left as it is. Call it holding the writer lock.
    """
    path = folder / MANIFEST_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(data, dict):
        return
    data["vector_index"] = layout
    _write_json_atomic(path, data)


def kb_exists(folder: Path) -> bool:
    """Whether a knowledge base has been created in this folder."""
    return (folder / MANIFEST_FILE).is_file()


def unread_summary(counts: dict[str, int]) -> str:
    """'3 files could not be read, 1 file was skipped (unsupported type)' from Store.unread_counts(); '' if none."""

    def files(n: int) -> str:
        return f"{n} file{'' if n == 1 else 's'}"

    parts = []
    if counts.get("failed"):
        parts.append(f"{files(counts['failed'])} could not be read")
    if counts.get("skipped"):
        verb = "was" if counts["skipped"] == 1 else "were"
        parts.append(f"{files(counts['skipped'])} {verb} skipped (unsupported type)")
    return ", ".join(parts)
