"""EPUB e-books: the chapters in spine (reading) order, each through the HTML parser, under the
chapter's heading (from the book's table of contents when a file is one chapter)."""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path
from urllib.parse import unquote

from ingest.builder import DocumentBuilder
from ingest.errors import EncryptedFile, ParseError
from ingest.members import MAX_MEMBER_BYTES
from ingest.types import ParsedDocument

_NS = {
    "c": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
    "ncx": "http://www.daisy.org/z3986/2005/ncx/",
    "x": "http://www.w3.org/1999/xhtml",
    "epub": "http://www.idpf.org/2007/ops",
}
_HTML_TYPES = ("application/xhtml+xml", "text/html", "application/x-dtbook+xml")


def _read(book: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = book.getinfo(name)
    except KeyError as exc:
        raise ParseError(f"corrupt EPUB: {name} is missing") from exc
    if info.file_size > MAX_MEMBER_BYTES:
        raise ParseError(f"corrupt EPUB: {name} unpacks to over {MAX_MEMBER_BYTES >> 20} MB")
    with book.open(info) as fh:
        return fh.read(MAX_MEMBER_BYTES + 1)[:MAX_MEMBER_BYTES]


def _xml(data: bytes):
    from lxml import etree

    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(data, parser)
    if root is None:
        raise ParseError("corrupt EPUB: unreadable package file")
    return root


def _toc(book: zipfile.ZipFile, opf_dir: str, manifest: dict[str, tuple[str, str, str]], spine_toc: str) -> dict:
    """File path -> chapter titles in that file, from the EPUB 3 nav or the EPUB 2 NCX."""
    titles: dict[str, list[str]] = {}
    nav = next((href for href, _, props in manifest.values() if "nav" in props.split()), None)
    ncx = manifest.get(spine_toc, (None, "", ""))[0] or next(
        (href for href, kind, _ in manifest.values() if kind == "application/x-dtbncx+xml"), None
    )
    try:
        if nav:
            base = posixpath.dirname(nav)
            for a in _xml(_read(book, nav)).iterfind(".//x:nav//x:a", _NS):
                label = " ".join("".join(a.itertext()).split())
                href = (a.get("href") or "").split("#")[0]
                if label and href:
                    titles.setdefault(posixpath.normpath(posixpath.join(base, unquote(href))), []).append(label)
        elif ncx:
            base = posixpath.dirname(ncx)
            for point in _xml(_read(book, ncx)).iterfind(".//ncx:navPoint", _NS):
                label = " ".join("".join(point.findtext("ncx:navLabel/ncx:text", "", _NS)).split())
                content = point.find("ncx:content", _NS)
                href = (content.get("src") if content is not None else "") or ""
                href = href.split("#")[0]
                if label and href:
                    titles.setdefault(posixpath.normpath(posixpath.join(base, unquote(href))), []).append(label)
    except ParseError:
        return {}  # a broken table of contents costs the chapter titles, not the book
    return titles


def parse_epub(path: Path) -> ParsedDocument:
    """An .epub book; each chapter file's blocks in spine order, headed by its chapter title."""
    from ingest.html import decode_html, html_document

    try:
        book = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ParseError("not a valid EPUB (damaged, or not a zip archive)") from exc
    with book:
        names = set(book.namelist())
        if "META-INF/encryption.xml" in names and b"EncryptedData" in _read(book, "META-INF/encryption.xml"):
            raise EncryptedFile("DRM-protected EPUB: only books without DRM can be read")
        container = _xml(_read(book, "META-INF/container.xml"))
        rootfile = container.find(".//c:rootfile", _NS)
        if rootfile is None or not rootfile.get("full-path"):
            raise ParseError("corrupt EPUB: no package file named in META-INF/container.xml")
        opf_path = rootfile.get("full-path", "")
        opf = _xml(_read(book, opf_path))
        opf_dir = posixpath.dirname(opf_path)
        manifest: dict[str, tuple[str, str, str]] = {}
        for item in opf.iterfind(".//opf:manifest/opf:item", _NS):
            href = posixpath.normpath(posixpath.join(opf_dir, unquote(item.get("href", ""))))
            manifest[item.get("id", "")] = (href, item.get("media-type", ""), item.get("properties", ""))
        spine = opf.find(".//opf:spine", _NS)
        order = [ref.get("idref", "") for ref in (spine.iterfind("opf:itemref", _NS) if spine is not None else [])]
        toc = _toc(book, opf_dir, manifest, spine.get("toc", "") if spine is not None else "")
        title = " ".join((opf.findtext(".//dc:title", "", _NS) or "").split())
        builder = DocumentBuilder()
        warnings: list[str] = []
        for idref in order:
            href, kind, props = manifest.get(idref, ("", "", ""))
            if not href or kind not in _HTML_TYPES or "nav" in props.split() or href not in names:
                continue
            try:
                chapter = html_document(decode_html(_read(book, href)), Path(href))
            except ParseError as exc:
                if "no visible text" not in exc.reason:
                    warnings.append(f"{href}: not read ({exc.reason})")
                continue
            labels = toc.get(href, [])
            label = labels[0] if len(labels) == 1 else ""
            for block in chapter.blocks:
                heading = block.heading_path
                if label and heading[:1] != (label,):
                    heading = (label, *heading)
                builder.add(chapter.block_text(block), heading_path=heading, kind=block.kind)
    return builder.build(path, "epub", title=title[:300], warnings=warnings, empty_reason="no text in any chapter")
