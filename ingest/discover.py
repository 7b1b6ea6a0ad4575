"""Find the files under the paths a user names, in a stable order, without junk or loops."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

_JUNK_NAMES = {"thumbs.db", "desktop.ini", ".ds_store"}
IGNORE_FILE = ".kbignore"


def read_ignore(folder: Path) -> tuple[str, ...]:
    """Patterns from `folder/.kbignore`: one glob per line (`*.tmp`, `drafts/`), `#` comments.

    A pattern applies to names in that folder and every folder below it; a trailing `/`
    matches folders only.
    """
    try:
        lines = (folder / IGNORE_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def is_ignored(name: str, is_dir: bool, patterns: tuple[str, ...]) -> bool:
    """Whether a .kbignore pattern matches this file or folder name."""
    for pat in patterns:
        if pat.endswith("/"):
            if is_dir and fnmatch.fnmatch(name, pat[:-1]):
                return True
        elif fnmatch.fnmatch(name, pat):
            return True
    return False


def is_junk(name: str) -> bool:
    """Hidden files, Office lock files (~$x.docx) and OS clutter."""
    return name.startswith(".") or name.startswith("~$") or name.lower() in _JUNK_NAMES


def unreadable_folder(exc: OSError) -> str:
    """The one-line reason reported for a folder `discover` could not list."""
    return f"cannot read folder ({exc.strerror or exc})"


def discover(paths: list[Path], *, on_error: Callable[[Path, OSError], None] | None = None) -> Iterator[Path]:
    """Every regular file under `paths`, sorted per folder; raises FileNotFoundError up front.

    A file named explicitly is yielded even if hidden. Symlinked folders are followed once
    (loops are cut); unreadable folders go to `on_error` when given, else are skipped.
    """
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
    return _walk_all(list(paths), on_error)


def _walk_all(paths: list[Path], on_error: Callable[[Path, OSError], None] | None) -> Iterator[Path]:
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    for path in paths:
        try:
            st = path.stat()
        except OSError as exc:
            if on_error:
                on_error(path, exc)
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(path, st, seen_dirs, seen_files, on_error)
        elif stat.S_ISREG(st.st_mode) and _first_visit(st, seen_files):
            yield path


def _first_visit(st: os.stat_result, seen: set[tuple[int, int]]) -> bool:
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True


def _walk_dir(
    root: Path,
    root_stat: os.stat_result,
    seen_dirs: set[tuple[int, int]],
    seen_files: set[tuple[int, int]],
    on_error: Callable[[Path, OSError], None] | None,
) -> Iterator[Path]:
    # Depth-first over name-sorted entries, so the output is in path order. An explicit stack
    # of iterators, not recursion; a folder already visited (a symlink loop, a path given
    # twice) is not entered again.
    if not _first_visit(root_stat, seen_dirs):
        return
    stack = [(_entries(root, on_error), read_ignore(root))]
    while stack:
        entries, patterns = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        try:
            st = entry.stat()  # follows symlinks; a broken link raises and is skipped
        except OSError:
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_ignored(entry.name, is_dir, patterns):
            continue
        if is_dir:
            if _first_visit(st, seen_dirs):
                sub = Path(entry.path)
                stack.append((_entries(sub, on_error), patterns + read_ignore(sub)))
        elif stat.S_ISREG(st.st_mode) and _first_visit(st, seen_files):
            # FIFOs, sockets and devices are never yielded: reading one could block forever.
            yield Path(entry.path)


def _entries(folder: Path, on_error: Callable[[Path, OSError], None] | None) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not is_junk(e.name)), key=lambda e: e.name)
    except OSError as exc:
        if on_error:
            on_error(folder, exc)
        entries = []
    return iter(entries)
