"""PDF files: text per page with PDFium (pypdfium2), pypdf as the fallback and for encryption
PDFium cannot open; encrypted files are opened with the empty or the given password.

Engines (the `pdf_engine` setting): "auto" reads with PDFium and falls back to pypdf for a file
PDFium cannot open or read, and for a page it fails on; "pdfium" and "pypdf" use one library
only. PDFium is a C library about twenty times faster than pypdf on text-heavy files, with the
same text (docs/pdf.md has the comparison). Both go through the same clean-up: ligatures,
line-end hyphenation, running headers and footers, bare page numbers.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.builder import DocumentBuilder
from ingest.errors import EncryptedFile, ParseError
from ingest.ocr import (
    OcrOptions,
    OcrText,
    OcrTimeout,
    OcrUnavailable,
    describe_error,
    load,
    recognize,
    scale_for,
    time_budget,
)
from ingest.types import ParsedDocument

PDF_ENGINES = ("auto", "pdfium", "pypdf")

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
# PDFium joins a word hyphenated across a line end and marks the hyphen U+FFFE ("in\ufffehome");
# turned back into pypdf's "-\n" so both engines meet the same hyphenation rule.
_PDFIUM_LINE_HYPHEN = "\ufffe"


def clean_pdf_text(text: str) -> str:
    """Normalise whitespace of extracted page text and undo line-end hyphenation."""
    text = text.replace(_PDFIUM_LINE_HYPHEN, "-\n")
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_LIGATURES)
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    text = _SOFT_HYPHEN_BREAK.sub("", text).replace("\xad", "")
    text = _HYPHEN_BREAK.sub(lambda m: "" if m.group(1).islower() else m.group(0), text)
    return _MANY_NEWLINES.sub("\n\n", text).strip()


_DIGITS = re.compile(r"\d+")
_EDGE_LINES = 3  # running headers and footers sit within the first or last lines of a page
# A line that is only a page number: "12", "- 12 -", "(12)", "Page 12", "12 |".
_PAGE_NUMBER = re.compile(r"(?:page\s+)?[-–—|(\[]?\s*(\d{1,4})\s*[-–—|)\]]?", re.IGNORECASE)


def _line_key(line: str) -> str:
    # "Page 3 of 10" and "Page 4 of 10" are the same running line.
    return _DIGITS.sub("#", " ".join(line.split()).lower())


def _edge_rows(lines: list[str]) -> list[int]:
    nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
    return sorted(set(nonblank[:_EDGE_LINES] + nonblank[-_EDGE_LINES:]))


def _page_number_offset(pages: list[tuple[int, str]]) -> int | None:
    """The offset between printed page numbers and page positions (0 when page 5 prints "5"),
    when a bare number at a page's edge follows the pages on at least a third of them."""
    votes: dict[int, int] = {}
    for number, text in pages:
        lines = text.split("\n")
        offsets = set()
        for i in _edge_rows(lines):
            m = _PAGE_NUMBER.fullmatch(lines[i].strip())
            if m:
                offsets.add(int(m.group(1)) - number)
        for offset in offsets:
            votes[offset] = votes.get(offset, 0) + 1
    if not votes:
        return None
    offset, n = max(votes.items(), key=lambda kv: (kv[1], -abs(kv[0])))
    return offset if n >= max(3, len(pages) / 3) else None


