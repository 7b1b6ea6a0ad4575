"""ZIP archives: each member is parsed by its own parser and cited as `archive.zip › member`."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from ingest.builder import DocumentBuilder
from ingest.discover import is_junk
from ingest.errors import EmptyDocument, EncryptedFile, ParseError
from ingest.members import MAX_MEMBER_BYTES, MAX_RATIO, LimitReached, Nesting, add_member, claim
from ingest.types import ParsedDocument


def _skip_reason(info: zipfile.ZipInfo) -> str | None:
    """Why a member is not read before unpacking it, or None."""
    if info.flag_bits & 0x1:
        return "encrypted: unpack the archive with its password and ingest the files"
    if info.file_size > MAX_MEMBER_BYTES:
        return f"{info.file_size >> 20} MB unpacked, over the {MAX_MEMBER_BYTES >> 20} MB limit for a member"
    if info.file_size > (1 << 20) and info.file_size > MAX_RATIO * max(1, info.compress_size):
        return f"compressed {info.file_size // max(1, info.compress_size)}:1, which only a zip bomb is"
    return None


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The member's bytes, never more than the limit, whatever its header claims."""
    with archive.open(info) as fh:
        data = fh.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise ParseError(f"unpacks to more than {MAX_MEMBER_BYTES >> 20} MB")
    return data


def _listed(info: zipfile.ZipInfo) -> bool:
    """Whether a member is a file worth reading (not a folder, hidden file or OS clutter)."""
    if info.is_dir():
        return False
    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
    return bool(parts) and parts[0] != "__MACOSX" and not any(is_junk(p) for p in parts)


def parse_zip(path: Path, *, password: str = "", nesting: Nesting | None = None) -> ParsedDocument:
    """A .zip archive; its members' blocks, under headings named after them."""
    nesting = nesting or Nesting()
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ParseError("not a valid ZIP archive (damaged, or not a zip file)") from exc
    builder = DocumentBuilder()
    warnings: list[str] = []
    members = [info for info in archive.infolist() if _listed(info)]
    encrypted = 0
    with archive:
        for i, info in enumerate(members):
            name = info.filename.replace("\\", "/")
            reason = _skip_reason(info)
            if reason:
                encrypted += bool(info.flag_bits & 0x1)
                warnings.append(f"{name}: not read ({reason})")
                continue
            try:
                claim(nesting, info.file_size)
                data = _read(archive, info)
            except LimitReached as exc:
                warnings.append(f"{len(members) - i} files not read: the archive holds {exc.reason}")
                break
            except (ParseError, zipfile.BadZipFile, NotImplementedError, OSError, EOFError, ValueError) as exc:
                text = exc.reason if isinstance(exc, ParseError) else f"damaged: {type(exc).__name__}"
                warnings.append(f"{name}: not read ({text})")
                continue
            add_member(builder, name, data, nesting, warnings, password=password)
    if builder.empty:
        if members and encrypted == len(members):
            raise EncryptedFile("encrypted ZIP archive: unpack it with its password and ingest the files")
        detail = f"; {warnings[0]}" if warnings else ""
        raise EmptyDocument(f"no readable file inside ({len(members)} files{detail})")
    return builder.build(path, "zip", title=path.stem, warnings=warnings)
