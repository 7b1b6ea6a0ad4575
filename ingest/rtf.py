"""RTF files (striprtf): paragraphs, tables as tables, and headings where the file marks them
(an outline level, or a paragraph style named "heading N")."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.builder import DocumentBuilder
from ingest.errors import ParseError
from ingest.text import clean_text
from ingest.types import ParsedDocument

_MARK = "\ue000"  # a private-use character put before a heading's text, found again in the output
_STYLE_DEF = re.compile(r"\{\s*(?:\\\*)?\s*\\s(\d+)\b[^{}]*?\s*heading\s*(\d)\s*;\s*\}", re.IGNORECASE)
_STYLE_USE = re.compile(r"\\s(\d+)(?![a-z\d])")
_OUTLINE = re.compile(r"\\outlinelevel(\d)(?![a-z\d])")
_CODEPAGE = re.compile(r"\\ansicpg(\d+)")
_HEADING_LINE = re.compile(f"^{_MARK}H(\\d){_MARK}")
_MARKS = re.compile(f"{_MARK}H\\d{_MARK}")


def _marked(rtf: str) -> str:
    """The RTF with a marker ahead of each heading paragraph's text."""
    styles = {m.group(1): int(m.group(2)) for m in _STYLE_DEF.finditer(rtf)}

    def style(m: re.Match[str]) -> str:
        level = styles.get(m.group(1))
        return m.group(0) if level is None else f"{m.group(0)} {_MARK}H{level}{_MARK}"

    rtf = _STYLE_USE.sub(style, rtf) if styles else rtf
    return _OUTLINE.sub(lambda m: f"{m.group(0)} {_MARK}H{int(m.group(1)) + 1}{_MARK}", rtf)


def _encoding(rtf: str) -> str:
    m = _CODEPAGE.search(rtf[:2000])
    if m:
        name = f"cp{m.group(1)}"
        try:
            "".encode(name)
            return name
        except LookupError:
            pass
    return "cp1252"


def rtf_to_plain(data: bytes) -> str:
    """The text of RTF bytes (headings unmarked); used for Outlook bodies kept as RTF."""
    return _MARKS.sub("", _convert(data))


def _convert(data: bytes) -> str:
    from striprtf.striprtf import rtf_to_text

    rtf = data.decode("latin-1")  # RTF is 7-bit; \'xx escapes are decoded by striprtf
    if not rtf.lstrip().startswith("{\\rtf"):
        raise ParseError("not an RTF file (no {\\rtf header)")
    return clean_text(rtf_to_text(_marked(rtf), encoding=_encoding(rtf), errors="replace"))


def parse_rtf(path: Path) -> ParsedDocument:
    """An .rtf file; paragraphs, heading paths where styles say so, tables as row blocks."""
    from ingest.tables import add_table

    text = _convert(path.read_bytes())
    builder = DocumentBuilder()
    stack: list[tuple[int, str]] = []
    table: list[list[str]] = []
    title = ""

    def heading_path() -> tuple[str, ...]:
        return tuple(t for _, t in stack)

    def flush_table() -> None:
        if table:
            add_table(builder, table, heading_path=heading_path())
            table.clear()

    for line in text.split("\n"):
        m = _HEADING_LINE.match(line)
        body = " ".join(_MARKS.sub("", line).split())
        if body.endswith("|") and ("|" in body[:-1] or table):
            table.append([c.strip() for c in body[:-1].split("|")])  # striprtf ends each cell with |
            continue
        flush_table()
        if not body:
            continue
        if m:
            level = int(m.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, body))
            title = title or body
        builder.add(body, heading_path=heading_path())
    flush_table()
    return builder.build(path, "rtf", title=title[:300], empty_reason="no text")
