"""HTML files: visible body text with h1-h6 as headings; navigation and page chrome dropped."""

from __future__ import annotations

import codecs
import re
import warnings
from pathlib import Path

from ingest.builder import DocumentBuilder
from ingest.errors import ParseError
from ingest.text import bom_encoding, clean_text, decode_bytes, looks_binary
from ingest.types import ParsedDocument

# fmt: off
_DROP = ["script", "style", "noscript", "nav", "aside", "form", "svg", "template", "iframe", "object", "embed",
         "canvas", "head", "title", "meta", "link"]
_PAGE_CHROME = ["header", "footer"]
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK = {
    "address", "article", "blockquote", "body", "caption", "center", "dd", "details", "dialog", "dir", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "header", "hgroup", "hr", "html", "li", "main",
    "menu", "ol", "p", "pre", "section", "summary", "table", "td", "th", "tr", "ul", "option", "legend",
}
# fmt: on
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]{0,100}?encoding\s*=\s*["']([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_WS = re.compile(r"\s+")
_SPACE_AROUND_NEWLINE = re.compile(r" *\n *")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_LAYOUT_ROW_CHARS = 400


def decode_html(data: bytes) -> str:
    """Decode HTML bytes: BOM first, then a <meta charset> or XML declaration, then guessing."""
    if bom_encoding(data):
        return decode_bytes(data)
    if looks_binary(data):
        raise ParseError("binary file, not HTML")
    head = data[:4096]
    match = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    if match:
        try:
            encoding = codecs.lookup(match.group(1).decode("ascii")).name
        except LookupError:
            encoding = ""
        # As browsers do: a UTF-16 label in ASCII-readable bytes is wrong, and latin-1/ascii
        # labels really mean windows-1252.
        if encoding.startswith("utf-16") or encoding.startswith("utf-32"):
            encoding = "utf-8"
        elif encoding in ("latin-1", "iso8859-1", "ascii"):
            encoding = "cp1252"
        if encoding:
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                pass  # the label lies; fall back to detection
    return decode_bytes(data)


def _soup(text: str):
    from bs4 import BeautifulSoup, FeatureNotFound

    # bs4 warns (to stderr) about markup that looks like XML or a file name; not our user's concern.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return BeautifulSoup(text, "lxml")
        except FeatureNotFound:
            return BeautifulSoup(text, "html.parser")


def _prune(soup) -> None:
    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": "navigation"}):
        tag.decompose()
    # A header or footer inside an article or main holds that content's own title or notes;
    # only the page-level ones are site chrome.
    for tag in soup.find_all(_PAGE_CHROME):
        if tag.decomposed:
            continue
        if tag.find_parent(["article", "main"]) is None:
            tag.decompose()


class _Collector:
    """Turns a stream of text, breaks and headings into paragraphs with heading paths."""

    def __init__(self) -> None:
        self.builder = DocumentBuilder()
        self.buffer: list[str] = []
        self.headings: list[tuple[int, str]] = []
        self.pre = 0
        self.first_h1 = ""

    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self.headings)

    def text(self, s: str) -> None:
        self.buffer.append(s if self.pre else _WS.sub(" ", s))

    def newline(self) -> None:
        self.buffer.append("\n")

    def flush(self) -> None:
        raw = "".join(self.buffer)
        self.buffer.clear()
        if self.pre:
            text = "\n".join(line.rstrip() for line in raw.split("\n")).strip("\n")
        else:
            # <br><br> is how many pages separate paragraphs: keep it as a blank line.
            text = _MANY_NEWLINES.sub("\n\n", _SPACE_AROUND_NEWLINE.sub("\n", raw)).strip()
        self.builder.add(text, heading_path=self.path())

    def heading(self, level: int, text: str) -> None:
        self.flush()
        text = " ".join(text.split())
        if not text:
            return
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        self.headings.append((level, text))
        if level == 1 and not self.first_h1:
            self.first_h1 = text
        self.builder.add(text, heading_path=self.path())


def _simple_row(tr) -> str | None:
    """A table row as 'a | b | c', or None for a layout row, which is read as ordinary flow."""
    if tr.find(["table", "h1", "h2", "h3", "h4", "h5", "h6"]) is not None:
        return None
    cells = [" ".join(c.get_text(" ").split()) for c in tr.find_all(["td", "th"], recursive=False)]
    row = " | ".join(c for c in cells if c)
    # Old pages lay out whole articles in one cell; flattening that would lose its paragraphs.
    if len(row) > _LAYOUT_ROW_CHARS and tr.find(["p", "div", "br", "ul", "ol", "pre", "blockquote"]) is not None:
        return None
    return row