def strip_running_lines(pages: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Drop running headers and footers: lines near a page's top or bottom that repeat
    (digits aside) on at least half of the pages of a document of three or more pages, and
    bare page numbers there that count up with the pages.

    Left in, they glue "Company - Handbook - Page 3 of 10" into every chunk, which pollutes
    search, answers and quotes.
    """
    if len(pages) < 3:
        return pages
    counts: dict[str, int] = {}
    for _, text in pages:
        lines = text.split("\n")
        for key in {_line_key(lines[i]) for i in _edge_rows(lines)}:
            counts[key] = counts.get(key, 0) + 1
    running = {key for key, n in counts.items() if n >= max(3, len(pages) / 2) and len(key) > 2}
    offset = _page_number_offset(pages)
    if not running and offset is None:
        return pages
    out = []
    for number, text in pages:
        lines = text.split("\n")
        drop = set()
        for i in _edge_rows(lines):
            m = _PAGE_NUMBER.fullmatch(lines[i].strip())
            if _line_key(lines[i]) in running or (m and offset is not None and int(m.group(1)) - number == offset):
                drop.add(i)
        out.append((number, "\n".join(ln for i, ln in enumerate(lines) if i not in drop).strip()))
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


def _unlock(reader: Any, password: str) -> None:
    # Many "encrypted" PDFs only restrict printing or copying and open with the empty password.
    candidates = [""] + ([password] if password else [])
    for candidate in candidates:
        try:
            if reader.decrypt(candidate):
                return
        except NotImplementedError as exc:
            raise ParseError(f"unsupported PDF encryption: {str(exc)[:120]}") from exc
    raise EncryptedFile("encrypted; no working password (use --password)")


def _clean_title(title: object) -> str:
    if not isinstance(title, str):
        return ""
    return " ".join(_CONTROL.sub("", title).split())[:300]


def _title(reader: Any) -> str:
    try:
        meta = reader.metadata
        return _clean_title(meta.title if meta is not None else None)
    except Exception:  # unreadable metadata must not cost the text
        return ""


@dataclass
class PdfPages:
    """The cleaned text of each page of a PDF (running lines not yet removed), and how it was read."""

    n_pages: int
    title: str = ""
    pages: list[tuple[int, str]] = field(default_factory=list)  # (1-based page, text); failed pages absent
    failures: list[str] = field(default_factory=list)  # one line per page whose text could not be read
    notes: list[str] = field(default_factory=list)  # what else went wrong on the way
    engines: dict[str, int] = field(default_factory=dict)  # pages read by each library


class _PdfiumUnreadable(Exception):
    """PDFium could not open the file (damaged, or an encryption it does not handle)."""


class _PypdfPages:
    """pypdf opened on first use: the whole file for the "pypdf" engine, single pages for "auto"."""

    def __init__(self, path: Path, password: str) -> None:
        self.path = path
        self.password = password
        self._reader: Any = None

    def reader(self) -> Any:
        if self._reader is None:
            from pypdf import PdfReader

            reader = PdfReader(self.path, strict=False)
            if reader.is_encrypted:
                _unlock(reader, self.password)
            self._reader = reader
        return self._reader

    def text(self, index: int) -> str:
        return self.reader().pages[index].extract_text() or ""


def _page_failure(index: int, exc: Exception) -> str:
    return f"page {index + 1}: text extraction failed ({type(exc).__name__}: {str(exc)[:80]})"


Tick = Callable[[], None] | None


def _read_with_pypdf(path: Path, password: str, on_page: Tick = None) -> PdfPages:
    from pypdf.errors import DependencyError

    source = _PypdfPages(path, password)
    reader = source.reader()
    out = PdfPages(n_pages=len(reader.pages), title=_title(reader))
    for index in range(out.n_pages):
        try:
            text = source.text(index)
        except DependencyError:
            raise
        except Exception as exc:  # one bad page must not cost the rest of the file
            out.failures.append(_page_failure(index, exc))
            continue
        out.pages.append((index + 1, clean_pdf_text(text)))
        if on_page:
            on_page()
    out.engines["pypdf"] = len(out.pages)
    return out


def _open_pdfium(path: Path, password: str) -> Any:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    for candidate in [None] + ([password] if password else []):
        try:
            return pdfium.PdfDocument(str(path), password=candidate)
        except pdfium.PdfiumError as exc:
            if exc.err_code != pdfium_c.FPDF_ERR_PASSWORD:
                raise _PdfiumUnreadable(str(exc)[:120]) from exc
    raise EncryptedFile("encrypted; no working password (use --password)")


def _pdfium_text(doc: Any, index: int) -> str:
    page = doc[index]
    try:
        textpage = page.get_textpage()
        try:
            return str(textpage.get_text_range())
        finally:
            textpage.close()
    finally:
        page.close()


def _read_with_pdfium(path: Path, password: str, fallback: _PypdfPages | None, on_page: Tick = None) -> PdfPages:
    """Pages read by PDFium; a page it fails on is read by `fallback` (pypdf) when given."""
    doc = _open_pdfium(path, password)
    try:
        out = PdfPages(n_pages=len(doc), title=_clean_title(doc.get_metadata_value("Title")))
        for index in range(out.n_pages):
            text, engine, failure = _pdfium_or_fallback(doc, index, fallback)
            if text is not None:
                out.pages.append((index + 1, text))
                out.engines[engine] = out.engines.get(engine, 0) + 1
            else:
                out.failures.append(failure)
            if on_page:
                on_page()
        return out
    finally:
        doc.close()


_RTL = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")


def pdfium_text_is_doubtful(text: str) -> bool:
    """True for page text PDFium is known to garble where pypdf does not: a page whose lines are
    mostly single characters (glyphs placed one by one, as in some 10-K tables: "M\nE\nD\n..."),
    or right-to-left script (PDFium gives Arabic and Hebrew in visual, reversed order)."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) >= 20 and sum(len(ln.strip()) == 1 for ln in lines) > len(lines) / 2:
        return True
    letters = sum(ch.isalpha() for ch in text)
    return bool(letters) and len(_RTL.findall(text)) >= 0.2 * letters


def _pdfium_or_fallback(doc: Any, index: int, fallback: _PypdfPages | None) -> tuple[str | None, str, str]:
    """(cleaned text or None, the engine that read it, why it failed). With a fallback, a page
    PDFium fails on, or whose text it is known to garble, is read by pypdf."""
    text: str | None
    try:
        text = clean_pdf_text(_pdfium_text(doc, index))
        if fallback is None or not pdfium_text_is_doubtful(text):
            return text, "pdfium", ""
        failure = ""
    except Exception as exc:  # one bad page must not cost the rest of the file
        text, failure = None, _page_failure(index, exc)
    if fallback is None:
        return None, "", failure
    try:
        second = clean_pdf_text(fallback.text(index))
    except ParseError:
        raise
    except Exception as exc:
        return (text, "pdfium", "") if text is not None else (None, "", _page_failure(index, exc))
    if text is not None and not second:
        return text, "pdfium", ""
    return second, "pypdf", ""


def read_pages(path: Path, *, password: str = "", engine: str = "auto", on_page: Tick = None) -> PdfPages:
    """The cleaned text of every page with the given engine (see the module docstring); `on_page`
    is called as pages are read."""
    from pypdf.errors import DependencyError

    if engine not in PDF_ENGINES:
        raise ValueError(f"unknown PDF engine {engine!r}")
    try:
        with _pypdf_warnings() as pypdf_messages:
            out = _read(path, password, engine, on_page)
    except DependencyError as exc:
        # pypdf decrypts AES only with the optional `cryptography` package installed.
        raise ParseError("AES-encrypted PDF; install the 'cryptography' package to read it") from exc
    summary = _summarise(pypdf_messages)
    if summary:
        out.notes.append(summary)
    return out


def _read(path: Path, password: str, engine: str, on_page: Tick) -> PdfPages:
    if engine == "pypdf":
        return _read_with_pypdf(path, password, on_page)
    if engine == "pdfium":
        try:
            return _read_with_pdfium(path, password, None, on_page)
        except _PdfiumUnreadable as exc:
            raise ParseError(f"corrupt PDF: PDFium cannot open it ({exc})") from exc
    try:
        out = _read_with_pdfium(path, password, _PypdfPages(path, password), on_page)
    except (_PdfiumUnreadable, EncryptedFile) as exc:
        # A file PDFium cannot open (damage it does not repair, an encryption it does not know)
        # may still open in pypdf, which raises its own reason when it cannot either.
        out = _read_with_pypdf(path, password, on_page)
        if isinstance(exc, _PdfiumUnreadable):
            out.notes.append(f"read with pypdf: PDFium cannot open it ({exc})")
        return out
    if out.n_pages and not any(text for _, text in out.pages):
        # No text from PDFium at all: give pypdf its chance before the file is called empty.
        with contextlib.suppress(Exception):
            second = _read_with_pypdf(path, password, on_page)
            if any(text for _, text in second.pages):
                second.notes.append("read with pypdf: PDFium found no text")
                return second
    return out


def parse_pdf(
    path: Path, *, password: str = "", engine: str = "auto", on_page: Tick = None, ocr: OcrOptions | None = None
) -> ParsedDocument:
    """A PDF, one block per page with text; pages that fail to extract become warnings; pages
    without a usable text layer are OCRed (unless `ocr` says off) and marked with their confidence."""
    options = ocr or OcrOptions()
    read = read_pages(path, password=password, engine=engine, on_page=on_page)
    confidence: dict[int, float] = {}
    if options.mode != "off" and read.n_pages:
        confidence = ocr_pages(path, password, read, options, on_page)
    empty = "no extractable text (scanned PDF?)" if options.mode != "off" else _NO_TEXT_OCR_OFF
    return build_document(
        path, read, page_meta=lambda n: {"ocr": confidence[n]} if n in confidence else None, empty_reason=empty
    )


_NO_TEXT_OCR_OFF = "no extractable text (scanned PDF? ocr is off: set ocr = auto to read it)"
# A page is OCRed in "auto" when it shows an image and its text layer has fewer characters than
# this per square inch (a page of prose has 30-50; a Letter page is 93.5 square inches).
MIN_CHARS_PER_SQUARE_INCH = 1.0


def needs_ocr(text: str, width_pt: float, height_pt: float, has_image: bool) -> bool:
    """Whether a page's text layer is empty or far too short for its area, on a page with an image."""
    area = (width_pt / 72) * (height_pt / 72)
    return has_image and len(text.strip()) < max(20.0, MIN_CHARS_PER_SQUARE_INCH * area)


def _has_image(page: Any) -> bool:
    import pypdfium2.raw as pdfium_c

    return next(iter(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=3)), None) is not None


