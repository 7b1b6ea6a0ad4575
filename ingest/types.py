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
    # {"locator": "slide 3"}, {"locator": "Budget!A2:F40"}, {"ocr": 0.93} (OCR confidence).
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ParsedDocument:
    """The text of one file, with its structure kept as blocks over that text."""

    path: str
    format: str  # "pdf", "docx", "html", "markdown", "text"
    text: str
    blocks: tuple[Block, ...]
    title: str = ""
    n_pages: int | None = None
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
