"""Options and helpers shared by the commands."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kb.config import Loaded, Settings

if TYPE_CHECKING:
    from kb.embeddings import Embedder

KbOpt = Annotated[
    Path | None,
    typer.Option("--kb", help="Knowledge-base folder (default: $KB_HOME or ~/.local/share/kb).", show_default=False),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Config file (default: $KB_CONFIG or ~/.config/kb/config.toml).")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON (schemas in docs/json.md); errors too.")
]
EmbedOpt = Annotated[
    str | None, typer.Option("--embed-model", help="Sentence-transformers model folder ('default' = all-MiniLM-L6-v2).")
]
LlmOpt = Annotated[
    str | None,
    typer.Option("--llm-model", help="LLM: a name from `kb models`, 'default', or a path to a .gguf file."),
]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="CPU threads (default: all cores).")]
ModeOpt = Annotated[
    str | None, typer.Option("--mode", help="Retrieval: hybrid (default), dense (vectors) or keyword (BM25).")
]

RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        help="Ray cluster to join with --engine ray, e.g. auto or HEAD:6379 (default: RAY_ADDRESS, or a "
        "cluster started with `ray start` on this machine, else a local one for this run)."
    ),
]
RayWorkersOpt = Annotated[
    int | None,
    typer.Option(help="Ray workers (actors, one CPU each) with --engine ray (default: one per CPU of the cluster)."),
]


def engine_choice(name: str, address: str | None, workers: int | None) -> dict[str, Any] | None:
    """The Ray engine's arguments for --engine ray, None for local; Ray's absence is a one-line error."""
    from kb.distributed import ENGINES, import_ray
    from kb.errors import InputError

    if name not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)} (got {name!r})")
    if name == "local":
        if address is not None or workers is not None:
            raise InputError("--ray-address and --ray-workers need --engine ray")
        return None
    if workers is not None and workers < 1:
        raise InputError(f"--ray-workers must be at least 1 (got {workers})")
    import_ray()  # fail before any work starts
    return {"address": address, "workers": workers}


def settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, config file and environment, then the command's flags."""
    return loaded_settings(config, **overrides).settings


_warned: set[str] = set()


def loaded_settings(config: Path | None = None, **overrides: Any) -> Loaded:
    """Settings with where each value comes from; a KB_* variable that names no setting is warned about."""
    from kb.config import load_with_sources, unknown_env_warning

    if overrides.get("home") is not None:
        overrides["home"] = Path(overrides["home"]).expanduser()
    loaded = load_with_sources(config).with_flags(**overrides)
    for name in loaded.unknown_env:
        if name not in _warned:
            _warned.add(name)
            err(f"kb: warning: {unknown_env_warning(name)}")
    return loaded


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
    """Where in that file: 'p. 3', 'slide 2', 'Budget!A2:F40', then the section (the heading path below
    the document title, without the member's name, which source_label shows): 'p. 3, § Travel >
    Hotels'; text read by OCR says so: 'p. 3, OCR'. `pages` narrows the chunk's pages to those of a
    quote."""
    extra = getattr(chunk, "extra", None) or {}
    first, last = pages or (chunk.page_start, chunk.page_end)
    parts = [page_label(first, last, ocr="ocr" in extra), str(extra.get("locator") or "")]
    if headings:
        path = list(chunk.heading_path)
        names = str(extra.get("member") or "").split(" › ")
        if extra.get("member") and path[: len(names)] == names:
            path = path[len(names) :]
        where = section(path)
        parts.append(f"§ {where}" if where else "")
    return ", ".join(p for p in parts if p)


def location(chunk: Any, *, headings: bool = True, pages: tuple[int | None, int | None] | None = None) -> str:
    """A citation's full location: 'samples/mail.eml › report.pdf, p. 3, Costs'."""
    where = position_label(chunk, headings=headings, pages=pages)
    return ", ".join(p for p in (source_label(chunk), where) if p)


def chunk_view(located: dict) -> Any:
    """What source_label, position_label and location read, from the JSON of a search hit or an
    answer source (its path, pages, heading, member and locator), so a result that came from a
    server is shown the same way as one made in-process."""
    from types import SimpleNamespace

    return SimpleNamespace(
        path=located["path"],
        page_start=located.get("page_start"),
        page_end=located.get("page_end"),
        heading_path=tuple(located.get("heading") or ()),
        extra={k: located[k] for k in ("member", "locator") if located.get(k)},
    )


def display_path(path: str) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def plural(n: int, noun: str, many: str | None = None) -> str:
    """'1 file', '2 files' ('1 match', '2 matches' with `many`)."""
    return f"{n} {noun if n == 1 else many or noun + 's'}"


def section(heading_path: tuple[str, ...] | list[str]) -> str:
    """The heading path below the document title, as a citation shows it ('2. Passwords > Rotation');
    the title alone when it is the only heading."""
    parts = list(heading_path)
    return " > ".join(parts[1:] or parts)


def width() -> int:
    """Columns to wrap text to: the terminal's, at most 100."""
    return max(40, min(100, shutil.get_terminal_size((80, 24)).columns))


def wrap(text: str, indent: str = "", first: str | None = None) -> str:
    """Text wrapped to the terminal width, paragraphs (blank lines) and list lines kept."""
    out = []
    lead = indent if first is None else first
    for para in text.split("\n"):
        if not para.strip():
            out.append("")
            continue
        out.append(
            textwrap.fill(para.strip(), width(), initial_indent=lead, subsequent_indent=indent, break_on_hyphens=False)
        )
        lead = indent
    return "\n".join(out)


@contextmanager
def spinner(label: str, *, enabled: bool = True) -> Iterator[Any]:
    """A spinner with a label on stderr while a slow step runs, only on a terminal; `.update(label)` relabels."""
    if not (enabled and sys.stderr.isatty()):
        yield _NoStatus()
        return
    from rich.console import Console

    with Console(stderr=True).status(label, spinner="dots") as status:
        yield status


class _NoStatus:
    def update(self, *_: Any, **__: Any) -> None:
        """Nothing to update when no spinner is shown."""


def prepare_embedder(embedder: Embedder, *, quiet: bool = False) -> None:
    """Make the one-time preparation of the embedding model (its ONNX export) visible when it happens."""
    from kb.embeddings import needs_preparation, prepare

    if not needs_preparation(embedder):
        return
    if not quiet:
        err("preparing the embedding model (once; about 20 s)...")
    with spinner("preparing the embedding model (once)", enabled=not quiet):
        prepare(embedder)


ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Use a running `kb serve`: a URL, 'auto' (the server announced for this knowledge base, when it "
        "runs; the default, or $KB_SERVER) or 'off' (always in-process).",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="API token for a server that needs one (default: $KB_TOKEN).", show_default=False),
]


def server_client(server: str | None, token: str | None, home: Path, *, in_process_only: bool = False) -> Any:
    """The kb.server.client.ServerClient to use, or None to work in-process.

    'auto' uses the server announced in the knowledge-base folder when it is alive and usable,
    unless the command asked for something only an in-process run can do (`in_process_only`:
    another model, thread count...); an explicit URL must answer.
    """
    import os

    from kb.server.client import connect, find_server

    choice = server or os.environ.get("KB_SERVER") or "auto"
    token = token or os.environ.get("KB_TOKEN") or None
    if choice == "off":
        return None
    if choice == "auto":
        return None if in_process_only else find_server(home.expanduser().resolve(), token)
    return connect(choice, token)
