"""Which parser reads which file: by extension, corrected by content where the extension lies."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from ingest.errors import EmptyDocument, EncryptedFile, ParseError, UnsupportedFormat
from ingest.members import Nesting
from ingest.ocr import OcrOptions
from ingest.types import ParsedDocument

# Formats read by kb itself (Python packages only). Legacy Office files (LEGACY) are read too
# when LibreOffice is installed; detect_format decides.
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
    ".csv": "csv",
    ".tsv": "csv",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".epub": "epub",
    ".eml": "eml",
    ".msg": "msg",
    ".odt": "odt",
    ".ods": "ods",
    ".odp": "odp",
    ".rtf": "rtf",
    ".zip": "zip",
    # Images: their text is read by OCR (ingest/image.py).
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".tif": "image",
    ".tiff": "image",
    ".bmp": "image",
}

# Legacy binary Office files, converted by LibreOffice (ingest/legacy.py) to the format named.
LEGACY: dict[str, str] = {
    ".doc": "docx",
    ".dot": "docx",
    ".xls": "xlsx",
    ".xlt": "xlsx",
    ".ppt": "pptx",
    ".pps": "pptx",
}

_LABELS = {
    "pdf": "PDF",
    "docx": "DOCX",
    "html": "HTML",
    "markdown": "Markdown",
    "text": "text file",
    "csv": "CSV",
    "pptx": "PPTX",
    "xlsx": "XLSX",
    "epub": "EPUB",
    "eml": "e-mail",
    "msg": "Outlook message",
    "odt": "OpenDocument text",
    "ods": "OpenDocument spreadsheet",
    "odp": "OpenDocument presentation",
    "rtf": "RTF",
    "zip": "ZIP archive",
    "image": "image",
    "legacy": "legacy Office file",
}
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_OOXML = "EncryptedPackage".encode("utf-16-le")
_OOXML_PARTS = {"word/document.xml": "docx", "ppt/presentation.xml": "pptx", "xl/workbook.xml": "xlsx"}
_ODF_TYPES = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "application/epub+zip": "epub",
}
_IGNORE_HINT = "or add '*{ext}' to .kbignore to stop seeing this"
_KINDS = {
    "image": (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".heif", ".svg"),
    "media": (".wav", ".mp3", ".m4a", ".ogg", ".flac", ".mp4", ".mov", ".avi", ".mkv", ".webm"),
    "data": (".json", ".jsonl", ".ndjson", ".xml", ".yaml", ".yml", ".toml", ".ini", ".xsl", ".xslt"),
}
_HINTS = {
    ".docm": "macro-enabled Word .docm is not read; save it as .docx (Word: File › Save As)",
    ".dotx": "Word templates are not read; save it as .docx (Word: File › Save As)",
    ".pptm": "macro-enabled PowerPoint .pptm is not read; save it as .pptx (PowerPoint: File › Save As)",
    ".xlsb": "binary Excel .xlsb is not read; save it as .xlsx (Excel: File › Save As)",
    ".pages": "Apple Pages files are not read; export it as .docx or .pdf (Pages: File › Export To)",
    ".key": "Apple Keynote files are not read; export it as .pptx or .pdf (Keynote: File › Export To)",
    ".numbers": "Apple Numbers files are not read; export it as .xlsx or .csv (Numbers: File › Export To)",
    ".7z": "7-Zip archives are not read; unpack it (or repack it as .zip) and ingest the files",
    ".rar": "RAR archives are not read; unpack it (or repack it as .zip) and ingest the files",
    ".tar": "tar archives are not read; unpack it (or repack it as .zip) and ingest the files",
    ".gz": "gzip files are not read; unpack it and ingest the files",
}


def unsupported_reason(ext: str) -> str:
    """Why a file with this extension is skipped, and what the user can do about it."""
    if not ext:
        return (
            "unsupported file type (no extension): rename it with the extension of its content "
            "(.txt, .pdf, .docx, ...), or list it in .kbignore"
        )
    ignore = _IGNORE_HINT.format(ext=ext)
    if ext in _HINTS:
        return f"{_HINTS[ext]}, {ignore}"
    if ext in LEGACY:
        label = {"docx": "Word", "xlsx": "Excel", "pptx": "PowerPoint"}[LEGACY[ext]]
        return (
            f"legacy {label} {ext} needs LibreOffice to be read: install it so that `soffice` is on "
            f"the PATH, or save the file as {'.' + LEGACY[ext]}"
        )
    if ext in _KINDS["image"]:
        return f"image format {ext} is not read (OCR reads .png .jpg .jpeg .tif .tiff .bmp): save it as PNG, {ignore}"
    if ext in _KINDS["media"]:
        return f"audio or video file: not read; add its transcript as a text file, {ignore}"
    if ext in _KINDS["data"]:
        return f"data file ({ext}): not read as a document; save its text as .txt or its records as .csv, {ignore}"
    return f"unsupported file type '{ext}': save it as PDF, DOCX, HTML or text to index it, {ignore}"


def _parser(fmt: str) -> Callable[..., ParsedDocument]:
    # Imported on use: a command that never parses a PDF never loads pypdf.
    import importlib

    module, name = _PARSERS[fmt]
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


_PARSERS: dict[str, tuple[str, str]] = {
    "pdf": ("ingest.pdf", "parse_pdf"),
    "docx": ("ingest.docx", "parse_docx"),
    "html": ("ingest.html", "parse_html"),
    "markdown": ("ingest.markdown", "parse_markdown"),
    "text": ("ingest.text", "parse_text"),
    "csv": ("ingest.delimited", "parse_delimited"),
    "pptx": ("ingest.pptx", "parse_pptx"),
    "xlsx": ("ingest.xlsx", "parse_xlsx"),
    "epub": ("ingest.epub", "parse_epub"),
    "eml": ("ingest.mail", "parse_eml"),
    "msg": ("ingest.mail", "parse_msg"),
    "odt": ("ingest.opendocument", "parse_opendocument"),
    "ods": ("ingest.opendocument", "parse_opendocument"),
    "odp": ("ingest.opendocument", "parse_opendocument"),
    "rtf": ("ingest.rtf", "parse_rtf"),
    "zip": ("ingest.archive", "parse_zip"),
    "image": ("ingest.image", "parse_image"),
    "legacy": ("ingest.legacy", "parse_legacy"),
}
# Parsers that read files inside the file (attachments, members) and so take the nesting state.
_CONTAINERS = {"eml", "msg", "zip"}


def _zip_kind(path: Path) -> str | None:
    """'docx', 'pptx', 'xlsx', 'odt', 'ods', 'odp', 'epub', 'zip' for a readable zip, else None."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for part, kind in _OOXML_PARTS.items():
                if part in names:
                    return kind
            if "mimetype" in names:
                mimetype = archive.read("mimetype")[:100].decode("ascii", "replace").strip()
                if mimetype in _ODF_TYPES:
                    return _ODF_TYPES[mimetype]
            return "zip"
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, NotImplementedError, EOFError):
        return None


