"""Word .docx files: paragraphs and tables in document order, headings from paragraph styles."""

from __future__ import annotations

import contextlib
import re
import zipfile
from pathlib import Path

from ingest.builder import DocumentBuilder
from ingest.errors import ParseError
from ingest.types import ParsedDocument

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_P, _TBL, _TR, _TC = f"{{{W}}}p", f"{{{W}}}tbl", f"{{{W}}}tr", f"{{{W}}}tc"
_SDT, _SDT_CONTENT, _CUSTOM_XML = f"{{{W}}}sdt", f"{{{W}}}sdtContent", f"{{{W}}}customXml"
_T, _TAB, _BR, _CR, _NB_HYPHEN = (f"{{{W}}}{n}" for n in ("t", "tab", "br", "cr", "noBreakHyphen"))
_HEADING_NAME = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)
_MAX_LEVEL = 9
_SPACES = re.compile(r"[ \t\xa0]+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")

_xpath_cache: dict[str, object] = {}


def _xpath(expr: str):
    if expr not in _xpath_cache:
        from lxml import etree

        _xpath_cache[expr] = etree.XPath(expr, namespaces={"w": W, "mc": MC})
    return _xpath_cache[expr]


# Run content anywhere in the paragraph (hyperlinks, tracked insertions, content controls,
# fields), but not the VML fallback copy of a text box, which would repeat its text.
_RUN_CONTENT = (
    ".//w:r/*[self::w:t or self::w:tab or self::w:br or self::w:cr or self::w:noBreakHyphen]"
    "[not(ancestor::mc:Fallback)]"
)


def _paragraph_text(p) -> str:
    parts = []
    for el in _xpath(_RUN_CONTENT)(p):
        tag = el.tag
        if tag == _T:
            parts.append(el.text or "")
        elif tag == _TAB:
            parts.append("\t")
        elif tag == _NB_HYPHEN:
            parts.append("-")
        elif el.get(f"{{{W}}}type") != "page":  # w:br, w:cr
            parts.append("\n")
    return _SPACE_AROUND_NEWLINE.sub("\n", _SPACES.sub(" ", "".join(parts))).strip()


def _blocks_in(container):
    """Paragraphs and tables of a body or cell, unwrapping content controls and custom XML."""
    for child in container.iterchildren():
        if child.tag in (_P, _TBL):
            yield child
        elif child.tag == _SDT:
            for content in child.iterchildren(_SDT_CONTENT):
                yield from _blocks_in(content)
        elif child.tag == _CUSTOM_XML:
            yield from _blocks_in(child)


def _cell_text(tc) -> str:
    parts = []
    for child in _blocks_in(tc):
        if child.tag == _P:
            parts.append(_paragraph_text(child))
        else:  # a table inside a cell: its rows, plainly
            parts.append("; ".join(" | ".join(c for c in row if c) for row in _table_grid(child)[1]))
    return " ".join(" ".join(parts).split())


def _int_attr(values: list) -> int:
    try:
        return max(1, min(int(values[0]), 1000)) if values else 1
    except ValueError:
        return 1


def _table_grid(tbl) -> tuple[int, list[list[str]]]:
    """(leading rows marked as repeating header rows, rows of cells), one cell per grid column.

    Cells are read straight from the XML: python-docx's grid logic fails on some real files
    (irregular gridSpan). A horizontally merged cell fills the columns it spans; a vertically
    merged one repeats the text of the cell where the merge starts, so each row stands alone.
    """
    rows: list[list[str]] = []
    header_rows = 0
    above: dict[int, str] = {}  # column -> text of the cell a vertical merge continues
    for tr in _xpath("./w:tr | ./w:sdt/w:sdtContent/w:tr | ./w:customXml/w:tr")(tbl):
        cells: list[str] = []
        is_header = len(rows) == header_rows and bool(_xpath("./w:trPr/w:tblHeader")(tr))
        for tc in _xpath("./w:tc | ./w:sdt/w:sdtContent/w:tc | ./w:customXml/w:tc")(tr):
            span = _int_attr(_xpath("./w:tcPr/w:gridSpan/@w:val")(tc))
            merge = _xpath("./w:tcPr/w:vMerge")(tc)
            col = len(cells)
            continues = bool(merge) and merge[0].get(f"{{{W}}}val") in (None, "continue")
            text = above.get(col, "") if continues else _cell_text(tc)
            for c in range(col, col + span):
                above[c] = text
            # A header cell names every column it spans; a value is given once.
            cells.extend([text] + [text if is_header else ""] * (span - 1))
        if not any(cells):
            continue
        if is_header:
            header_rows += 1
        rows.append(cells)
    return header_rows, rows


