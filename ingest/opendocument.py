"""OpenDocument files, read from their XML (content.xml, with lxml): .odt text with its heading
outline, .ods sheets as rows ("Sheet1!A2:D9"), .odp slides ("slide N") with speaker notes."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

from ingest.builder import DocumentBuilder
from ingest.errors import EncryptedFile, ParseError
from ingest.members import MAX_MEMBER_BYTES
from ingest.tables import add_table, cell_text
from ingest.types import ParsedDocument

_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
    "manifest": "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
}
_FORMATS = {"text": "odt", "spreadsheet": "ods", "presentation": "odp"}
_MAX_REPEAT = 1000  # a repeated row or cell with a value is written out at most this often
_SKIP = {"tracked-changes", "note", "annotation", "sequence-decls", "table-of-content", "alphabetical-index"}


def _q(prefix: str, name: str) -> str:
    return f"{{{_NS[prefix]}}}{name}"


_P, _H, _S, _TAB, _BREAK = (_q("text", n) for n in ("p", "h", "s", "tab", "line-break"))
_TABLE, _ROW, _CELL, _COVERED = (_q("table", n) for n in ("table", "table-row", "table-cell", "covered-table-cell"))
_ROW_GROUPS = {_q("table", n) for n in ("table-header-rows", "table-rows", "table-row-group")}


def _text(el) -> str:
    """The text of a paragraph-like element: spaces (text:s), tabs and line breaks kept."""
    parts: list[str] = []

    def walk(node) -> None:
        if node.text:
            parts.append(node.text)
        for child in node:
            local = child.tag.rsplit("}", 1)[-1] if isinstance(child.tag, str) else ""
            if child.tag == _S:
                parts.append(" " * min(int(child.get(_q("text", "c"), "1") or 1), 100))
            elif child.tag == _TAB:
                parts.append("\t")
            elif child.tag == _BREAK:
                parts.append("\n")
            elif local not in _SKIP:
                walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(el)
    return "\n".join(" ".join(line.split()) for line in "".join(parts).split("\n")).strip()


def _repeat(el, attr: str) -> int:
    try:
        return max(1, int(el.get(_q("table", attr), "1")))
    except ValueError:
        return 1


def _cell_value(cell) -> str:
    texts = [_text(p) for p in cell.iter(_P, _H)]
    value = " ".join(t for t in texts if t)
    if not value:
        raw = cell.get(_q("office", "value")) or cell.get(_q("office", "date-value")) or ""
        value = raw
    return cell_text(value)


def _rows(table) -> Iterator[tuple[int, list[str]]]:
    """(1-based row number, cell texts) of a table's rows holding a value; repeats expanded."""
    number = 0
    for row in _row_elements(table):
        repeat = _repeat(row, "number-rows-repeated")
        cells: list[str] = []
        for cell in row:
            if cell.tag not in (_CELL, _COVERED):
                continue
            value = _cell_value(cell) if cell.tag == _CELL else ""
            span = _repeat(cell, "number-columns-repeated")
            cells.extend([value] * (min(span, _MAX_REPEAT) if value else min(span, 1)))
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            number += repeat  # empty rows, often repeated a million times, cost nothing
            continue
        for _ in range(min(repeat, _MAX_REPEAT)):
            number += 1
            yield number, cells
        number += max(0, repeat - _MAX_REPEAT)


def _row_elements(el) -> Iterator:
    """The rows of this table in order (inside header-rows and row groups too), not those of
    tables nested in its cells."""
    for child in el:
        if child.tag == _ROW:
            yield child
        elif child.tag in _ROW_GROUPS:
            yield from _row_elements(child)


def _flow(builder: DocumentBuilder, container, stack: list[tuple[int, str]], title: list[str]) -> None:
    """Headings, paragraphs, lists and tables of a text body, in document order."""
    for el in container:
        tag = el.tag if isinstance(el.tag, str) else ""
        local = tag.rsplit("}", 1)[-1]
        path = tuple(t for _, t in stack)
        if tag == _H:
            text = " ".join(_text(el).split())
            if not text:
                continue
            try:
                level = int(el.get(_q("text", "outline-level"), "1"))
            except ValueError:
                level = 1
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, text))
            if not title:
                title.append(text)
            builder.add(text, heading_path=tuple(t for _, t in stack))
        elif tag == _P:
            builder.add(_text(el), heading_path=path)
        elif tag == _TABLE:
            rows = [cells for _, cells in _rows(el)]
            add_table(builder, rows, heading_path=path)
        elif local in _SKIP:
            continue
        else:  # lists, sections, frames, text boxes: their paragraphs in place
            _flow(builder, el, stack, title)


