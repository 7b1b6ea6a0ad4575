"""PDF files: text per page with pypdf, encrypted files opened with the empty or given password."""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

from ingest.builder import DocumentBuilder
from ingest.errors import EncryptedFile, ParseError
from ingest.types import ParsedDocument

_LIGATURES = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "ft", "ﬆ": "st"})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufeff\ufffe\uffff]")
_SPACES = re.compile(r"[ \t\xa0\u2000-\u200a\u202f\u205f\u3000]+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_SOFT_HYPHEN_BREAK = re.compile(r"\xad\n")
# A hyphen at a line end between letters is joined only when the next word starts lowercase,
# so "exam-\nple" becomes "example" while "Jean-\nPierre" keeps its hyphen.
_HYPHEN_BREAK = re.compile(r"(?<=[^\W\d_])-\n(?=([^\W\d_]))")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def clean_pdf_text(text: str) -> str:
    """Normalise whitespace of extracted page text and undo line-end hyphenation."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_LIGATURES)
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    text = _SOFT_HYPHEN_BREAK.sub("", text).replace("\xad", "")
    text = _HYPHEN_BREAK.sub(lambda m: "" if m.group(1).islower() else m.group(0), text)
    return _MANY_NEWLINES.sub("\n\n", text).strip()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _pypdf_warnings() -> Iterator[list[str]]:
    """Gather what pypdf logs or warns about a damaged file instead of letting it reach stderr."""
    logger = logging.getLogger("pypdf")
    handler = _Collect()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield handler.messages
            handler.messages.extend(str(w.message) for w in caught)
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _summarise(messages: list[str]) -> str | None:
    if not messages:
        return None
    first = " ".join(messages[0].split())[:120]
    return f"pypdf reported {len(messages)} problem(s) reading the file (first: {first})"


def _unlock(reader, password: str) -> None:  # noqa: ANN001 - pypdf.PdfReader, imported lazily
    from pypdf.errors import DependencyError

    # Many "encrypted" PDFs only restrict printing or copying and open with the empty password.
    candidates = [""] + ([password] if password else [])
    for candidate in candidates:
        try:
            if reader.decrypt(candidate):
                return
        except DependencyError as exc:
            raise ParseError("AES-encrypted PDF; install the 'cryptography' package to read it") from exc
        except NotImplementedError as exc:
            raise ParseError(f"unsupported PDF encryption: {str(exc)[:120]}") from exc
    raise EncryptedFile("encrypted; no working password (use --password)")


def _title(reader) -> str:  # noqa: ANN001
    try:
        meta = reader.metadata
        title = meta.title if meta is not None else None
    except Exception:  # unreadable metadata must not cost the text
        return ""
    if not isinstance(title, str):
        return ""
    return " ".join(_CONTROL.sub("", title).split())[:300]


def parse_pdf(path: Path, *, password: str = "") -> ParsedDocument:
    """A PDF, one block per page with text; pages that fail to extract become warnings."""
    from pypdf import PdfReader

    notes: list[str] = []
    builder = DocumentBuilder()
    with _pypdf_warnings() as pypdf_messages:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            _unlock(reader, password)
        n_pages = len(reader.pages)
        title = _title(reader)
        for index in range(n_pages):
            try:
                text = reader.pages[index].extract_text()
            except Exception as exc:  # one bad page must not cost the rest of the file
                notes.append(f"page {index + 1}: text extraction failed ({type(exc).__name__}: {str(exc)[:80]})")
                continue
            builder.add(clean_pdf_text(text or ""), page=index + 1)
    summary = _summarise(pypdf_messages)
    if summary:
        notes.append(summary)
    if n_pages == 0:
        raise ParseError("PDF has no pages")
    return builder.build(
        path, "pdf", title=title, n_pages=n_pages, warnings=notes, empty_reason="no extractable text (scanned PDF?)"
    )