def _add_table(builder: DocumentBuilder, tbl, heading_path: tuple[str, ...]) -> None:
    """A table as row blocks, each value named by its column (ingest/tables.py)."""
    from ingest.tables import add_table

    header_rows, rows = _table_grid(tbl)
    if header_rows and header_rows < len(rows):
        names = [" ".join(dict.fromkeys(p for p in parts if p)) for parts in zip(*rows[:header_rows], strict=False)]
        add_table(builder, rows[header_rows:], heading_path=heading_path, header=names)
    else:
        add_table(builder, rows, heading_path=heading_path, header=True)


def _heading_levels(document) -> dict[str, int]:
    """Style id -> heading level (Title is 0), following `based on` so custom headings count."""
    from docx.enum.style import WD_STYLE_TYPE

    levels: dict[str, int] = {}
    for style in document.styles:
        if style.type != WD_STYLE_TYPE.PARAGRAPH:
            continue
        current, depth = style, 0
        while current is not None and depth < 5:
            name = current.name or ""
            match = _HEADING_NAME.match(name)
            if match:
                levels[style.style_id] = int(match.group(1))
                break
            if name.lower() == "title":
                levels[style.style_id] = 0
                break
            current, depth = current.base_style, depth + 1
    return levels


def _outline_level(p) -> int | None:
    values = _xpath("./w:pPr/w:outlineLvl/@w:val")(p)
    if values and str(values[0]).isdigit() and int(values[0]) < _MAX_LEVEL:
        return int(values[0]) + 1
    return None


def _open(path: Path):
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    if not zipfile.is_zipfile(path):
        raise ParseError("not a valid DOCX (damaged, or not a zip archive)")
    try:
        return docx.Document(str(path))
    except PackageNotFoundError as exc:
        raise ParseError("not a valid DOCX (no Word document inside)") from exc
    except KeyError as exc:
        raise ParseError(f"corrupt DOCX: {exc.args[0] if exc.args else 'missing part'}") from exc
    except ValueError as exc:
        # python-docx says "file ... is not a Word file, content type is ..." for .docm/.dotx etc.
        raise ParseError(f"not a Word document: {str(exc)[:120]}") from exc


def parse_docx(path: Path) -> ParsedDocument:
    """A .docx file; each paragraph and each table row becomes a block."""
    document = _open(path)
    levels = _heading_levels(document)
    builder = DocumentBuilder()
    stack: list[tuple[int, str]] = []  # open headings (level, text), outermost first
    title = ""
    for element in _blocks_in(document.element.body):
        if element.tag == _TBL:
            _add_table(builder, element, tuple(t for _, t in stack))
            continue
        text = _paragraph_text(element)
        if not text:
            continue
        style_id = element.style or "Normal"
        level = levels.get(style_id)
        if level is None:
            level = _outline_level(element)
        if level is not None:
            heading = " ".join(text.split())
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading))
            if level == 0 and not title:
                title = heading
        builder.add(text, heading_path=tuple(t for _, t in stack))
    with contextlib.suppress(Exception):  # broken core properties must not cost the text
        title = (document.core_properties.title or "").strip() or title
    return builder.build(path, "docx", title=title, empty_reason="no text")
