"""HTML parsing: visible text, headings, tables, and decoding the bytes right."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from ingest.errors import EmptyDocument, ParseError
from ingest.html import decode_html, parse_html

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title> Expense   Policy </title>
<style>body { color: red }</style><script>var tracking = "do not index";</script></head>
<body>
<header><a href="/">Home</a> | <a href="/about">About us</a></header>
<nav><ul><li>Menu item</li></ul></nav>
<div role="navigation">Breadcrumbs here</div>
<main>
  <article>
    <header><h1>Expense policy</h1></header>
    <p>Claims are paid
       monthly.<br>Keep receipts.</p>
    <h2>Travel</h2>
    <p>Book economy <b>class</b> for flights under <i>six</i> hours.</p>
    <table><tr><th>Item</th><th>Limit</th></tr><tr><td>Hotel</td><td>150 €</td></tr></table>
    <h3>Meals</h3>
    <ul><li>Breakfast included</li><li>Dinner up to 40 €</li></ul>
    <!-- a comment that must not appear -->
    <h2>Equipment</h2>
    <pre>  line one
    indented line two</pre>
    <form><input value="search"><button>Go</button></form>
    <aside>Related links</aside>
    <noscript>Enable JavaScript</noscript>
    <svg><text>chart label</text></svg>
  </article>
</main>
<footer>Copyright 2024</footer>
</body></html>"""


def test_visible_text_headings_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "policy.html"
    path.write_text(PAGE, encoding="utf-8")
    doc = parse_html(path)
    assert doc.format == "html"
    assert doc.title == "Expense Policy"
    got = [(doc.block_text(b), b.heading_path) for b in doc.blocks]
    assert got == [
        ("Expense policy", ("Expense policy",)),
        ("Claims are paid monthly.\nKeep receipts.", ("Expense policy",)),
        ("Travel", ("Expense policy", "Travel")),
        ("Book economy class for flights under six hours.", ("Expense policy", "Travel")),
        ("Item: Hotel; Limit: 150 €", ("Expense policy", "Travel")),
        ("Meals", ("Expense policy", "Travel", "Meals")),
        ("Breakfast included", ("Expense policy", "Travel", "Meals")),
        ("Dinner up to 40 €", ("Expense policy", "Travel", "Meals")),
        ("Equipment", ("Expense policy", "Equipment")),
        ("line one\n    indented line two", ("Expense policy", "Equipment")),
    ]
    junk = (
        "tracking|Menu item|Breadcrumbs|About us|comment|search|Related links|Enable JavaScript|chart|Copyright|color"
    )
    for word in junk.split("|"):
        assert word not in doc.text


def test_title_falls_back_to_first_h1(tmp_path: Path) -> None:
    path = tmp_path / "untitled.html"
    path.write_text("<html><body><p>Intro</p><h1>Main Topic</h1><p>Body</p></body></html>", encoding="utf-8")
    assert parse_html(path).title == "Main Topic"


def test_fragment_without_body(tmp_path: Path) -> None:
    path = tmp_path / "fragment.htm"
    path.write_text("<h2>Notice</h2>Office closed on Friday.", encoding="utf-8")
    doc = parse_html(path)
    assert doc.text == "Notice\n\nOffice closed on Friday."
    assert doc.blocks[1].heading_path == ("Notice",)


def test_deeply_nested_markup(tmp_path: Path) -> None:
    path = tmp_path / "deep.html"
    path.write_text("<div>" * 3000 + "deep text" + "</div>" * 3000, encoding="utf-8")
    assert "deep text" in parse_html(path).text


CAFE = "<html><head>{meta}</head><body><p>Café crème – 5 €</p></body></html>"


ENCODED = {
    "utf8-meta": CAFE.format(meta='<meta charset="utf-8">').encode("utf-8"),
    "cp1252-meta": CAFE.format(meta='<meta charset="windows-1252">').encode("cp1252"),
    "latin1-label": CAFE.format(meta='<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">').encode(
        "cp1252"
    ),
    "cp1252-nometa": CAFE.format(meta="").encode("cp1252"),
    "utf16-bom": codecs.BOM_UTF16_LE + CAFE.format(meta="").encode("utf-16-le"),
    "utf16-nobom": CAFE.format(meta='<meta charset="utf-16">').encode("utf-16-le"),  # found from NULs
    "bom-beats-meta": codecs.BOM_UTF8 + CAFE.format(meta='<meta charset="iso-8859-1">').encode("utf-8"),
    "utf16-label-ascii": CAFE.format(meta='<meta charset="utf-16">').encode("utf-8"),  # the label lies
    "wrong-utf8-label": CAFE.format(meta='<meta charset="utf-8">').encode("cp1252"),  # bytes are cp1252
}


@pytest.mark.parametrize("data", ENCODED.values(), ids=ENCODED.keys())
def test_decoding(tmp_path: Path, data: bytes) -> None:
    assert "Café crème – 5 €" in decode_html(data)
    path = tmp_path / "cafe.html"
    path.write_bytes(data)
    assert parse_html(path).text == "Café crème – 5 €"


def test_empty_and_binary_html(tmp_path: Path) -> None:
    empty = tmp_path / "empty.html"
    empty.write_text("<html><head><title>Only a title</title><script>x()</script></head><body> </body></html>")
    with pytest.raises(EmptyDocument, match="no visible text"):
        parse_html(empty)
    binary = tmp_path / "image.html"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ParseError, match="binary"):
        parse_html(binary)


def test_layout_table_keeps_paragraphs(tmp_path: Path) -> None:
    essay = "<br><br>".join(f"Paragraph {i} " + "word " * 60 for i in range(3))
    path = tmp_path / "essay.html"
    path.write_text(f"<table><tr><td><img src=x></td><td>{essay}</td></tr></table>", encoding="utf-8")
    text = parse_html(path).text
    assert text.count("\n\n") == 2 and "|" not in text
    assert text.startswith("Paragraph 0 word") and "Paragraph 2" in text
