"""ZIP archives: members parsed by their own parsers and cited as `archive.zip › member`, within
limits on size, count and depth, so that a zip bomb fails alone."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from ingest import archive, members
from ingest.archive import parse_zip
from ingest.errors import EmptyDocument, EncryptedFile, ParseError
from ingest.formats import parse_file
from ingest.members import Budget, Nesting
from tests.ingest_fixtures import make_pdf


def _zip(files: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as out:
        for name, data in files.items():
            out.writestr(name, data)
    return buffer.getvalue()


def test_members_are_parsed_and_named(tmp_path: Path) -> None:
    path = tmp_path / "handover.zip"
    path.write_bytes(
        _zip(
            {
                "docs/": b"",
                "docs/policy.md": b"# Policy\n\nLaptops are locked after 5 minutes.",
                "docs/scan.pdf": make_pdf([["Page one."], ["Page two of the scan."]]),
                "__MACOSX/docs/._policy.md": b"junk",
                "docs/.DS_Store": b"junk",
                "inner.zip": _zip({"deep.txt": b"A file two archives down."}),
                "song.mp3": b"ID3" + b"\x00" * 100,
            }
        )
    )
    doc = parse_file(path)
    assert doc.format == "zip" and doc.title == "handover"
    got = [(doc.block_text(b), b.heading_path, b.page, b.meta["member"]) for b in doc.blocks]
    assert got == [
        ("Policy", ("docs/policy.md", "Policy"), None, "docs/policy.md"),
        ("Laptops are locked after 5 minutes.", ("docs/policy.md", "Policy"), None, "docs/policy.md"),
        ("Page one.", ("docs/scan.pdf",), 1, "docs/scan.pdf"),
        ("Page two of the scan.", ("docs/scan.pdf",), 2, "docs/scan.pdf"),
        ("A file two archives down.", ("inner.zip", "deep.txt"), None, "inner.zip › deep.txt"),
    ]
    assert doc.warnings == ("song.mp3: not read (audio or video file: not read)",)


def test_zip_bomb_members_are_refused_before_unpacking(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    path.write_bytes(_zip({"readme.txt": b"Real text beside the bomb.", "zeros.bin.txt": b"\x00" * (8 << 20)}))
    doc = parse_file(path)
    assert doc.text == "Real text beside the bomb."
    assert len(doc.warnings) == 1 and "zip bomb" in doc.warnings[0]


def test_a_member_over_the_size_limit_is_skipped_and_never_read_past_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1000)
    path = tmp_path / "big.zip"
    path.write_bytes(_zip({"big.txt": b"word " * 1000, "small.txt": b"small file"}, method=zipfile.ZIP_STORED))
    doc = parse_zip(path)
    assert doc.text == "small file"
    assert doc.warnings == ("big.txt: not read (0 MB unpacked, over the 0 MB limit for a member)",)
    # Whatever size a header declares, reading stops one byte past the limit.
    with zipfile.ZipFile(path) as zf, pytest.raises(ParseError, match="unpacks to more than"):
        archive._read(zf, zf.getinfo("big.txt"))


def test_member_count_and_total_size_limits(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    path.write_bytes(_zip({f"f{i:03}.txt": f"file number {i}".encode() for i in range(10)}))
    doc = parse_zip(path, nesting=Nesting(budget=Budget(members=3)))
    assert doc.text.split("\n\n") == ["file number 0", "file number 1", "file number 2"]
    assert doc.warnings == ("7 files not read: the archive holds more than 1000 files inside",)
    doc = parse_zip(path, nesting=Nesting(budget=Budget(bytes=30)))
    assert len(doc.blocks) == 2 and "MB unpacked" in doc.warnings[-1]


def test_nesting_depth_is_bounded(tmp_path: Path) -> None:
    data = b"The innermost file."
    name = "level.txt"
    for level in range(members.MAX_DEPTH + 1):
        data, name = _zip({name: data}), f"level{level}.zip"
    path = tmp_path / "russian-doll.zip"
    path.write_bytes(data)
    with pytest.raises(EmptyDocument) as err:
        parse_file(path)
    assert "no readable file inside" in err.value.reason and "\n" not in err.value.reason
    # One level less is read.
    data = b"The innermost file."
    name = "level.txt"
    for level in range(members.MAX_DEPTH):
        data, name = _zip({name: data}), f"level{level}.zip"
    path.write_bytes(data)
    doc = parse_file(path)
    assert doc.text == "The innermost file." and doc.blocks[0].meta["member"].count(" › ") == members.MAX_DEPTH - 1


def test_encrypted_damaged_and_empty_archives(tmp_path: Path) -> None:
    plain = _zip({"secret.txt": b"hidden"}, method=zipfile.ZIP_STORED)
    # Set the "encrypted" flag bit in both headers: zipfile cannot write encrypted members.
    encrypted = bytearray(plain)
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = encrypted.find(sig)
        offset = at + (6 if sig == b"PK\x03\x04" else 8)
        encrypted[offset] |= 1
    path = tmp_path / "locked.zip"
    path.write_bytes(bytes(encrypted))
    with pytest.raises(EncryptedFile, match="encrypted ZIP archive"):
        parse_file(path)

    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(plain[: len(plain) // 2])
    with pytest.raises(ParseError) as err:
        parse_file(damaged)
    assert "\n" not in err.value.reason

    empty = tmp_path / "empty.zip"
    empty.write_bytes(_zip({}))
    with pytest.raises(EmptyDocument):
        parse_file(empty)


def test_member_file_names_are_safe() -> None:
    assert members.safe_name("../../etc/passwd") == "passwd"
    assert members.safe_name("a\\b\\report:v2?.pdf") == "report_v2_.pdf"
    assert members.safe_name("") == "member"
    long = members.safe_name("x" * 300 + ".docx")
    assert long.endswith(".docx") and len(long) <= 120
