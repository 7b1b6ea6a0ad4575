"""Markdown parsing: headings, front matter, code, inline markup clean-up."""

from __future__ import annotations

from pathlib import Path

from ingest.markdown import parse_markdown

GUIDE = """---
title: "Onboarding Guide"
tags: [hr, onboarding]
---

Welcome aboard
==============

Read the **whole** guide and the [handbook](https://intranet/handbook.pdf).
![team photo](img/team.png)

## First week ##

* Collect your *laptop* from IT
* Meet your buddy at `10:00`
* Call set_up_account() in the_portal

Setup
-----

```bash
pip install **not-emphasis** [x](y)
```

### Tools

| Tool | Owner |
|------|:-----:|
| Jira | Ops   |

> Quoted ~~old~~ advice with <span>inline html</span> and <https://example.com>.
> Escaped \\*stars\\*.

[handbook]: https://intranet/handbook.pdf

***

# Appendix
Last line.
"""


def test_markdown_structure_and_cleanup(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(GUIDE, encoding="utf-8")
    doc = parse_markdown(path)
    assert doc.format == "markdown"
    assert doc.title == "Onboarding Guide"
    got = [(doc.block_text(b), b.heading_path) for b in doc.blocks]
    assert got == [
        ("Welcome aboard", ("Welcome aboard",)),
        ("Read the whole guide and the handbook.", ("Welcome aboard",)),
        ("First week", ("Welcome aboard", "First week")),
        (
            "* Collect your laptop from IT\n* Meet your buddy at 10:00\n* Call set_up_account() in the_portal",
            ("Welcome aboard", "First week"),
        ),
        ("Setup", ("Welcome aboard", "Setup")),
        ("pip install **not-emphasis** [x](y)", ("Welcome aboard", "Setup")),
        ("Tools", ("Welcome aboard", "Setup", "Tools")),
        ("Tool | Owner\nJira | Ops", ("Welcome aboard", "Setup", "Tools")),
        (
            "Quoted old advice with inline html and https://example.com.\nEscaped *stars*.",
            ("Welcome aboard", "Setup", "Tools"),
        ),
        ("Appendix", ("Appendix",)),
        ("Last line.", ("Appendix",)),
    ]
    assert "title:" not in doc.text and "team photo" not in doc.text and "intranet" not in doc.text


def test_blocks_index_into_text(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(GUIDE, encoding="utf-8")
    doc = parse_markdown(path)
    pieces = [doc.block_text(b) for b in doc.blocks]
    assert doc.text == "\n\n".join(pieces)
    assert all(0 <= b.start < b.end <= len(doc.text) for b in doc.blocks)


def test_title_from_first_heading_and_tilde_fence(tmp_path: Path) -> None:
    path = tmp_path / "notes.markdown"
    path.write_text("Intro text.\n\n## Setup steps\n\n~~~\n# not a heading\n~~~\n", encoding="utf-8")
    doc = parse_markdown(path)
    assert doc.title == "Setup steps"
    assert [(doc.block_text(b), b.heading_path) for b in doc.blocks] == [
        ("Intro text.", ()),
        ("Setup steps", ("Setup steps",)),
        ("# not a heading", ("Setup steps",)),
    ]


def test_non_utf8_markdown(tmp_path: Path) -> None:
    path = tmp_path / "umlauts.md"
    path.write_bytes("# Größe\n\nÄrger über Öl.\n".encode("cp1252"))
    doc = parse_markdown(path)
    assert doc.text == "Größe\n\nÄrger über Öl."
