"""Legacy binary Office files (.doc, .xls, .ppt): converted by LibreOffice, headless, to their
modern form, which the modern parser reads. Without LibreOffice they are skipped with a reason
that says so (ingest/formats.py)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from ingest.errors import ParseError
from ingest.types import ParsedDocument

CONVERT_TIMEOUT = 90.0  # seconds; below the parse worker's default timeout, so this reports first
_NAMES = ("soffice", "libreoffice")


def soffice() -> str | None:
    """The LibreOffice program on the PATH, or None."""
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def convert(path: Path, target: str, out_dir: Path, *, timeout: float | None = None) -> Path:
    """Convert `path` to `target` ('docx', 'xlsx', 'pptx') in `out_dir`; the converted file.

    Each run has a profile of its own, so a LibreOffice the user has open is neither used nor
    disturbed, and the whole process group is killed if it overruns.
    """
    timeout = CONVERT_TIMEOUT if timeout is None else timeout
    program = soffice()
    if program is None:
        raise ParseError("LibreOffice (soffice) is not on the PATH: install it to read legacy Office files")
    profile = out_dir / "profile"
    cmd = [
        program,
        f"-env:UserInstallation={profile.as_uri()}",
        "--headless",
        "--norestore",
        "--convert-to",
        target,
        "--outdir",
        str(out_dir),
        str(path),
    ]
    env = {**os.environ, "HOME": str(out_dir)}
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise ParseError(f"LibreOffice did not finish converting within {timeout:g} s") from exc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    result = out_dir / f"{path.stem}.{target}"
    if proc.returncode != 0 or not result.exists():
        last = (output or b"").decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        raise ParseError(f"LibreOffice could not convert the file ({last[0][:120]})")
    return result


def parse_legacy(path: Path) -> ParsedDocument:
    """A .doc, .xls or .ppt file, through LibreOffice and the parser of its modern form."""
    from ingest.formats import LEGACY, _ole2_kind, _parser, detect_format

    # An Office file under another name: what its streams hold decides.
    target = LEGACY.get(path.suffix.lower()) or _TARGETS.get(_ole2_kind(path), "docx")
    with tempfile.TemporaryDirectory(prefix="kb-soffice-") as folder:
        work = Path(folder)
        source = work / f"source.{_SOURCE[target]}"
        shutil.copyfile(path, source)  # a plain name: LibreOffice names its output after it
        converted = convert(source, target, work)
        with converted.open("rb") as fh:
            fmt = detect_format(converted, fh.read(1024))
        doc = _parser(fmt)(converted)
    return dataclasses.replace(doc, path=str(path), format=_SOURCE[target])


_SOURCE = {"docx": "doc", "xlsx": "xls", "pptx": "ppt"}
_TARGETS = {"doc": "docx", "xls": "xlsx", "ppt": "pptx"}
