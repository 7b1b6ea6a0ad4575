"""Access groups: which stored documents a caller may see.

A document belongs to the groups named for it at ingest:
- `kb ingest PATH --group NAME` records a rule "every document under PATH is in NAME", kept in
  the store, so later syncs of PATH (or of a folder above it) keep tagging it; `kb groups remove`
  drops a rule;
- a `.kbgroups` file (one group name per line, `#` comments) in the document's folder or in any
  folder above it.
A document with no group is public: every caller sees it, unless the `default_group` setting
names a group, in which case it counts as a member of that group only.

The groups of a document are written in the same transaction as its chunks, so a document is
never searchable before its groups apply. Filtering happens in retrieval (kb/retrieval.py,
`allow`): FAISS and FTS5 candidates are both restricted to the visible documents, so nothing
else reaches a prompt or a response.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kb.errors import InputError
from kb.store import Store

GROUPS_FILE = ".kbgroups"
EVERYTHING = "*"  # a caller in this group sees every document
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_group_name(name: str) -> str:
    """The name, or InputError saying why it cannot be a group."""
    if name == EVERYTHING or not _NAME.match(name):
        raise InputError(
            f"group {name!r}: a group name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def read_groups_file(path: Path) -> tuple[str, ...]:
    """The group names in a `.kbgroups` file; InputError naming the file when it is unreadable or wrong."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read groups file ({exc})") from exc
    names = []
    for i, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            names.append(check_group_name(text))
        except InputError as exc:
            raise InputError(f"{path}:{i}: {exc}") from None
    return tuple(dict.fromkeys(names))


@dataclass
class GroupResolver:
    """The groups of a file at ingest time: stored `--group` rules whose root holds it, plus the
    `.kbgroups` files of its folder and of every folder above it (read once per folder)."""

    rules: list[tuple[str, str]]  # (root path, group name)
    _folders: dict[Path, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def for_store(cls, store: Store) -> GroupResolver:
        """A resolver over the rules recorded in a store."""
        return cls(store.group_rules())

    def groups_for(self, path: Path) -> tuple[str, ...]:
        """Sorted group names of the file at `path` (absolute); InputError when a `.kbgroups` file is unreadable."""
        names = {name for root, name in self.rules if _under(path, Path(root))}
        for folder in path.parents:
            names.update(self._file_groups(folder))
        return tuple(sorted(names))

    def _file_groups(self, folder: Path) -> tuple[str, ...]:
        if folder not in self._folders:
            candidate = folder / GROUPS_FILE
            self._folders[folder] = read_groups_file(candidate) if candidate.is_file() else ()
        return self._folders[folder]


def _under(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


@dataclass(frozen=True)
class Access:
    """What one caller may see: the groups of their token, or everything (no tokens configured)."""

    groups: frozenset[str] | None  # None: every document
    name: str = ""  # the token's name, for logs and /v1/status

    @classmethod
    def everything(cls) -> Access:
        """Full access (the command line, or a server without tokens)."""
        return cls(None, "")

    @property
    def sees_all(self) -> bool:
        """Whether no document is hidden from this caller."""
        return self.groups is None or EVERYTHING in self.groups


def visible_documents(store: Store, access: Access, default_group: str = "") -> set[int] | None:
    """Ids of the documents `access` may see, or None when it may see all of them.

    A document without groups is visible to every caller when `default_group` is empty, else
    only to callers in `default_group`.
    """
    if access.sees_all:
        return None
    groups = set(access.groups or ())
    public = not default_group or default_group in groups
    return store.documents_in_groups(groups, include_ungrouped=public)


def parse_group_options(names: Iterable[str]) -> tuple[str, ...]:
    """Checked, de-duplicated group names from `--group` options."""
    return tuple(dict.fromkeys(check_group_name(n.strip()) for n in names))


@dataclass(frozen=True)
class GroupsReport:
    """The groups of a knowledge base: rules, and how many documents each group holds."""

    rules: list[tuple[str, str]]
    documents: dict[str, int]  # group -> documents in it
    ungrouped: int  # documents without a group

    def to_json(self) -> dict:
        """The documented JSON form (`kb groups --json`)."""
        return {
            "rules": [{"root": r, "group": g} for r, g in self.rules],
            "groups": self.documents,
            "ungrouped": self.ungrouped,
        }


def groups_report(store: Store) -> GroupsReport:
    """Rules and document counts per group."""
    by_doc = store.groups_by_document()
    counts: dict[str, int] = {}
    for names in by_doc.values():
        for n in names:
            counts[n] = counts.get(n, 0) + 1
    total = store.counts()["documents"]
    return GroupsReport(store.group_rules(), dict(sorted(counts.items())), total - len(by_doc))


def remove_rules(store: Store, root: Path, name: str | None = None) -> tuple[int, list[str]]:
    """Drop the `--group` rules of `root` (only `name`, when given) and re-derive the groups of the
    stored documents under it. Returns (rules removed, documents whose groups could not be
    re-derived because a `.kbgroups` file is unreadable; they keep their groups)."""
    key = str(root.resolve())
    removed = store.remove_group_rules(key, name)
    if not removed:
        raise InputError(f"{root}: no group rule{'' if name is None else ' for ' + name} recorded for this path")
    resolver = GroupResolver.for_store(store)
    kept = []
    for doc in store.documents():
        if _under(Path(doc.path), Path(key)):
            try:
                store.set_document_groups(doc.path, resolver.groups_for(Path(doc.path)))
            except InputError as exc:
                kept.append(str(exc))
    return removed, kept