def ocr_pages(path: Path, password: str, read: PdfPages, options: OcrOptions, on_page: Tick) -> dict[int, float]:
    """OCR the pages that need it (all with mode "always"), putting OCR text in `read` where it
    says more than the text layer; returns {page: OCR confidence} for the pages whose text it gave.
    A page whose OCR fails or runs over its budget keeps its text layer and becomes a warning."""
    texts = dict(read.pages)
    try:
        doc = _open_pdfium(path, password)
    except (_PdfiumUnreadable, EncryptedFile):
        if not any(texts.values()):
            read.notes.append("OCR skipped: PDFium cannot open the file to render its pages")
        return {}
    confidence: dict[int, float] = {}
    failures: list[str] = []
    try:
        for index in range(len(doc)):
            number = index + 1
            layer = texts.get(number, "")
            page = doc[index]
            try:
                got = _ocr_page(page, layer, options)
            except OcrUnavailable as exc:
                read.notes.append(f"OCR skipped: {exc.reason}")
                break
            finally:
                page.close()
            if on_page and got is not None:  # a page OCRed is work done; a page that needed none is not
                on_page()
            if isinstance(got, str):
                failures.append(f"page {number}: {got}")
            elif got is not None and got.text and (options.mode == "always" or len(got.text) >= 2 * len(layer)):
                texts[number] = clean_pdf_text(got.text)
                confidence[number] = got.confidence
    finally:
        doc.close()
    read.notes.extend(failures[:_MAX_PAGE_NOTES])
    if len(failures) > _MAX_PAGE_NOTES:
        read.notes.append(f"OCR failed on {len(failures) - _MAX_PAGE_NOTES} more pages")
    if confidence:
        read.pages = sorted(texts.items())
        read.engines["ocr"] = len(confidence)
    return confidence