def _span(cell, attr: str) -> int:
    try:
        return max(1, min(int(str(cell.get(attr, "1")).strip() or 1), 1000))
    except ValueError:
        return 1


def _own_rows(table) -> list:
    """The rows of this table, not of tables nested in it."""
    return [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]


def _data_table(table) -> tuple[list[str] | None, list[list[str]]] | None:
    """(header or None, body rows) of a table of data, with colspan and rowspan filled in, or
    None for a layout table (nested tables, headings or whole articles in its cells)."""
    rows = _own_rows(table)
    if not rows or any(_simple_row(tr) is None for tr in rows):
        return None
    grid: list[list[str]] = []
    header_rows = 0
    carried: dict[int, tuple[int, str]] = {}  # column -> (rows still covered, text) from rowspan
    for r, tr in enumerate(rows):
        cells = tr.find_all(["td", "th"], recursive=False)
        in_head = r == header_rows and (
            tr.find_parent("thead") is not None or bool(cells and all(c.name == "th" for c in cells))
        )
        out: list[str] = []
        col = 0
        for cell in cells:
            while col in carried:
                out.append(_take(carried, col))
                col += 1
            text = " ".join(cell.get_text(" ").split())
            rowspan = _span(cell, "rowspan")
            for i in range(_span(cell, "colspan")):
                # A header cell names every column it spans; a value is given once per row,
                # and repeated in the rows it spans so that each row stands alone.
                value = text if i == 0 or in_head else ""
                out.append(value)
                if rowspan > 1:
                    carried[col] = (rowspan - 1, value)
                col += 1
        while carried and col <= max(carried):
            out.append(_take(carried, col) if col in carried else "")
            col += 1
        if in_head:
            header_rows += 1
        grid.append(out)
    if header_rows and header_rows < len(grid):
        width = max(len(row) for row in grid[:header_rows])
        names = []
        for c in range(width):
            parts: list[str] = []
            for row in grid[:header_rows]:
                if c < len(row) and row[c] and row[c] not in parts:
                    parts.append(row[c])
            names.append(" ".join(parts))
        return names, grid[header_rows:]
    return None, grid


def _take(carried: dict[int, tuple[int, str]], col: int) -> str:
    left, text = carried[col]
    if left <= 1:
        del carried[col]
    else:
        carried[col] = (left - 1, text)
    return text


def _add_table(table, out: _Collector) -> bool:
    """Add a data table as row blocks (ingest/tables.py); False for a layout table."""
    from ingest.tables import add_table

    found = _data_table(table)
    if found is None:
        return False
    names, rows = found
    out.flush()
    caption = table.find("caption")
    if caption is not None and caption.find_parent("table") is table:
        out.builder.add(" ".join(caption.get_text(" ").split()), heading_path=out.path())
    add_table(out.builder, rows, heading_path=out.path(), header=names if names else True)
    return True


def _walk(root, out: _Collector) -> None:
    from bs4.element import NavigableString, PreformattedString, Tag

    # An explicit stack, not recursion: real pages nest deeper than Python's recursion limit.
    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            assert isinstance(node, Tag)
            out.flush()
            if node.name == "pre":
                out.pre -= 1
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, CDATA, doctype
                out.text(str(node))
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if name in _HEADINGS:
            out.heading(_HEADINGS[name], node.get_text(" "))
            continue
        if name == "br":
            out.newline()
            continue
        if name == "table" and _add_table(node, out):
            continue
        if name == "tr":
            row = _simple_row(node)
            if row is not None:  # simple rows of a layout table: one line each
                out.buffer.append(row)
                out.newline()
                continue
        if name in _BLOCK:
            out.flush()
            stack.append((node, True))
        if name == "pre":
            out.pre += 1
        stack.extend((child, False) for child in reversed(node.contents))
    out.flush()


def parse_html(path: Path) -> ParsedDocument:
    """An HTML page; each paragraph-like element and each table row becomes a block."""
    return html_document(decode_html(path.read_bytes()), path)


def html_document(text: str, path: Path, fmt: str = "html") -> ParsedDocument:
    """An HTML page given as text (an e-mail body, an e-book chapter); see parse_html."""
    text = clean_text(text)
    soup = _soup(text)
    title_tag = soup.find("title")
    title = " ".join(title_tag.get_text(" ").split()) if title_tag else ""
    _prune(soup)
    out = _Collector()
    _walk(soup.body or soup, out)
    title = title or out.first_h1
    return out.builder.build(path, fmt, title=title[:300], empty_reason="no visible text")
