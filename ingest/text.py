"""Plain text: turning bytes of unknown encoding into str, and .txt-like files into documents."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from ingest.builder import DocumentBuilder
from ingest.errors import ParseError
from ingest.types import ParsedDocument

# Longest BOMs first: the UTF-32-LE BOM begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SAMPLE = 8192
# C0 controls that never appear in text (tab, newlines, form feed and escape are allowed).
_BINARY_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 27)) + b"\x7f"
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufeff\ufffe]")
# Non-ASCII characters a Western cp1252 document plausibly contains besides letters.
_CP1252_PUNCT = set("€‚„…†‡‰‹›‘’“”•–—˜™¡¢£¤¥¦§¨©ª«¬\xad®¯°±²³´µ¶·¸¹º»¼½¾¿×÷\xa0")


def bom_encoding(data: bytes) -> tuple[str, int] | None:
    """The encoding announced by a byte-order mark, and the mark's length."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def _guess_wide_encoding(sample: bytes) -> str | None:
    """Spot BOM-less UTF-16/32 by where the NUL bytes fall (text mostly below U+0100)."""
    n = len(sample) - len(sample) % 4
    if n < 8:
        return None

    def zeros(phase: int, step: int) -> float:
        lane = sample[phase:n:step]
        return lane.count(0) / len(lane)

    z4 = [zeros(i, 4) for i in range(4)]
    even, odd = zeros(0, 2), zeros(1, 2)
    if z4[2] > 0.9 and z4[3] > 0.9 and z4[0] < 0.5:
        guess = "utf-32-le"
    elif z4[0] > 0.9 and z4[1] > 0.9 and z4[3] < 0.5:
        guess = "utf-32-be"
    elif odd > 0.3 and even < 0.05:
        guess = "utf-16-le"
    elif even > 0.3 and odd < 0.05:
        guess = "utf-16-be"
    else:
        return None
    # Binary data can show the same pattern; real text decodes to few control characters.
    text = sample[:n].decode(guess, errors="replace")
    bad = sum(1 for c in text if c == "\ufffd" or (c < " " and c not in "\t\n\r\f"))
    return guess if bad <= len(text) * 0.05 else None


def looks_binary(data: bytes) -> bool:
    """True when the bytes hold NULs or control codes that no text encoding explains."""
    sample = data[:_SAMPLE]
    if not sample or bom_encoding(sample) or _guess_wide_encoding(sample):
        return False
    nuls = sample.count(0)
    controls = len(sample) - len(sample.translate(None, _BINARY_BYTES))
    return nuls > len(sample) / 100 or controls > len(sample) / 20


def _plausible_cp1252(text: str) -> bool:
    """Whether a cp1252 reading looks like Western prose rather than mojibake."""
    non_ascii = [c for c in text if ord(c) > 127]
    if len(non_ascii) > len(text) * 0.15:
        return False
    return all(c.isalpha() or c in _CP1252_PUNCT for c in non_ascii)


def _charset_normalizer(data: bytes) -> str | None:
    from charset_normalizer import from_bytes

    matches = from_bytes(data[:200_000])
    best = matches.best()
    if best is None:
        return None
    # Among equally clean readings prefer cp1252: the detector's pick between look-alike
    # single-byte code pages is close to arbitrary on short texts.
    for match in matches:
        if match.percent_chaos <= best.percent_chaos + 1.0 and "cp1252" in match.could_be_from_charset:
            return "cp1252"
    return best.encoding


def decode_bytes(data: bytes) -> str:
    """Decode text of unknown encoding; raises ParseError for binary data."""
    found = bom_encoding(data)
    if found:
        encoding, skip = found
        return data[skip:].decode(encoding, errors="replace")
    if looks_binary(data):
        raise ParseError("binary file, not text")
    wide = _guess_wide_encoding(data[:_SAMPLE])
    if wide:
        try:
            return data.decode(wide)
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Most non-UTF-8 company documents are Windows Western; checking that first is both
    # faster and more reliable than statistical detection on short files.
    try:
        western = data.decode("cp1252")
        if _plausible_cp1252(western):
            return western
    except UnicodeDecodeError:
        pass
    detected = _charset_normalizer(data)
    if detected:
        return data.decode(detected, errors="replace")
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def clean_text(text: str) -> str:
    """Unify line endings and drop control characters that only confuse later steps."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL_CHARS.sub("", text)


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def parse_text(path: Path) -> ParsedDocument:
    """A plain-text file; paragraphs (blank-line separated) become blocks, form feeds pages."""
    text = clean_text(decode_bytes(path.read_bytes()))
    # A form feed is the traditional page break (pdftotext, line printers): keep it as pages.
    pages = text.split("\f")
    paged = len(pages) > 1
    builder = DocumentBuilder()
    for number, page in enumerate(pages, start=1):
        for paragraph in _PARAGRAPH_BREAK.split(page):
            lines = [line.rstrip() for line in paragraph.split("\n")]
            builder.add("\n".join(lines), page=number if paged else None)
    return builder.build(path, "text", n_pages=len(pages) if paged else None, empty_reason="empty file")
