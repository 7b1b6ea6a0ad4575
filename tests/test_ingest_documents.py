"""EPUB, OpenDocument (.odt, .ods, .odp), RTF and legacy Office files through LibreOffice."""

from __future__ import annotations

import os
import stat
import sys
import zipfile
from pathlib import Path

import docx
import pytest

from ingest import legacy
from ingest.chunking import WhitespaceTokenizer, chunk_document
from ingest.errors import EncryptedFile, ParseError, UnsupportedFormat
from ingest.formats import parse_file

# EPUB ---------------------------------------------------------------------------------------

_CONTAINER = (
    '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
    '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>'
    "</container>"
)
_OPF = """<?xml version="1.0"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0">
 <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>The Field Guide</dc:title></metadata>
 <manifest>
  <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
  <item id="c2" href="text/ch2.xhtml" media-type="application/xhtml+xml"/>
  <item id="c1" href="text/ch1.xhtml" media-type="application/xhtml+xml"/>
  <item id="css" href="style.css" media-type="text/css"/>
 </manifest>
 <spine><itemref idref="nav"/><itemref idref="c1"/><itemref idref="c2"/></spine>
</package>"""
_NAV = """<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><body>
<nav epub:type="toc"><ol><li><a href="text/ch1.xhtml">Chapter 1: Birds</a></li>
<li><a href="text/ch2.xhtml">Chapter 2: Trees</a></li></ol></nav></body></html>"""


def _epub(path: Path, chapters: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        book.writestr("META-INF/container.xml", _CONTAINER)
        book.writestr("OEBPS/content.opf", _OPF)
        book.writestr("OEBPS/nav.xhtml", _NAV)
        for name, body in chapters.items():
            book.writestr(
                f"OEBPS/text/{name}", f'<html xmlns="http://www.w3.org/1999/xhtml"><body>{body}</body></html>'
            )


def test_epub_spine_order_and_chapter_headings(tmp_path: Path) -> None:
    path = tmp_path / "guide.epub"
    _epub(
        path,
        {
            "ch2.xhtml": "<p>Oaks live for centuries.</p>",
            "ch1.xhtml": "<h1>Chapter 1: Birds</h1><p>Robins sing at dawn.</p><h2>Owls</h2><p>Owls hunt at night.</p>",
        },
    )
    doc = parse_file(path)
    assert (doc.format, doc.title) == ("epub", "The Field Guide")
    got = [(doc.block_text(b), b.heading_path) for b in doc.blocks]
    assert got == [  # spine order (ch1 before ch2), the navigation page left out
        ("Chapter 1: Birds", ("Chapter 1: Birds",)),
        ("Robins sing at dawn.", ("Chapter 1: Birds",)),
        ("Owls", ("Chapter 1: Birds", "Owls")),
        ("Owls hunt at night.", ("Chapter 1: Birds", "Owls")),
        ("Oaks live for centuries.", ("Chapter 2: Trees",)),  # the title from the table of contents
    ]


def test_epub_damaged_and_drm(tmp_path: Path) -> None:
    broken = tmp_path / "broken.epub"
    with zipfile.ZipFile(broken, "w") as book:
        book.writestr("mimetype", "application/epub+zip")
    with pytest.raises(ParseError, match=r"corrupt EPUB: META-INF/container\.xml is missing"):
        parse_file(broken)
    drm = tmp_path / "drm.epub"
    _epub(drm, {"ch1.xhtml": "<p>x</p>", "ch2.xhtml": "<p>y</p>"})
    with zipfile.ZipFile(drm, "a") as book:
        book.writestr("META-INF/encryption.xml", "<encryption><EncryptedData/></encryption>")
    with pytest.raises(EncryptedFile, match="DRM"):
        parse_file(drm)


# OpenDocument -------------------------------------------------------------------------------

_ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"'
)


def _odf(path: Path, kind: str, body: str) -> None:
    content = f'<?xml version="1.0"?><office:document-content {_ODF_NS}><office:body><office:{kind}>{body}'
    content += f"</office:{kind}></office:body></office:document-content>"
    with zipfile.ZipFile(path, "w") as odf:
        odf.writestr("mimetype", f"application/vnd.oasis.opendocument.{kind}", compress_type=zipfile.ZIP_STORED)
        odf.writestr("content.xml", content)


