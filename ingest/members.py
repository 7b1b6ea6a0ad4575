"""Files inside files (e-mail attachments, archive members): parsed by their own parsers into
the containing document, within limits that keep a zip bomb from taking the worker down.

One file on disk stays one document: a member's blocks join the container's document with a
heading path that starts with the member's name and `meta["member"]` naming it, so a citation
reads `mail.eml › report.pdf, p. 3`.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ingest.builder import DocumentBuilder

MAX_DEPTH = 3  # containers inside containers: mail.eml › files.zip › old.zip › a.pdf is the deepest read
MAX_MEMBERS = 1000  # files read out of one top-level file, all levels together
MAX_MEMBER_BYTES = 100 << 20  # one member, unpacked
MAX_TOTAL_BYTES = 512 << 20  # all members of one top-level file, unpacked
MAX_RATIO = 200  # unpacked/packed size above which a large member is taken for a zip bomb
_UNSAFE = re.compile(r"[^\w.\- ]+")


@dataclass
class Budget:
    """What is left to unpack for one top-level file, shared by every level below it."""

    members: int = MAX_MEMBERS
    bytes: int = MAX_TOTAL_BYTES


@dataclass
class Nesting:
    """How deep a file lies inside containers (0: the file on disk), and the shared budget."""

    depth: int = 0
    budget: Budget = field(default_factory=Budget)
    # How the top-level file is read, passed on to the files inside it (ingest/formats.parse_file).
    pdf_engine: str = "auto"
    ocr: Any = None  # ingest.ocr.OcrOptions, or None for the defaults

    def child(self) -> Nesting:
        """The nesting of a file found inside this one."""
        return Nesting(self.depth + 1, self.budget, self.pdf_engine, self.ocr)


class LimitReached(Exception):
    """The top-level file's budget of members or bytes is spent; the rest is not read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def claim(nesting: Nesting, size: int) -> None:
    """Take one member of `size` unpacked bytes from the budget, or raise LimitReached."""
    budget = nesting.budget
    if budget.members <= 0:
        raise LimitReached(f"more than {MAX_MEMBERS} files inside")
    if size > budget.bytes:
        raise LimitReached(f"more than {MAX_TOTAL_BYTES >> 20} MB unpacked")
    budget.members -= 1
    budget.bytes -= size


def safe_name(name: str) -> str:
    """A file name for a member on disk: its last path part, no odd characters, suffix kept."""
    base = PurePosixPath(name.replace("\\", "/")).name or "member"
    cleaned = _UNSAFE.sub("_", base).strip(" .") or "member"
    if len(cleaned) > 120:
        stem, dot, suffix = cleaned.rpartition(".")
        cleaned = (stem[:100] + dot + suffix[:16]) if dot else cleaned[:120]
    return cleaned


def add_member(
    builder: DocumentBuilder,
    name: str,
    data: bytes,
    nesting: Nesting,
    warnings: list[str],
    *,
    password: str = "",
) -> bool:
    """Parse `data` (a file named `name` inside the current file) into `builder`.

    A member that cannot be read adds a warning naming it and the reason, never an error: the
    rest of the container is still indexed. Returns whether the member added any text.
    """
    from ingest.errors import ParseError, UnsupportedFormat
    from ingest.formats import parse_file

    inner = nesting.child()
    if inner.depth > MAX_DEPTH:
        warnings.append(f"{name}: not read (more than {MAX_DEPTH} levels of files inside files)")
        return False
    with tempfile.TemporaryDirectory(prefix="kb-member-") as folder:
        path = Path(folder) / safe_name(name)
        path.write_bytes(data)
        try:
            doc = parse_file(path, password=password, nesting=inner, pdf_engine=inner.pdf_engine, ocr=inner.ocr)
        except UnsupportedFormat as exc:
            # The reason without its advice on renaming files or .kbignore, which is for files on disk.
            warnings.append(f"{name}: not read ({exc.reason.split(';')[0]})")
            return False
        except ParseError as exc:
            warnings.append(f"{name}: not read ({exc.reason})")
            return False
    builder.add_member(name, doc)
    warnings.extend(f"{name} › {w}" for w in doc.warnings)
    return True
