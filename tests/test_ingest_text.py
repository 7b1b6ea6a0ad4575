"""Decoding bytes of unknown encoding, binary detection and the plain-text parser."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from ingest.errors import EmptyDocument, ParseError
from ingest.text import decode_bytes, looks_binary, parse_text

SAMPLE = "Grüße aus Köln — café, naïve façade.\nSecond line: 5 € only."


ENCODED = {
    "utf8-bom": codecs.BOM_UTF8 + SAMPLE.encode("utf-8"),
    "utf16le-bom": codecs.BOM_UTF16_LE + SAMPLE.encode("utf-16-le"),
    "utf16be-bom": codecs.BOM_UTF16_BE + SAMPLE.encode("utf-16-be"),
    "utf32le-bom": codecs.BOM_UTF32_LE + SAMPLE.encode("utf-32-le"),
    "utf32be-bom": codecs.BOM_UTF32_BE + SAMPLE.encode("utf-32-be"),
    "utf8": SAMPLE.encode("utf-8"),
    "utf16le": SAMPLE.encode("utf-16-le"),  # no BOM: found from the NUL pattern
    "utf16be": SAMPLE.encode("utf-16-be"),
    "utf32le": SAMPLE.encode("utf-32-le"),
    "utf32be": SAMPLE.encode("utf-32-be"),
    "cp1252": SAMPLE.encode("cp1252"),
}


@pytest.mark.parametrize("data", ENCODED.values(), ids=ENCODED.keys())
def test_decode_bytes_recovers_text(data: bytes) -> None:
    assert decode_bytes(data) == SAMPLE


def test_decode_short_cp1252_prefers_western_reading() -> None:
    assert decode_bytes("naïve".encode("cp1252")) == "naïve"
    assert decode_bytes("The price is 5€ — cheap".encode("cp1252")) == "The price is 5€ — cheap"


def test_decode_non_western_single_byte_text() -> None:
    russian = "Привет, как дела? Это тест кодировки, и он довольно длинный для детектора." * 3
    assert decode_bytes(russian.encode("cp1251")) == russian


def test_binary_detection() -> None:
    png_like = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
    assert looks_binary(png_like)
    assert looks_binary(b"\x00\x01\x02\x03" * 100)
    assert not looks_binary(SAMPLE.encode("utf-8"))
    assert not looks_binary(SAMPLE.encode("utf-16-le"))  # NULs explained by UTF-16
    assert not looks_binary(b"")
    with pytest.raises(ParseError, match="binary file, not text"):
        decode_bytes(png_like)


def test_text_paragraphs_become_blocks(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"First paragraph\r\nstill first.\r\n\r\n  \r\nSecond paragraph.   \n\n\nThird.\n")
    doc = parse_text(path)
    assert doc.format == "text"
    assert [doc.block_text(b) for b in doc.blocks] == ["First paragraph\nstill first.", "Second paragraph.", "Third."]
    assert all(b.page is None for b in doc.blocks)
    assert doc.n_pages is None
    assert doc.path == str(path)


def test_text_form_feeds_are_pages(tmp_path: Path) -> None:
    path = tmp_path / "report.txt"
    path.write_text("Page one text.\fPage two text.\n\nMore on two.\fPage three.", encoding="utf-8")
    doc = parse_text(path)
    assert doc.n_pages == 3
    assert [(doc.block_text(b), b.page) for b in doc.blocks] == [
        ("Page one text.", 1),
        ("Page two text.", 2),
        ("More on two.", 2),
        ("Page three.", 3),
    ]


def test_text_utf16_file(tmp_path: Path) -> None:
    path = tmp_path / "wide.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "Hello wide world.\n\nZweiter Absatz: äöü.".encode("utf-16-le"))
    doc = parse_text(path)
    assert doc.text == "Hello wide world.\n\nZweiter Absatz: äöü."


@pytest.mark.parametrize("content", [b"", b"   \n\t\n  \r\n"])
def test_empty_text_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(EmptyDocument, match="empty file"):
        parse_text(path)


def test_binary_file_with_text_extension(tmp_path: Path) -> None:
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ParseError, match="binary"):
        parse_text(path)
