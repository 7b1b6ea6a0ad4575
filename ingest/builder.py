"""Assemble a ParsedDocument from paragraphs given in reading order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.errors import EmptyDocument
from ingest.types import Block, ParsedDocument

SEPARATOR = "\n\n"  # between blocks, so the chunker sees every block end as a paragraph break


class DocumentBuilder:
    """Collects paragraphs, joins them into one text and records a Block for each."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._blocks: list[Block] = []
        self._length = 0

    def add(
        self,
        text: str,
        *,
        page: int | None = None,
        heading_path: tuple[str, ...] = (),
        meta: dict[str, Any] | None = None,
        kind: str = "text",
    ) -> None:
        """Append one paragraph; blank text is ignored. `meta` is what else a citation can name
        (Block.meta); `kind` is "row" for a table row (Block.kind)."""
        text = text.strip()
        if not text:
            return
        if self._parts:
            self._parts.append(SEPARATOR)
            self._length += len(SEPARATOR)
        start = self._length
        self._parts.append(text)
        self._length += len(text)
        self._blocks.append(Block(start, self._length, page, heading_path, dict(meta or {}), kind))

    def add_member(self, name: str, doc: ParsedDocument) -> None:
        """Append the blocks of a file found inside this one (an attachment, an archive member):
        their heading path starts with `name` and their meta names it ("a.zip › b.pdf" when
        nested); pages stay the member's own."""
        for block in doc.blocks:
            inner = block.meta.get("member")
            meta = {**block.meta, "member": f"{name} › {inner}" if inner else name}
            self.add(
                doc.block_text(block),
                page=block.page,
                heading_path=(name, *block.heading_path),
                meta=meta,
                kind=block.kind,
            )

    @property
    def empty(self) -> bool:
        """True until some text has been added."""
        return not self._blocks

    def build(
        self,
        path: Path,
        format: str,
        *,
        title: str = "",
        n_pages: int | None = None,
        warnings: list[str] | tuple[str, ...] = (),
        empty_reason: str = "no text",
    ) -> ParsedDocument:
        """The finished document; raises EmptyDocument when nothing was added, with the first
        warning when there is one (why a scan's OCR gave nothing: "page 1: OCR failed (...)")."""
        if not self._blocks:
            n = len(warnings) - 1
            more = f" ({n} more warning{'s' if n > 1 else ''})" if n else ""
            raise EmptyDocument(f"{empty_reason}; {warnings[0]}{more}" if warnings else empty_reason)
        return ParsedDocument(
            path=str(path),
            format=format,
            text="".join(self._parts),
            blocks=tuple(self._blocks),
            title=title,
            n_pages=n_pages,
            warnings=tuple(warnings),
        )
