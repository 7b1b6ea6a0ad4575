"""The nouns of ingestion: a parsed document made of blocks, and the chunks cut from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Block:
    """A run of parsed text with one page and one heading path.

    `start`/`end` are character offsets into `ParsedDocument.text`.
    """

    start: int
    end: int
    page: int | None = None  # 1-based; None for formats without pages
    heading_path: tuple[str, ...] = ()
    # What else a citation can name about this text, as plain JSON values: for example
    # {"member": "report.pdf"} (a file inside an e-mail or archive), {"ocr": 0.93} (OCR
    # confidence), {"locator": "chapter 2"}. Positions that chunking turns into one "locator"
    # for the chunk: {"slide": 3} -> "slide 3", {"sheet": "Budget", "row": 2, "ncols": 6} ->
    # "Budget!A2:F2" (a spreadsheet row; "sheet" is absent for a CSV file).
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    # "text", or "row" for one row of a table: chunks start and end at row boundaries.
    kind: str = "text"


@dataclass(frozen=True)
class ParsedDocument:
    """The text of one file, with its structure kept as blocks over that text."""

    path: str
    format: str  # "pdf", "docx", "html", "markdown", "text", "pptx", "xlsx", "csv", "eml", ... (ingest/formats.py)
    text: str
    blocks: tuple[Block, ...]
    title: str = ""
    n_pages: int | None = None
    # What the ingest report shows beside the file: parts skipped (an attachment, an archive
    # member) and counts a user should see (rows indexed per sheet).
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def block_text(self, block: Block) -> str:
        """The text a block covers."""
        return self.text[block.start : block.end]


@dataclass(frozen=True)
class Chunk:
    """A token-sized piece of a document, the unit that is embedded and retrieved."""

    ordinal: int  # position within the document, from 0
    text: str
    start: int  # character offsets into ParsedDocument.text
    end: int
    page_start: int | None
    page_end: int | None
    heading_path: tuple[str, ...]
    n_tokens: int
    # Where pages begin inside `text` when the chunk spans more than one: (offset, page) pairs,
    # the first at offset 0, so a quote's page is the page its sentence lies on.
    pages: tuple[tuple[int, int], ...] = ()
    # The blocks' `meta`, merged: the first block's values win, later blocks add keys.
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
