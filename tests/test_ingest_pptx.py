"""PowerPoint .pptx: slide titles as headings, text frames, groups, tables and speaker notes,
each cited as "slide N"; damaged decks fail with one line."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from pptx import Presentation

from ingest.chunking import WhitespaceTokenizer, chunk_document
from ingest.errors import EmptyDocument, ParseError
from ingest.formats import parse_file
from tests.ingest_fixtures import make_deck


def test_slides_titles_tables_and_notes(tmp_path: Path) -> None:
    path = tmp_path / "kickoff.pptx"
    make_deck(path)
    doc = parse_file(path)
    assert (doc.format, doc.title) == ("pptx", "Sales Kickoff 2024")
    got = [(doc.block_text(b), b.heading_path, b.meta, b.kind) for b in doc.blocks]
    assert got == [
        ("Targets", ("Targets",), {"slide": 1}, "text"),
        ("Revenue target: EUR 4.2 million\nNew customers: 35", ("Targets",), {"slide": 1}, "text"),
        ("Mention the Leipzig office opening.", ("Targets", "Speaker notes"), {"slide": 1}, "text"),
        ("Regional quotas", ("Regional quotas",), {"slide": 2}, "text"),
        ("Region: North; Quota: EUR 1.1 million; Owner: Jana Weber", ("Regional quotas",), {"slide": 2}, "row"),
        ("Region: South; Quota: EUR 0.9 million; Owner: Ali Demir", ("Regional quotas",), {"slide": 2}, "row"),
        ("Grouped note one", ("Slide 3",), {"slide": 3}, "text"),
        ("Grouped note two", ("Slide 3",), {"slide": 3}, "text"),
    ]
    # Short slides share a chunk, which names them all; small chunks name one slide each.
    chunks = chunk_document(doc, WhitespaceTokenizer(), size=200, overlap=0)
    assert [c.meta["locator"] for c in chunks] == ["slides 1-3"]
    small = chunk_document(doc, WhitespaceTokenizer(), size=12, overlap=0)
    assert {c.meta["locator"] for c in small} == {"slide 1", "slide 2", "slide 3"}


def test_malformed_and_empty_decks_fail_with_one_line(tmp_path: Path) -> None:
    good = tmp_path / "good.pptx"
    make_deck(good)
    broken = tmp_path / "broken.pptx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "ppt/presentation.xml":
                data = data[: len(data) // 2]  # cut off mid-element
            dst.writestr(item, data)
    with pytest.raises(ParseError) as err:
        parse_file(broken)
    assert err.value.reason.startswith("corrupt PPTX") and "\n" not in err.value.reason

    not_zip = tmp_path / "fake.pptx"
    not_zip.write_bytes(b"this is not a presentation at all")
    with pytest.raises(ParseError, match="not a valid PPTX"):
        parse_file(not_zip)

    blank = tmp_path / "blank.pptx"
    deck = Presentation()
    deck.slides.add_slide(deck.slide_layouts[6])
    deck.save(str(blank))
    with pytest.raises(EmptyDocument, match="no text on any slide"):
        parse_file(blank)