def test_odt_headings_lists_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "guide.odt"
    _odf(
        path,
        "text",
        '<text:h text:outline-level="1">Onboarding</text:h><text:p>Welcome<text:s/>aboard.</text:p>'
        "<text:list><text:list-item><text:p>Get a laptop</text:p></text:list-item></text:list>"
        '<text:h text:outline-level="2">Contacts</text:h>'
        "<table:table><table:table-header-rows><table:table-row><table:table-cell><text:p>Role</text:p>"
        "</table:table-cell><table:table-cell><text:p>Name</text:p></table:table-cell></table:table-row>"
        "</table:table-header-rows><table:table-row><table:table-cell><text:p>IT</text:p></table:table-cell>"
        "<table:table-cell><text:p>Priya Raman</text:p></table:table-cell></table:table-row></table:table>",
    )
    doc = parse_file(path)
    assert doc.format == "odt"
    got = [(doc.block_text(b), b.heading_path, b.kind) for b in doc.blocks]
    assert got == [
        ("Onboarding", ("Onboarding",), "text"),
        ("Welcome aboard.", ("Onboarding",), "text"),  # text:s is a space
        ("Get a laptop", ("Onboarding",), "text"),
        ("Contacts", ("Onboarding", "Contacts"), "text"),
        ("Role: IT; Name: Priya Raman", ("Onboarding", "Contacts"), "row"),
    ]


def test_ods_sheets_rows_and_repeats(tmp_path: Path) -> None:
    path = tmp_path / "budget.ods"
    cell = '<table:table-cell office:value-type="float" office:value="{0}"><text:p>{0}</text:p></table:table-cell>'
    _odf(
        path,
        "spreadsheet",
        '<table:table table:name="Costs">'
        "<table:table-row><table:table-cell><text:p>Item</text:p></table:table-cell>"
        "<table:table-cell><text:p>Amount</text:p></table:table-cell></table:table-row>"
        '<table:table-row table:number-rows-repeated="3"><table:table-cell table:number-columns-repeated="2"/>'
        "</table:table-row>"
        f"<table:table-row><table:table-cell><text:p>Hotel</text:p></table:table-cell>{cell.format(170)}"
        '<table:table-cell table:number-columns-repeated="16000"/></table:table-row>'
        '<table:table-row table:number-rows-repeated="1048000"><table:table-cell/></table:table-row>'
        "</table:table>",
    )
    doc = parse_file(path)
    assert doc.format == "ods"
    assert [(doc.block_text(b), b.meta) for b in doc.blocks] == [
        ("Item: Hotel; Amount: 170", {"sheet": "Costs", "row": 5, "ncols": 2})
    ]
    assert doc.warnings == ("sheet Costs: 1 rows indexed",)


def test_odp_slides_and_notes(tmp_path: Path) -> None:
    path = tmp_path / "deck.odp"
    frame = '<draw:frame presentation:class="{0}"><draw:text-box><text:p>{1}</text:p></draw:text-box></draw:frame>'
    _odf(
        path,
        "presentation",
        '<draw:page draw:name="p1">'
        + frame.format("title", "Roadmap")
        + frame.format("outline", "Release 2.0 in June")
        + "<presentation:notes>"
        + frame.format("notes", "Say that dates may move.")
        + "</presentation:notes></draw:page>"
        + '<draw:page draw:name="p2">'
        + frame.format("outline", "Questions?")
        + "</draw:page>",
    )
    doc = parse_file(path)
    assert doc.format == "odp" and doc.title == "Roadmap"
    got = [(doc.block_text(b), b.heading_path, b.meta) for b in doc.blocks]
    assert got == [
        ("Roadmap", ("Roadmap",), {"slide": 1}),
        ("Release 2.0 in June", ("Roadmap",), {"slide": 1}),
        ("Say that dates may move.", ("Roadmap", "Speaker notes"), {"slide": 1}),
        ("Questions?", ("Slide 2",), {"slide": 2}),
    ]


def test_encrypted_opendocument(tmp_path: Path) -> None:
    path = tmp_path / "locked.odt"
    _odf(path, "text", "<text:p>x</text:p>")
    with zipfile.ZipFile(path, "a") as odf:
        odf.writestr("META-INF/manifest.xml", "<manifest><file-entry><encryption-data/></file-entry></manifest>")
    with pytest.raises(EncryptedFile, match="password-protected OpenDocument"):
        parse_file(path)