def _ole2_kind(path: Path) -> str:
    """What an OLE2 compound file holds: 'encrypted', 'msg', 'doc', 'xls', 'ppt' or ''."""
    with open(path, "rb") as fh:  # the marker sits near the start; never read a huge file whole
        start = fh.read(4 << 20)
    if _ENCRYPTED_OOXML in start:
        return "encrypted"
    try:
        import olefile

        with olefile.OleFileIO(str(path)) as ole:
            streams = {"/".join(entry) for entry in ole.listdir(streams=True, storages=True)}
    except Exception:  # olefile raises many types on damaged files; the extension decides then
        return ""
    if any(s.startswith("__substg1.0_") for s in streams):
        return "msg"
    if "WordDocument" in streams:
        return "doc"
    if "Workbook" in streams or "Book" in streams:
        return "xls"
    if "PowerPoint Document" in streams:
        return "ppt"
    return ""


def _legacy(ext: str) -> str:
    from ingest.legacy import soffice

    if soffice() is None:
        raise UnsupportedFormat(unsupported_reason(ext))
    return "legacy"


# What a file that claims to be something else really is, from its first bytes.
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"{\\rtf", "RTF"),
    (b"\x1f\x8b", "gzip"),
)


def looks_like(head: bytes) -> str | None:
    """The format a file's first bytes announce, for formats that say so unmistakably; else None."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    text = head.lstrip()[:15].lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "HTML"
    return None


def detect_format(path: Path, head: bytes) -> str:
    """The format to parse `path` as, from its extension and its first bytes.

    Raises UnsupportedFormat (the file is skipped, with what to do) or EncryptedFile.
    """
    ext = path.suffix.lower()
    # Content beats extension for the unmistakable magic numbers.
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        kind = _zip_kind(path)
        if kind is not None and (kind != "zip" or ext == ".zip"):
            return kind
    if head.startswith(_OLE2):
        kind = _ole2_kind(path)
        if kind == "encrypted":
            raise EncryptedFile("password-protected Office document; remove the password in Office and save again")
        if kind == "msg" or (not kind and ext == ".msg"):
            return "msg"
        if kind in ("doc", "xls", "ppt") or ext in LEGACY:
            return _legacy(f".{kind}" if kind else ext)
    if ext == ".pdf" and b"%PDF-" not in head:
        other = looks_like(head)
        if other:  # e.g. a photo saved with the wrong extension: say so rather than what pypdf chokes on
            raise ParseError(f"not a PDF (looks like {other})")
    if ext in LEGACY:
        return _legacy(ext)
    if ext not in SUPPORTED:
        raise UnsupportedFormat(unsupported_reason(ext))
    return SUPPORTED[ext]


def _short(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    if len(message) > 120:
        message = message[:117] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def parse_file(
    path: Path,
    *,
    password: str = "",
    nesting: Nesting | None = None,
    pdf_engine: str = "auto",
    on_page: Callable[[], None] | None = None,
    ocr: OcrOptions | None = None,
) -> ParsedDocument:
    """Parse one file into a document; every failure is a ParseError with a one-line reason.

    `nesting` is set when the file was found inside another one (an attachment, an archive
    member): it bounds how deep and how much such files are unpacked. `password` opens encrypted
    PDFs; `pdf_engine` is the library reading PDF text (ingest/pdf.py); `on_page` is called after
    each page a parser has read (a sign of progress on a long file); `ocr` says when pages and
    images are OCRed (ingest/ocr.py).
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(1024)
    except OSError as exc:
        raise ParseError(f"cannot read file ({exc.strerror or type(exc).__name__})") from exc
    if not head.strip() and len(head) < 1024:
        raise EmptyDocument("empty file" if not head else "empty file (only whitespace)")
    fmt = detect_format(path, head)
    try:
        if fmt in _CONTAINERS:
            inner = nesting or Nesting(pdf_engine=pdf_engine, ocr=ocr)
            return _parser(fmt)(path, password=password, nesting=inner)
        if fmt == "pdf":
            return _parser(fmt)(path, password=password, engine=pdf_engine, on_page=on_page, ocr=ocr)
        if fmt == "image":
            return _parser(fmt)(path, ocr=ocr, on_page=on_page)
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
        raise ParseError(
            f"cannot read {_LABELS[fmt]}: Python package '{exc.name}' is missing (reinstall kb: make install)"
        ) from exc
    except Exception as exc:  # parser libraries raise anything on damaged input
        raise ParseError(f"corrupt {_LABELS[fmt]}: {_short(exc)}") from exc
