"""`kb summarize`: a cited summary of each file, then an overview of the folder.

Output: Markdown on stdout (or --out FILE); --json prints one document
{"version", "paths", "style", "words", "llm", "files": [entry...], "overview": entry|null,
"counts", "seconds", "stats"}; --jsonl prints one entry per line as each file finishes, then
the overview. An entry is {"type": "file"|"overview", "path", "status", "reason", and for a
summary: "title", "format", "pages", "chunks", "cached", "text", "points", "unsupported",
"stats"}. Each point: {"text", "pages", "sections", "spans", "files", "quotes", "support",
"supported", "mode" ("generative" or "extractive"), "order"}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import (
    ConfigOpt,
    EmbedOpt,
    KbOpt,
    LlmOpt,
    RayAddressOpt,
    RayWorkersOpt,
    ThreadsOpt,
    display_path,
    engine_choice,
    err,
    settings,
)

if TYPE_CHECKING:
    from kb.summarize import FileOutcome, ProgressEvent, Summary, SummaryReport

EXIT_SOME_FAILED = 2
_FORMATS = {"pdf": "PDF", "docx": "Word", "html": "HTML", "markdown": "Markdown", "text": "text"}
JSON_VERSION = 1


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("summarize")(summarize)


def summarize(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (folders are read recursively).")],
    words: Annotated[int, typer.Option("--words", help="Approximate length of each file summary, in words.")] = 150,
    overview_words: Annotated[int, typer.Option("--overview-words", help="Approximate length of the overview.")] = 200,
    style: Annotated[str, typer.Option("--style", help="bullets (one cited point per line) or prose.")] = "bullets",
    out: Annotated[Path | None, typer.Option("--out", help="Write the report to this file, not stdout.")] = None,
    no_overview: Annotated[bool, typer.Option("--no-overview", help="Only the per-file summaries.")] = False,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache", help="Summary cache folder (default: <kb home>/summaries).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write cached summaries.")] = False,
    window_tokens: Annotated[
        int, typer.Option("--window-tokens", help="Largest model prompt in tokens, reply included (at most n_ctx).")
    ] = 2048,
    password: Annotated[str | None, typer.Option(help="Password for encrypted PDFs.")] = None,
    kb: KbOpt = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    llm_model: LlmOpt = None,
    threads: ThreadsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or run summary on stderr.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document (schema in the README).")] = False,
    jsonl_out: Annotated[bool, typer.Option("--jsonl", help="One JSON line per file, then the overview.")] = False,
    engine: Annotated[
        str,
        typer.Option(
            help="Where files are summarised: local (this process) or ray (the workers of a Ray cluster, "
            "each loading the LLM once; needs pip install 'kb[ray]'). The cache and the overview stay here."
        ),
    ] = "local",
    ray_address: RayAddressOpt = None,
    ray_workers: RayWorkersOpt = None,
) -> None:
    """Summarise files and folders: every page is read, every point cites its pages and is checked.

    A folder gets one summary per file and an overview citing the files. The model's points are
    verified against the pages they cite; unverifiable points are dropped, and a part of a
    document with no verified point is represented by its most central sentence, quoted.
    Finished summaries are cached: re-running after a change summarises only changed files,
    and an interrupted run resumes where it stopped. Folders need not be ingested first.

    With --engine ray the files are summarised by the workers of a Ray cluster (every path must
    be readable at the same place on every node); their summaries land in the same cache, so local
    and Ray runs reuse each other's work, and the overview is made here.

    Exit status: 0 if every file was summarised, 2 if some failed, 1 on a usage error.
    """
    from kb.embeddings import load_embedder
    from kb.errors import InputError
    from kb.llm import conversion_for, load_llm, resolve_gguf
    from kb.summarize import Summarizer, SummaryCache, SummaryOptions, gguf_model_id, summarize_paths

    if json_out and jsonl_out:
        raise InputError("choose one of --json and --jsonl")
    ray_args = engine_choice(engine, ray_address, ray_workers)
    s = settings(config, home=kb, embed_model=embed_model, llm_model=llm_model, threads=threads, pdf_password=password)
    options = SummaryOptions(words=words, overview_words=overview_words, style=style, window_tokens=window_tokens)
    embedder = load_embedder(s.embed_model, threads=s.threads, backend=s.embed_backend)
    # The weight format is part of the model: a summary made with Q4_1 is not reused for F16.
    weights = conversion_for(s.llm_model, s.llm_convert)
    model_id = gguf_model_id(resolve_gguf(s.llm_model)) + ("" if weights == "off" else f":{weights}")
    summarizer = Summarizer(lambda: load_llm(s), model_id, embedder, s, options)
    cache = None if no_cache else SummaryCache(cache_dir or s.home / "summaries")
    stream = jsonl_out and out is None
    with _Progress(enabled=not (quiet or json_out or jsonl_out)) as bar:

        def on_file(outcome: FileOutcome) -> None:
            if outcome.status == "failed" and bar.enabled:  # otherwise listed once, at the end
                bar.log(f"{display_path(outcome.path)}: {outcome.reason}")
            if stream:
                _write_line(_entry(outcome.summary, outcome.path, outcome.status, outcome.reason, style))

        report = summarize_paths(
            paths,
            summarizer,
            cache,
            overview=False if no_overview else None,
            on_progress=bar.update,
            on_file=on_file,
            engine=_ray_engine(ray_args),
        )
    if stream:
        if report.overview:
            _write_line(_entry(report.overview, report.overview.path, "summarised", "", style))
    else:
        _emit(_render(report, paths, options, model_id, json_out, jsonl_out), out)
    if not quiet and not json_out and not jsonl_out:
        err(_run_line(report))
    if report.failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def _ray_engine(args: dict[str, Any] | None) -> Any:
    if args is None:
        return None
    from kb.distributed import RaySummaryEngine

    return RaySummaryEngine(**args)


def _render(
    report: SummaryReport, paths: list[Path], options: Any, model_id: str, as_json: bool, as_jsonl: bool
) -> str:
    style = options.style
    if as_jsonl:
        lines = [_entry(f.summary, f.path, f.status, f.reason, style) for f in report.files]
        if report.overview:
            lines.append(_entry(report.overview, report.overview.path, "summarised", "", style))
        return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)
    if as_json:
        doc = {
            "version": JSON_VERSION,
            "paths": [str(p) for p in paths],
            "style": style,
            "words": options.words,
            "llm": model_id,
            "files": [_entry(f.summary, f.path, f.status, f.reason, style) for f in report.files],
            "overview": _entry(report.overview, report.overview.path, "summarised", "", style)
            if report.overview
            else None,
            "counts": _counts(report),
            "seconds": round(report.seconds, 3),
            "stats": report.stats().to_json(),
        }
        return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    return render_markdown(report, paths, style)


def _entry(summary: Summary | None, path: str, status: str, reason: str, style: str) -> dict:
    kind = "overview" if summary is not None and summary.kind == "folder" else "file"
    out: dict[str, Any] = {"type": kind, "path": path, "status": status, "reason": reason}
    if summary is not None:
        body = summary.to_json(style)
        body.pop("path")
        body.pop("kind")
        out.update(body)
    return out


def _counts(report: SummaryReport) -> dict[str, int]:
    statuses = ("summarised", "cached", "failed", "skipped")
    return {s: sum(1 for f in report.files if f.status == s) for s in statuses}


def render_markdown(report: SummaryReport, paths: list[Path], style: str) -> str:
    """The report as Markdown: overview, one section per file, then what could not be summarised."""
    title = ", ".join(display_path(str(p)) for p in paths)
    roots = [p.resolve().parent for p in paths]
    n = sum(1 for f in report.files if f.summary)
    lines = [f"# Summary of {title}", ""]
    if report.overview:
        lines += ["## Overview", "", _meta(report.overview), "", report.overview.text(style), ""]
    for f in report.files:
        if f.summary is not None:
            body = f.summary.text(style) or "_(no verifiable point)_"
            lines += [f"## {_short(f.path, roots)}", "", _meta(f.summary), "", body, ""]
    problems = [f for f in report.files if f.status in ("failed", "skipped")]
    if problems:
        lines += ["## Not summarised", ""]
        lines += [f"- `{_short(f.path, roots)}` ({f.status}): {f.reason}" for f in problems]
        lines.append("")
    if n == 0 and not problems:
        lines += ["_No files found._", ""]
    return "\n".join(lines)


def _short(path: str, roots: list[Path]) -> str:
    """The path relative to the working directory, else to the folder named on the command line."""
    shown = display_path(path)
    if not Path(shown).is_absolute():
        return shown
    for root in roots:
        if Path(path).is_relative_to(root):
            return str(Path(path).relative_to(root))
    return shown


def _meta(s: Summary) -> str:
    if s.kind == "folder":
        what = _n(s.n_chunks, "file")
    else:
        pages = f", {_n(s.n_pages, 'page')}" if s.n_pages else ""
        what = f"{s.title} — {_FORMATS.get(s.format, s.format)}{pages}, {_n(s.n_chunks, 'chunk')}"
    quoted = sum(1 for p in s.points if p.mode == "extractive")
    parts = [what, _n(len(s.points), "point") + (f" ({quoted} quoted verbatim)" if quoted else "")]
    if s.unsupported:
        parts.append(f"{_n(len(s.unsupported), 'unverifiable model statement')} dropped")
    if s.cached:
        parts.append("cached")
    return "_" + " · ".join(parts) + "_"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _run_line(report: SummaryReport) -> str:
    counts = ", ".join(f"{n} {k}" for k, n in _counts(report).items() if n or k in ("summarised", "failed"))
    st = report.stats()
    pages = sum(f.summary.n_pages or 0 for f in report.files if f.summary and not f.summary.cached)
    line = f"{_n(len(report.files), 'file')}: {counts} in {report.seconds:.1f} s"
    if st.llm_calls:
        rate = (st.prompt_tokens + st.output_tokens) / st.llm_seconds if st.llm_seconds else 0.0
        line += (
            f"; {_n(st.llm_calls, 'model call')}, {st.prompt_tokens} prompt + {st.output_tokens} generated "
            f"tokens at {rate:.0f} tokens/s"
        )
        if pages and report.seconds:
            line += f", {pages / report.seconds * 60:.1f} pages/min"
    for f in report.failed:
        line += f"\nfailed: {display_path(f.path)}: {f.reason}"
    return line


def _write_line(data: dict) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    from kb.errors import InputError

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{out}: cannot write the report ({exc.strerror})") from exc


class _Progress:
    """Two bars on stderr: the whole run (by bytes, with an ETA) and the current file's windows."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._p: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._p = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[count]}"),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[item]}"),
                console=Console(stderr=True),
                transient=True,
            )
            self._p.__enter__()
            self._run = self._p.add_task("files", total=None, count="", item="")
            self._file = self._p.add_task("  file", total=None, count="", item="")
        return self

    def update(self, ev: ProgressEvent) -> None:
        """Move both bars."""
        if self._p is None:
            return
        self._p.update(
            self._run,
            completed=ev.bytes_done,
            total=max(1, ev.bytes_total),
            count=f"{ev.files_done}/{ev.files_total}",
            item="",
        )
        name = Path(ev.path).name[-40:]
        self._p.update(
            self._file,
            completed=ev.step,
            total=ev.steps or None,
            count=f"{ev.stage} {ev.step}/{ev.steps}" if ev.steps else ev.stage,
            item=name,
        )

    def log(self, line: str) -> None:
        """A line on stderr that does not break the bars."""
        if self._p is not None:
            self._p.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=sys.stderr)

    def __exit__(self, *exc: Any) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)