# RTF ----------------------------------------------------------------------------------------

_RTF = rb"""{\rtf1\ansi\ansicpg1252\deff0
{\stylesheet{\s0 Normal;}{\s1\sbasedon0 heading 1;}{\s2\sbasedon0 heading 2;}}
{\pard\s1 Travel Policy\par}
{\pard Trains are preferred for trips under 6 hours. Caf\'e9 receipts count.\par}
{\pard\s2 Hotels\par}
{\pard\outlinelevel2 Munich\par}
{\trowd\cellx3000\cellx6000
\pard\intbl City\cell Limit\cell\row
\pard\intbl Munich\cell EUR 170\cell\row
}
{\pard Book through the travel desk.\par}
}"""


def test_rtf_paragraphs_headings_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "policy.rtf"
    path.write_bytes(_RTF)
    doc = parse_file(path)
    assert (doc.format, doc.title) == ("rtf", "Travel Policy")
    got = [(doc.block_text(b), b.heading_path, b.kind) for b in doc.blocks]
    assert got == [
        ("Travel Policy", ("Travel Policy",), "text"),
        ("Trains are preferred for trips under 6 hours. Café receipts count.", ("Travel Policy",), "text"),
        ("Hotels", ("Travel Policy", "Hotels"), "text"),
        ("Munich", ("Travel Policy", "Hotels", "Munich"), "text"),
        ("City: Munich; Limit: EUR 170", ("Travel Policy", "Hotels", "Munich"), "row"),
        ("Book through the travel desk.", ("Travel Policy", "Hotels", "Munich"), "text"),
    ]


def test_not_really_rtf(tmp_path: Path) -> None:
    path = tmp_path / "fake.rtf"
    path.write_text("just text pretending", encoding="utf-8")
    with pytest.raises(ParseError, match=r"not an RTF file"):
        parse_file(path)


# Legacy Office files through LibreOffice ----------------------------------------------------


def _fake_soffice(folder: Path, script: str) -> None:
    """A stand-in `soffice` on the PATH: the real conversion code runs, LibreOffice does not."""
    program = folder / "soffice"
    program.write_text(f"#!{sys.executable}\n{script}", encoding="utf-8")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)


_CONVERTS = """
import sys, docx
args = sys.argv[1:]
out = args[args.index("--outdir") + 1]
source = args[-1]
assert args[args.index("--convert-to") + 1] == "docx" and "--headless" in args
doc = docx.Document()
doc.add_heading("Converted", 1)
doc.add_paragraph("Text of " + source.rsplit("/", 1)[-1])
doc.save(out + "/source.docx")
"""


def test_legacy_doc_through_soffice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_soffice(bin_dir, _CONVERTS)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "old.doc"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    doc = parse_file(path)
    assert (doc.format, doc.path) == ("doc", str(path))
    assert [doc.block_text(b) for b in doc.blocks] == ["Converted", "Text of source.doc"]


def test_legacy_conversion_failure_and_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    _fake_soffice(bin_dir, "import sys\nprint('Error: source file could not be loaded')\nsys.exit(1)\n")
    with pytest.raises(ParseError, match=r"LibreOffice could not convert the file \(Error: source file could not"):
        parse_file(path)
    _fake_soffice(bin_dir, "import time\ntime.sleep(30)\n")
    monkeypatch.setattr(legacy, "CONVERT_TIMEOUT", 0.5)
    with pytest.raises(ParseError, match=r"did not finish converting within 0.5 s"):
        parse_file(path)


def test_legacy_without_soffice_is_skipped_with_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(legacy, "soffice", lambda: None)
    for name, hint in (("a.doc", r"\.docx"), ("b.xls", r"\.xlsx"), ("c.ppt", r"\.pptx")):
        path = tmp_path / name
        path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
        pattern = rf"needs LibreOffice.*`soffice` is on the PATH.*save the file as {hint}"
        with pytest.raises(UnsupportedFormat, match=pattern):
            parse_file(path)


def test_docx_under_a_doc_name_needs_no_libreoffice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(legacy, "soffice", lambda: None)
    path = tmp_path / "really-docx.doc"
    document = docx.Document()
    document.add_paragraph("Modern inside.")
    document.save(str(path))
    assert parse_file(path).format == "docx"
    assert chunk_document(parse_file(path), WhitespaceTokenizer())[0].text == "Modern inside."
