"""Cut a parsed document into token-sized, overlapping chunks at the most natural boundaries."""

from __future__ import annotations

import re
from array import array
from pathlib import Path
from typing import Protocol

from ingest.types import Block, Chunk, ParsedDocument


class TokenSpans(Protocol):
    """A tokenizer that reports where its tokens are: (start, end) character spans, no specials."""

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of `text`, in order."""
        ...


class WhitespaceTokenizer:
    """Tokens are runs of non-space characters; for tests and model-free use."""

    _TOKEN = re.compile(r"\S+")

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Spans of the whitespace-separated words of `text`."""
        return [m.span() for m in self._TOKEN.finditer(text)]


class HFTokenizer:
    """A Hugging Face `tokenizers.Tokenizer` (tokenizer.json), the embedder's own token count."""

    def __init__(self, tokenizer, *, window: int = 10_000) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._window = window

    @classmethod
    def from_file(cls, path: Path) -> HFTokenizer:
        """Load tokenizer.json, or the tokenizer.json inside a model folder."""
        from tokenizers import Tokenizer

        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        return cls(Tokenizer.from_file(str(path)))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens, encoded in windows cut at whitespace."""
        out: list[tuple[int, int]] = []
        for start, end in _windows(text, self._window):
            encoding = self._tokenizer.encode(text[start:end], add_special_tokens=False)
            out.extend((start + a, start + b) for a, b in encoding.offsets if b > a)
        return out


def _windows(text: str, size: int) -> list[tuple[int, int]]:
    """Split text into pieces of about `size` chars, cutting at whitespace when there is any."""
    pieces = []
    start, n = 0, len(text)
    while start < n:
        end = min(start + size, n)
        if end < n:
            cut = max(text.rfind(" ", start + size // 2, end), text.rfind("\n", start + size // 2, end))
            end = cut if cut > start else end
        pieces.append((start, end))
        start = end
    return pieces


# Strength of the break before a token; cuts go at the strongest break available.
# SOURCE: another file inside the file (an attachment, an archive member) or another sheet
# begins; no chunk spans it, so what a chunk cites ("mail.eml › a.pdf", "Budget!A2:F9") is one.
NONE, WORD, SENTENCE, LINE, PARAGRAPH, HEADING, SOURCE = range(7)
_SOURCE_KEYS = ("member", "sheet")
_SENTENCE_END = set(".!?…。！？")
_CLOSERS = set("\"')]}’”»")
_SEGMENT_CHARS = 20_000  # blocks are tokenized together up to this size, bounding memory per call


def _tokenize(text: str, blocks: tuple[Block, ...], tokenizer: TokenSpans) -> tuple[array, array, array]:
    """Token starts, ends and owning block index, tokenizing runs of small blocks together."""
    starts, ends, owner = array("q"), array("q"), array("i")
    i = 0
    while i < len(blocks):
        # Group neighbouring blocks while they are separated by whitespace (so no token can
        # straddle two blocks) and the group stays small.
        j = i + 1
        while (
            j < len(blocks)
            and blocks[j].end - blocks[i].start <= _SEGMENT_CHARS
            and text[blocks[j - 1].end : blocks[j].start].isspace()
        ):
            j += 1
        seg_start, seg_end = blocks[i].start, blocks[j - 1].end
        b = i
        # A huge block (a novel without blank lines) is fed in whitespace-cut windows, so the
        # tokenizer's output for one call stays small.
        for w_start, w_end in _windows(text[seg_start:seg_end], _SEGMENT_CHARS):
            offset = seg_start + w_start
            for a, z in tokenizer.spans(text[offset : seg_start + w_end]):
                a, z = a + offset, z + offset
                while b + 1 < j and a >= blocks[b + 1].start:
                    b += 1
                starts.append(a)
                ends.append(z)
                owner.append(b)
        i = j
    return starts, ends, owner


def _sentence_end(text: str, end: int) -> bool:
    ch = text[end - 1]
    if ch in _CLOSERS and end >= 2:
        ch = text[end - 2]
    return ch in _SENTENCE_END


def _break_levels(text: str, starts: array, ends: array, owner: array, blocks: tuple[Block, ...]) -> bytearray:
    levels = bytearray(len(starts))
    for i in range(1, len(starts)):
        if owner[i] != owner[i - 1]:
            this, prev = blocks[owner[i]], blocks[owner[i - 1]]
            if any(this.meta.get(key) != prev.meta.get(key) for key in _SOURCE_KEYS):
                levels[i] = SOURCE
            else:
                levels[i] = PARAGRAPH if this.heading_path == prev.heading_path else HEADING
            continue
        prev_end = ends[i - 1]
        gap = text[prev_end : starts[i]]
        if not gap:
            # Adjacent (sub-word) tokens; CJK sentences end without a following space.
            levels[i] = SENTENCE if prev_end > 0 and text[prev_end - 1] in "。！？" else NONE
        elif "\n" in gap:
            levels[i] = PARAGRAPH if gap.count("\n") >= 2 else LINE
        elif " " in gap or gap.isspace() or any(ch.isspace() for ch in gap):
            levels[i] = SENTENCE if _sentence_end(text, prev_end) else WORD
        # else: characters the tokenizer skipped, inside a word: NONE
    return levels


def _best_cut(levels: bytearray, start: int, limit: int) -> int:
    """The last strongest break in the second half of the window [start, limit]."""
    best, best_level = limit, -1
    for c in range(limit, start + max(1, (limit - start) // 2) - 1, -1):
        level = min(levels[c], PARAGRAPH)
        if level > best_level:
            best, best_level = c, level
            if level == PARAGRAPH:
                break
    return best if best_level > NONE else limit


def _next_start(levels: bytearray, start: int, cut: int, overlap: int) -> int:
    """Where the next chunk begins: about `overlap` tokens back, at a good break."""
    if overlap == 0:
        return cut
    lo = max(start + 1, cut - overlap)
    for c in range(cut - 1, lo - 1, -1):
        if levels[c] >= HEADING:  # never reach back into the previous section
            return c
    hi = max(lo, cut - overlap // 2)
    best, best_level = lo, -1
    for c in range(lo, hi + 1):  # earliest of the strongest breaks keeps the overlap near `overlap`
        if levels[c] > best_level:
            best, best_level = c, levels[c]
    if best_level < SENTENCE:
        # No sentence starts in the usual overlap (long sentences: papers, contracts). Reach
        # back up to twice the overlap for one, so that the chunk, and every quote taken from
        # its first sentence, starts at the beginning of a sentence, not in its middle.
        for c in range(lo - 1, max(start, cut - 2 * overlap) - 1, -1):
            if levels[c] >= HEADING:
                break
            if levels[c] >= SENTENCE:
                return c
    if best_level == NONE:  # mid-word everywhere in range: move forward to the next word start
        c = best
        while c < cut and levels[c] == NONE:
            c += 1
        best = c if c < cut else lo
    return best


def chunk_document(doc: ParsedDocument, tokenizer: TokenSpans, size: int = 256, overlap: int = 32) -> list[Chunk]:
    """Chunks of at most `size` tokens, sharing about `overlap` tokens, cut at natural breaks."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size (got size={size}, overlap={overlap})")
    text = doc.text
    blocks = tuple(b for b in doc.blocks if b.end > b.start) or (Block(0, len(text)),)
    starts, ends, owner = _tokenize(text, blocks, tokenizer)
    n = len(starts)
    if n == 0:
        return []
    levels = _break_levels(text, starts, ends, owner, blocks)
    min_section = max(1, size // 4)
    chunks: list[Chunk] = []
    start = 0
    while start < n:
        limit = min(start + size, n)
        # A new section starts a new chunk once this one holds a fair amount of text.
        cut = next((c for c in range(start + 1, limit) if levels[c] == SOURCE), None)
        if cut is None:
            cut = next((c for c in range(start + min_section + 1, limit) if levels[c] >= HEADING), None)
        if cut is None:
            cut = n if limit == n else _best_cut(levels, start, limit)
        chunk = _make_chunk(len(chunks), text, starts, ends, owner, blocks, start, cut)
        if chunk.text:  # a run of whitespace-only tokens (some tokenizers make them) is no chunk
            chunks.append(chunk)
        if cut >= n:
            break
        # After a heading cut the new section starts clean; otherwise overlap the previous chunk.
        # A table row is never cut into by the overlap: rows stand alone (each names its
        # columns), so a chunk starts at a row's first token.
        if levels[cut] >= HEADING or _row_start(cut, starts, owner, blocks):
            start = cut
        else:
            start = _clear_of_rows(_next_start(levels, start, cut, overlap), cut, starts, owner, blocks)
    return chunks


def _row_start(i: int, starts: array, owner: array, blocks: tuple[Block, ...]) -> bool:
    """Whether token i is the first token of a table row."""
    block = blocks[owner[i]]
    return block.kind == "row" and starts[i] <= block.start


def _clear_of_rows(start: int, cut: int, starts: array, owner: array, blocks: tuple[Block, ...]) -> int:
    """`start`, moved forward to the next block when it falls inside a table row."""
    if blocks[owner[start]].kind != "row" or _row_start(start, starts, owner, blocks):
        return start
    i = start
    while i < cut and owner[i] == owner[start]:
        i += 1
    return i


def _make_chunk(
    ordinal: int, text: str, starts: array, ends: array, owner: array, blocks: tuple[Block, ...], first: int, cut: int
) -> Chunk:
    begin, end = starts[first], ends[cut - 1]
    while begin < end and text[begin].isspace():
        begin += 1
    while end > begin and text[end - 1].isspace():
        end -= 1
    first_block, last_block = blocks[owner[first]], blocks[owner[cut - 1]]
    covered = blocks[owner[first] : owner[cut - 1] + 1]
    return Chunk(
        ordinal=ordinal,
        text=text[begin:end],
        start=begin,
        end=end,
        page_start=first_block.page,
        page_end=last_block.page,
        heading_path=first_block.heading_path,
        n_tokens=cut - first,
        pages=page_starts(covered, begin, end),
        meta=merged_meta(covered),
    )


def page_starts(blocks: tuple[Block, ...], begin: int, end: int) -> tuple[tuple[int, int], ...]:
    """(offset into the chunk text, page) where each page of a chunk over [begin, end) begins;
    empty when the chunk lies on one page (or the format has none)."""
    out: list[tuple[int, int]] = []
    for b in blocks:
        if b.page is None or (out and out[-1][1] == b.page):
            continue
        out.append((max(0, min(b.start, end) - begin) if out else 0, b.page))
    return tuple(out) if len(out) > 1 else ()


_POSITION_KEYS = ("slide", "sheet", "row", "ncols")


def merged_meta(blocks: tuple[Block, ...]) -> dict:
    """The blocks' metadata in one dict: the first block's values win, later blocks add keys.

    Slide numbers and spreadsheet rows (Block.meta) become one "locator" naming them all:
    "slide 3", "slides 3-4", "Budget!A2:F40".
    """
    out: dict = {}
    for b in blocks:
        for key, value in b.meta.items():
            if key not in _POSITION_KEYS:
                out.setdefault(key, value)
    locator = _locator(blocks)
    if locator:
        out["locator"] = locator
    return out


def _locator(blocks: tuple[Block, ...]) -> str:
    from ingest.tables import sheet_range

    slides = [b.meta["slide"] for b in blocks if isinstance(b.meta.get("slide"), int)]
    rows = [b for b in blocks if isinstance(b.meta.get("row"), int)]
    if rows:
        # The sheet of the first row; a chunk holds rows of one sheet (a sheet is a heading).
        sheet = rows[0].meta.get("sheet")
        same = [b for b in rows if b.meta.get("sheet") == sheet]
        numbers = [b.meta["row"] for b in same]
        ncols = max(int(b.meta.get("ncols") or 1) for b in same)
        return sheet_range(sheet, min(numbers), max(numbers), ncols)
    if slides:
        first, last = min(slides), max(slides)
        return f"slide {first}" if first == last else f"slides {first}-{last}"
    return ""