def _sheets(builder: DocumentBuilder, body, notes: list[str]) -> None:
    from ingest.xlsx import add_sheet

    for table in body.iter(_TABLE):
        if table.getparent() is not None and table.getparent().tag == _CELL:
            continue
        name = table.get(_q("table", "name")) or f"Sheet{len(notes) + 1}"
        count = add_sheet(builder, name, _rows(table))
        if count:
            notes.append(f"sheet {name}: {count} rows indexed")


def _slides(builder: DocumentBuilder, body) -> str:
    first = ""
    for number, page in enumerate(body.iter(_q("draw", "page")), start=1):
        meta = {"slide": number}
        frames = [f for f in page.iter(_q("draw", "frame")) if not _inside_notes(f)]
        title = ""
        for frame in frames:
            if frame.get(_q("presentation", "class")) == "title":
                title = " ".join(_text_of(frame).split())
                break
        first = first or title
        heading = (title or f"Slide {number}",)
        if title:
            builder.add(title, heading_path=heading, meta=meta)
        for frame in frames:
            if frame.get(_q("presentation", "class")) == "title":
                continue
            tables = list(frame.iter(_TABLE))
            if tables:
                for table in tables:
                    add_table(builder, [c for _, c in _rows(table)], heading_path=heading, meta=meta)
                continue
            builder.add(_text_of(frame), heading_path=heading, meta=meta)
        for notes in page.iter(_q("presentation", "notes")):
            text = "\n".join(
                _text_of(f) for f in notes.iter(_q("draw", "frame")) if f.get(_q("presentation", "class")) == "notes"
            )
            builder.add(text, heading_path=(*heading, "Speaker notes"), meta=meta)
    return first


def _inside_notes(el) -> bool:
    parent = el.getparent()
    while parent is not None:
        if parent.tag == _q("presentation", "notes"):
            return True
        parent = parent.getparent()
    return False


def _text_of(frame) -> str:
    return "\n".join(t for t in (_text(p) for p in frame.iter(_P, _H)) if t)


def _read(odf: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = odf.getinfo(name)
    except KeyError as exc:
        raise ParseError(f"corrupt OpenDocument file: {name} is missing") from exc
    if info.file_size > MAX_MEMBER_BYTES:
        raise ParseError(f"{name} unpacks to over {MAX_MEMBER_BYTES >> 20} MB; save a smaller file")
    return odf.read(info)


def parse_opendocument(path: Path) -> ParsedDocument:
    """An .odt, .ods or .odp file (which one is told by its content)."""
    from lxml import etree

    try:
        odf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ParseError("not a valid OpenDocument file (damaged, or not a zip archive)") from exc
    with odf:
        if "META-INF/manifest.xml" in odf.namelist() and b"encryption-data" in _read(odf, "META-INF/manifest.xml"):
            raise EncryptedFile("password-protected OpenDocument file; remove the password and save again")
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, recover=True)
        root = etree.fromstring(_read(odf, "content.xml"), parser)
        meta_title = ""
        if "meta.xml" in odf.namelist():
            meta = etree.fromstring(_read(odf, "meta.xml"), parser)
            meta_title = " ".join((meta.findtext(".//dc:title", "", _NS) or "").split()) if meta is not None else ""
    if root is None:
        raise ParseError("corrupt OpenDocument file: unreadable content.xml")
    body = root.find("office:body", _NS)
    kind = next((k for k in _FORMATS if body is not None and body.find(f"office:{k}", _NS) is not None), None)
    if body is None or kind is None:
        raise ParseError("not an OpenDocument text, spreadsheet or presentation")
    content = body.find(f"office:{kind}", _NS)
    builder = DocumentBuilder()
    notes: list[str] = []
    first: list[str] = []
    if kind == "text":
        _flow(builder, content, [], first)
    elif kind == "spreadsheet":
        _sheets(builder, content, notes)
    else:
        first.append(_slides(builder, content))
    title = meta_title or (first[0] if first else "")
    return builder.build(path, _FORMATS[kind], title=title[:300], warnings=notes, empty_reason="no text")
