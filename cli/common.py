"""Options and helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from kb.config import Settings

KbOpt = Annotated[
    Path | None,
    typer.Option("--kb", help="Knowledge-base folder (default: $KB_HOME or ~/.local/share/kb).", show_default=False),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Config file (default: $KB_CONFIG or ~/.config/kb/config.toml).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (schema in the README).")]
EmbedOpt = Annotated[
    str | None, typer.Option("--embed-model", help="Sentence-transformers model folder ('default' = all-MiniLM-L6-v2).")
]
LlmOpt = Annotated[
    str | None, typer.Option("--llm-model", help="GGUF model file ('default' = SmolLM2-135M-Instruct Q4_1).")
]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="CPU threads (default: all cores).")]
ModeOpt = Annotated[
    str | None, typer.Option("--mode", help="Retrieval: hybrid (default), dense (vectors) or keyword (BM25).")
]


def settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, config file and environment, then the command's flags."""
    if "home" in overrides and overrides["home"] is not None:
        overrides["home"] = Path(overrides["home"]).expanduser()
    return Settings.load(config).with_overrides(**overrides)


def print_json(data: Any) -> None:
    """JSON to stdout, UTF-8, one document."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def err(message: str) -> None:
    """A line on stderr."""
    typer.echo(message, err=True)


def page_label(page_start: int | None, page_end: int | None, *, ocr: bool = False) -> str:
    """'p. 3', 'pp. 3-4' or ''; with `ocr` (the text was read by OCR) 'p. 3, OCR'."""
    if not page_start:
        return "OCR" if ocr else ""
    label = f"p. {page_start}" if page_start == page_end or not page_end else f"pp. {page_start}-{page_end}"
    return f"{label}, OCR" if ocr else label


def source_label(chunk: Any) -> str:
    """The file a passage comes from, and the file inside it when there is one:
    'samples/mail.eml › report.pdf'."""
    member = (getattr(chunk, "extra", None) or {}).get("member")
    path = display_path(chunk.path)
    return f"{path} › {member}" if member else path


def position_label(chunk: Any, *, headings: bool = True, pages: tuple[int | None, int | None] | None = None) -> str:
    """Where in that file: 'p. 3', 'slide 2', 'Budget!A2:F40', then the heading path (without
    the member's name, which source_label shows): 'p. 3, Travel > Hotels'; text read by OCR says
    so: 'p. 3, OCR'. `pages` narrows the chunk's pages to those of a quote."""
    extra = getattr(chunk, "extra", None) or {}
    first, last = pages or (chunk.page_start, chunk.page_end)
    parts = [page_label(first, last, ocr="ocr" in extra), str(extra.get("locator") or "")]
    if headings:
        path = list(chunk.heading_path)
        names = str(extra.get("member") or "").split(" › ")
        if extra.get("member") and path[: len(names)] == names:
            path = path[len(names) :]
        parts.append(" > ".join(path))
    return ", ".join(p for p in parts if p)


def location(chunk: Any, *, headings: bool = True, pages: tuple[int | None, int | None] | None = None) -> str:
    """A citation's full location: 'samples/mail.eml › report.pdf, p. 3, Costs'."""
    where = position_label(chunk, headings=headings, pages=pages)
    return ", ".join(p for p in (source_label(chunk), where) if p)


def display_path(path: str) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
