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
_MAX_PAGE_NOTES = 5


def clean_pdf_text(text: str) -> str:
    """Normalise whitespace of extracted page text and undo line-end hyphenation."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_LIGATURES)
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    text = _SOFT_HYPHEN_BREAK.sub("", text).replace("\xad", "")
    text = _HYPHEN_BREAK.sub(lambda m: "" if m.group(1).islower() else m.group(0), text)
    return _MANY_NEWLINES.sub("\n\n", text).strip()


_DIGITS = re.compile(r"\d+")
_EDGE_LINES = 3  # running headers and footers sit within the first or last lines of a page


def _line_key(line: str) -> str:
    # "Page 3 of 10" and "Page 4 of 10" are the same running line.
    return _DIGITS.sub("#", " ".join(line.split()).lower())


def strip_running_lines(pages: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Drop running headers and footers: lines near a page's top or bottom that repeat
    (digits aside) on at least half of the pages of a document of three or more pages.

    Left in, they glue "Company - Handbook - Page 3 of 10" into every chunk, which pollutes
    search, answers and quotes.
    """
    if len(pages) < 3:
        return pages
    counts: dict[str, int] = {}
    for _, text in pages:
        lines = [ln for ln in text.split("\n") if ln.strip()]
        edge = {_line_key(ln) for ln in lines[:_EDGE_LINES] + lines[-_EDGE_LINES:]}
        for key in edge:
            counts[key] = counts.get(key, 0) + 1
    running = {key for key, n in counts.items() if n >= max(3, len(pages) / 2) and len(key) > 2}
    if not running:
        return pages
    out = []
    for number, text in pages:
        lines = text.split("\n")
        nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
        edge_rows = set(nonblank[:_EDGE_LINES] + nonblank[-_EDGE_LINES:])
        kept = [ln for i, ln in enumerate(lines) if not (i in edge_rows and _line_key(ln) in running)]
        out.append((number, "\n".join(kept).strip()))
    # A document whose every page is the same few lines (a one-line label repeated) has no
    # running lines: that text is its content.
    return out if any(text for _, text in out) else pages


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


def _unlock(reader, password: str) -> None:
    # Many "encrypted" PDFs only restrict printing or copying and open with the empty password.
    candidates = [""] + ([password] if password else [])
    for candidate in candidates:
        try:
            if reader.decrypt(candidate):
                return
        except NotImplementedError as exc:
            raise ParseError(f"unsupported PDF encryption: {str(exc)[:120]}") from exc
    raise EncryptedFile("encrypted; no working password (use --password)")


def _title(reader) -> str:
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
    from pypdf.errors import DependencyError

    try:
        return _parse(path, password)
    except DependencyError as exc:
        # pypdf decrypts AES only with the optional `cryptography` package installed.
        raise ParseError("AES-encrypted PDF; install the 'cryptography' package to read it") from exc


def _parse(path: Path, password: str) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    failures: list[str] = []
    pages: list[tuple[int, str]] = []
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
            except DependencyError:
                raise
            except Exception as exc:  # one bad page must not cost the rest of the file
                failures.append(f"page {index + 1}: text extraction failed ({type(exc).__name__}: {str(exc)[:80]})")
                continue
            pages.append((index + 1, clean_pdf_text(text or "")))
    for number, text in strip_running_lines(pages):
        builder.add(text, page=number)
    if n_pages == 0:
        raise ParseError("PDF has no pages")
    if builder.empty and failures:
        raise ParseError(f"text extraction failed on {len(failures)} of {n_pages} pages ({failures[0]})")
    notes = failures[:_MAX_PAGE_NOTES]
    if len(failures) > _MAX_PAGE_NOTES:
        notes.append(f"text extraction failed on {len(failures) - _MAX_PAGE_NOTES} more pages")
    summary = _summarise(pypdf_messages)
    if summary:
        notes.append(summary)
    return builder.build(
        path, "pdf", title=title, n_pages=n_pages, warnings=notes, empty_reason="no extractable text (scanned PDF?)"
    )
