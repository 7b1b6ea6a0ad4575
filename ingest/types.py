"""The nouns of ingestion: a parsed document made of blocks, and the chunks cut from it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Block:
    """A run of parsed text with one page and one heading path.

    `start`/`end` are character offsets into `ParsedDocument.text`.
    """

    start: int
    end: int
    page: int | None = None  # 1-based; None for formats without pages
    heading_path: tuple[str, ...] = ()


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
