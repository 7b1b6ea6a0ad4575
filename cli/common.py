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


def page_label(page_start: int | None, page_end: int | None) -> str:
    """'p. 3', 'pp. 3-4' or ''."""
    if not page_start:
        return ""
    return f"p. {page_start}" if page_start == page_end or not page_end else f"pp. {page_start}-{page_end}"


def display_path(path: str) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
