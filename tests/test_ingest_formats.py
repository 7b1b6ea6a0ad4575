"""Choosing the parser, turning library failures into ParseError, and discovering files."""

from __future__ import annotations

import os
from pathlib import Path

import docx
import pytest

from ingest import formats
from ingest.discover import discover
from ingest.errors import EmptyDocument, EncryptedFile, ParseError, UnsupportedFormat
from ingest.formats import SUPPORTED, parse_file
from tests.ingest_fixtures import make_pdf


def test_supported_extensions() -> None:
    assert SUPPORTED[".pdf"] == "pdf"
    assert SUPPORTED[".docx"] == "docx"
    assert SUPPORTED[".html"] == SUPPORTED[".htm"] == "html"
    assert SUPPORTED[".md"] == "markdown"
    assert SUPPORTED[".txt"] == SUPPORTED[".rst"] == "text"
    assert all(ext == ext.lower() and ext.startswith(".") for ext in SUPPORTED)
    assert ".doc" not in SUPPORTED


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("a.TXT", b"Upper-case extension.", "text"),
        ("b.md", b"# Title\n\nBody.", "markdown"),
        ("c.HTM", b"<p>Para</p>", "html"),
        ("d.log", b"2024-01-01 started", "text"),
    ],
)
def test_dispatch_by_extension(tmp_path: Path, name: str, content: bytes, fmt: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert parse_file(path).format == fmt


def test_content_beats_a_lying_extension(tmp_path: Path) -> None:
    pdf_as_txt = tmp_path / "scan.txt"
    pdf_as_txt.write_bytes(make_pdf([["Really a PDF."]]))
    doc = parse_file(pdf_as_txt)
    assert (doc.format, doc.text) == ("pdf", "Really a PDF.")

    docx_as_doc = tmp_path / "letter.doc"
    document = docx.Document()
    document.add_paragraph("Really a DOCX.")
    document.save(str(docx_as_doc))
    doc = parse_file(docx_as_doc)
    assert (doc.format, doc.text) == ("docx", "Really a DOCX.")


def test_unsupported_and_legacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.legacy

    monkeypatch.setattr(ingest.legacy, "soffice", lambda: None)  # as on a machine without LibreOffice
    xyz = tmp_path / "data.xyz"
    xyz.write_bytes(b"whatever")
    # Every reason says what to do: convert the file, or silence it with .kbignore.
    pattern = r"^unsupported file type '\.xyz': save it as .*'\*\.xyz' to \.kbignore"
    with pytest.raises(UnsupportedFormat, match=pattern):
        parse_file(xyz)
    noext = tmp_path / "README"
    noext.write_bytes(b"text")
    with pytest.raises(UnsupportedFormat, match="no extension"):
        parse_file(noext)
    legacy = tmp_path / "old.doc"
    legacy.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    with pytest.raises(UnsupportedFormat, match=r"legacy Word \.doc needs LibreOffice.*`soffice` is on the PATH"):
        parse_file(legacy)


def test_password_protected_office_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.docx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600 + "EncryptedPackage".encode("utf-16-le"))
    with pytest.raises(EncryptedFile, match="password-protected"):
        parse_file(path)


def test_empty_file_of_any_format(tmp_path: Path) -> None:
    names = ("pdf", "docx", "html", "txt", "pptx", "xlsx", "csv", "eml", "msg", "epub", "odt", "rtf", "zip", "doc")
    for name in (f"empty.{ext}" for ext in names):
        path = tmp_path / name
        path.write_bytes(b"")
        with pytest.raises(EmptyDocument, match=r"^empty file$"):
            parse_file(path)


def test_library_exceptions_become_parse_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Path) -> None:
        raise ValueError("unexpected token at line 1\n" + "x" * 500)

    import ingest.html

    monkeypatch.setattr(ingest.html, "parse_html", broken)
    path = tmp_path / "page.html"
    path.write_text("<p>hi</p>", encoding="utf-8")
    with pytest.raises(ParseError) as err:
        parse_file(path)
    reason = str(err.value)
    assert reason.startswith("corrupt HTML: ValueError: unexpected token at line 1 x")
    assert "\n" not in reason and len(reason) < 160 and str(path) not in reason


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="cannot read file"):
        parse_file(tmp_path / "missing.txt")


def test_detect_format_reads_only_the_head(tmp_path: Path) -> None:
    path = tmp_path / "x.pdf"
    path.write_bytes(b"%PDF-1.7 rest")
    assert formats.detect_format(path, b"%PDF-1.7 rest") == "pdf"


# discover -----------------------------------------------------------------------------------


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_discover_sorted_recursive_and_skips_junk(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    for rel in ("b.txt", "a.pdf", "sub/z.md", "sub/deeper/y.html", "c.xyz", "aa/x.txt"):
        _touch(root / rel)
    for junk in (".hidden.txt", ".git/config", "~$report.docx", "Thumbs.db", ".DS_Store", "sub/desktop.ini"):
        _touch(root / junk)
    found = [p.relative_to(root).as_posix() for p in discover([root])]
    assert found == ["a.pdf", "aa/x.txt", "b.txt", "c.xyz", "sub/deeper/y.html", "sub/z.md"]


def test_discover_explicit_files_and_duplicates(tmp_path: Path) -> None:
    a = _touch(tmp_path / "a.txt")
    hidden = _touch(tmp_path / ".notes.txt")
    assert list(discover([a, hidden, a, tmp_path])) == [a, hidden]


def test_discover_missing_path_raises_up_front(tmp_path: Path) -> None:
    _touch(tmp_path / "a.txt")
    with pytest.raises(FileNotFoundError):
        discover([tmp_path, tmp_path / "nope"])


def test_discover_survives_symlink_loops_and_special_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _touch(root / "sub" / "doc.txt")
    os.symlink(root, root / "sub" / "loop")  # points back up
    os.symlink(root / "missing", root / "broken-link")
    os.mkfifo(root / "pipe.txt")  # reading a FIFO would block forever
    found = [p.relative_to(root).as_posix() for p in discover([root])]
    assert found == ["sub/doc.txt"]


def test_discover_reports_unreadable_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.discover

    real_scandir = os.scandir

    def scandir(path: str | Path) -> object:
        # Simulated: chmod cannot lock out root, which tests may run as.
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(ingest.discover.os, "scandir", scandir)
    _touch(tmp_path / "locked" / "secret.txt")
    _touch(tmp_path / "open.txt")
    errors: list[Path] = []
    found = list(discover([tmp_path], on_error=lambda path, exc: errors.append(path)))
    assert found == [tmp_path / "open.txt"]
    assert errors == [tmp_path / "locked"]


def test_kbignore_patterns_apply_to_folder_and_below(tmp_path):
    from ingest.discover import discover

    (tmp_path / ".kbignore").write_text("# comment\n*.tmp\ndrafts/\n")
    (tmp_path / "keep.txt").write_text("x")
    (tmp_path / "skip.tmp").write_text("x")
    (tmp_path / "drafts").mkdir()
    (tmp_path / "drafts" / "a.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.tmp").write_text("x")
    (tmp_path / "sub" / "b.txt").write_text("x")
    (tmp_path / "sub" / ".kbignore").write_text("b.txt\n")
    (tmp_path / "sub" / "c.txt").write_text("x")
    names = sorted(p.relative_to(tmp_path).as_posix() for p in discover([tmp_path]))
    assert names == ["keep.txt", "sub/c.txt"]
