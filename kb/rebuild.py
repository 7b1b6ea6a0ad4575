"""Rebuild: re-read every stored file with the current settings into a fresh knowledge base.

Needed after changing the embedding model or the chunking settings (the manifest refuses the
old folder). The new knowledge base is built in a hidden sibling folder while the old one
stays usable (readers keep answering; writers are refused by the lock), then the two folders
are exchanged in one atomic rename. A rebuild that fails, is interrupted or is killed leaves
the old knowledge base untouched; its half-built folder is cleared by the next rebuild.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kb.config import Settings
from kb.embeddings import Embedder
from kb.errors import InputError, KBNotFound
from kb.indexer import IngestReport, Progress, WorkProgress, ingest
from kb.knowledge import DB_FILE, KnowledgeBase, acquire_write_lock, release_write_lock
from kb.store import Store


@dataclass
class RebuildReport:
    """The outcome of a rebuild."""

    ingest: IngestReport
    missing: list[str] = field(default_factory=list)  # stored documents whose file is gone
    before: dict[str, int] = field(default_factory=dict)  # counts of the old knowledge base
    after: dict[str, int] = field(default_factory=dict)  # counts of the new one (if swapped)
    swapped: bool = False
    seconds: float = 0.0

    @property
    def lost(self) -> list[str]:
        """Documents the new knowledge base would not have: missing files and files that failed."""
        return sorted([*self.missing, *(r.path for r in self.ingest.failed)])


def staging_folder(home: Path) -> Path:
    """Where a rebuild of `home` is built (a hidden sibling, so the final rename stays on one filesystem)."""
    return home.parent / f".{home.name}.rebuild-{os.getpid()}"


def leftover_folders(home: Path) -> list[Path]:
    """Staging folders left behind by killed rebuilds."""
    return sorted(home.parent.glob(f".{home.name}.rebuild-*"))


def rebuild(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    on_work: WorkProgress | None = None,
    allow_losses: bool = False,
    isolate: bool = True,
) -> RebuildReport:
    """Re-read every stored file with `settings` into a fresh knowledge base and swap it in.

    If any stored document would be lost (its file is gone, or it no longer parses) nothing is
    swapped unless `allow_losses`; the report lists them. Raises InputError up front when
    files are missing and losses are not allowed, before any work is done.
    """
    started = time.monotonic()
    home = settings.home.resolve()  # swap the real folder, not a symlink to it
    if not (home / DB_FILE).is_file():
        raise KBNotFound(f"no knowledge base at {home}; nothing to rebuild")
    lock = acquire_write_lock(home)
    try:
        old = Store(home / DB_FILE)
        try:
            documents, before, rules = old.documents(), old.counts(), old.group_rules()
        finally:
            old.close()
        paths = [Path(d.path) for d in documents]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing and not allow_losses:
            raise InputError(
                f"{len(missing)} stored document(s) no longer exist (first: {missing[0]}); "
                "remove them with `kb remove`, or pass --allow-losses to drop them"
            )
        for stale in leftover_folders(home):
            shutil.rmtree(stale, ignore_errors=True)
        staging = staging_folder(home)
        with KnowledgeBase(dataclasses.replace(settings, home=staging), embedder=embedder, write=True) as new:
            # The `--group` rules come along, so every document gets the same groups again.
            new.store.add_group_rules(rules)
            report = ingest(new, [p for p in paths if p.is_file()], progress=progress, on_work=on_work, isolate=isolate)
            after = new.store.counts()
        result = RebuildReport(report, missing, before, after, seconds=0.0)
        if result.lost and not allow_losses:
            shutil.rmtree(staging, ignore_errors=True)
        else:
            exchange_folders(staging, home)
            result.swapped = True
            shutil.rmtree(staging, ignore_errors=True)  # the old knowledge base, now at the staging path
    except BaseException:
        # Interrupted or failed: the old knowledge base was never touched. The staging folder
        # is removed here when possible, else by the next rebuild.
        if "staging" in locals():
            shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        release_write_lock(lock)
    result.seconds = time.monotonic() - started
    return result


def exchange_folders(a: Path, b: Path) -> None:
    """Swap two folders atomically (Linux renameat2 RENAME_EXCHANGE); elsewhere, three quick renames."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            renameat2 = libc.renameat2
        except (OSError, AttributeError):
            renameat2 = None
        if renameat2 is not None:
            at_fdcwd, rename_exchange = -100, 2
            if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
                return
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise OSError(err, os.strerror(err), str(b))
    # Not atomic: for an instant `b` does not exist (a reader opening it then is told there is
    # no knowledge base and can simply retry).
    aside = b.parent / f".{b.name}.swap-{os.getpid()}"
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)
