"""Which parser reads which file: by extension, corrected by content where the extension lies."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from ingest.errors import EmptyDocument, EncryptedFile, ParseError, UnsupportedFormat
from ingest.types import ParsedDocument

SUPPORTED: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdown": "markdown",
    ".mkd": "markdown",
    ".txt": "text",
    ".text": "text",
    ".log": "text",
    ".rst": "text",
    ".org": "text",
    ".adoc": "text",
    ".asciidoc": "text",
    ".tex": "text",
    ".csv": "text",
    ".tsv": "text",
}

# Formats we know and refuse with a hint, rather than a bare "unsupported".
_HINTS = {
    ".doc": "legacy Word .doc is not supported; save it as .docx",
    ".dot": "legacy Word template is not supported; save it as .docx",
    ".docm": "macro-enabled .docm is not supported; save it as .docx",
    ".rtf": "RTF is not supported; save it as .docx or .pdf",
    ".odt": "OpenDocument text is not supported; save it as .docx or .pdf",
}
_LABELS = {"pdf": "PDF", "docx": "DOCX", "html": "HTML", "markdown": "Markdown", "text": "text file"}
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_OOXML = "EncryptedPackage".encode("utf-16-le")


def _parser(fmt: str) -> Callable[..., ParsedDocument]:
    # Imported on use: a command that never parses a PDF never loads pypdf.
    if fmt == "pdf":
        from ingest.pdf import parse_pdf

        return parse_pdf
    if fmt == "docx":
        from ingest.docx import parse_docx

        return parse_docx
    if fmt == "html":
        from ingest.html import parse_html

        return parse_html
    if fmt == "markdown":
        from ingest.markdown import parse_markdown

        return parse_markdown
    from ingest.text import parse_text

    return parse_text


def _is_docx_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def detect_format(path: Path, head: bytes) -> str:
    """The format to parse `path` as, from its extension and its first bytes."""
    ext = path.suffix.lower()
    # Content beats extension for the unmistakable magic numbers.
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04") and _is_docx_zip(path):
        return "docx"
    if head.startswith(_OLE2) and ext in (".docx", ".doc", ".pdf"):
        # Office wraps password-protected .docx files in an OLE2 container.
        with open(path, "rb") as fh:  # the marker sits near the start; never read a huge file whole
            start = fh.read(4 << 20)
        if _ENCRYPTED_OOXML in start:
            raise EncryptedFile("password-protected Office document; remove the password and save again")
        raise UnsupportedFormat(_HINTS[".doc"])
    if ext in _HINTS:
        raise UnsupportedFormat(_HINTS[ext])
    if ext not in SUPPORTED:
        raise UnsupportedFormat(f"unsupported file type '{ext}'" if ext else "unsupported file type (no extension)")
    return SUPPORTED[ext]


def _short(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    if len(message) > 120:
        message = message[:117] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def parse_file(path: Path, *, password: str = "") -> ParsedDocument:
    """Parse one file into a document; every failure is a ParseError with a one-line reason."""
    try:
        with path.open("rb") as handle:
            head = handle.read(1024)
    except OSError as exc:
        raise ParseError(f"cannot read file ({exc.strerror or type(exc).__name__})") from exc
    if not head:
        raise EmptyDocument("empty file")
    fmt = detect_format(path, head)
    try:
        if fmt == "pdf":
            return _parser(fmt)(path, password=password)
        return _parser(fmt)(path)
    except ParseError:
        raise
    except MemoryError as exc:
        raise ParseError("out of memory while parsing") from exc
    except RecursionError as exc:
        raise ParseError(f"corrupt {_LABELS[fmt]}: structure nested too deeply") from exc
    except OSError as exc:
        raise ParseError(f"cannot read file ({exc.strerror or _short(exc)})") from exc
    except ImportError as exc:
        raise ParseError(f"cannot read {_LABELS[fmt]}: Python package '{exc.name}' is missing") from exc
    except Exception as exc:  # parser libraries raise anything on damaged input
        raise ParseError(f"corrupt {_LABELS[fmt]}: {_short(exc)}") from exc