def _ocr_page(page: Any, layer: str, options: OcrOptions) -> OcrText | str | None:
    """The OCR of one page, None when it needs none, or why it failed."""
    width, height = page.get_size()
    if options.mode != "always" and not needs_ocr(layer, width, height, _has_image(page)):
        return None
    load()  # before the budget starts: loading the models is not the page's time
    try:
        with time_budget(options.page_timeout):
            bitmap = page.render(scale=scale_for(width, height, options.dpi / 72))
            return recognize(bitmap.to_numpy())
    except OcrTimeout:
        return f"OCR stopped after {options.page_timeout:g} s (ocr_page_timeout)"
    except (OcrUnavailable, MemoryError):
        raise
    except Exception as exc:  # a page the recogniser cannot take costs that page only
        return f"OCR failed ({describe_error(exc)})"


def build_document(
    path: Path,
    read: PdfPages,
    *,
    page_meta: Callable[[int], dict[str, Any] | None] | None = None,
    empty_reason: str = "no extractable text (scanned PDF?)",
) -> ParsedDocument:
    """The document made of `read`'s pages, running lines removed; `page_meta` gives a page's Block.meta."""
    builder = DocumentBuilder()
    for number, text in strip_running_lines(read.pages):
        builder.add(text, page=number, meta=page_meta(number) if page_meta else None)
    if read.n_pages == 0:
        raise ParseError("PDF has no pages")
    failures = read.failures
    if builder.empty and failures:
        raise ParseError(f"text extraction failed on {len(failures)} of {read.n_pages} pages ({failures[0]})")
    notes = failures[:_MAX_PAGE_NOTES]
    if len(failures) > _MAX_PAGE_NOTES:
        notes.append(f"text extraction failed on {len(failures) - _MAX_PAGE_NOTES} more pages")
    notes.extend(read.notes)
    return builder.build(
        path,
        "pdf",
        title=read.title,
        n_pages=read.n_pages,
        warnings=notes,
        empty_reason=empty_reason,
    )
