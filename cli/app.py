"""The `kb` command line: parses arguments, calls kb/, renders text, JSON and progress.

Heavy libraries (torch, sentence-transformers, faiss, llama.cpp) are imported inside the
commands that need them, so `kb --help` answers at once.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from cli import (
    ask_cmd,
    chat_cmd,
    eval_cmd,
    eval_qa_cmd,
    eval_summaries_cmd,
    groups_cmd,
    ingest_cmd,
    maintenance_cmd,
    models_cmd,
    search_cmd,
    serve_cmd,
    status_cmd,
    summarize_cmd,
    tune_cmd,
)

app = typer.Typer(
    name="kb",
    help=(
        "An offline knowledge base for your documents: ingest folders of PDF, Word, HTML, Markdown and "
        "text files, then search them, ask questions with cited answers, and summarise files or folders. "
        "Nothing leaves this machine.\n\n"
        "Knowledge base location: --kb PATH, else $KB_HOME, else ~/.local/share/kb. "
        "Settings: ~/.config/kb/config.toml (or $KB_CONFIG), KB_* environment variables, then flags."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"kb {version('kb')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("kb (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print kb's version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """An offline knowledge base for your documents."""


ingest_cmd.register(app)
search_cmd.register(app)
ask_cmd.register(app)
status_cmd.register(app)
maintenance_cmd.register(app)
summarize_cmd.register(app)
groups_cmd.register(app)
serve_cmd.register(app)
chat_cmd.register(app)
tune_cmd.register(app)
models_cmd.register(app)
eval_qa_cmd.register(eval_cmd.app)
eval_summaries_cmd.register(eval_cmd.app)
app.add_typer(eval_cmd.app, name="eval")


def _json_requested(argv: list[str]) -> bool:
    """Whether the command line asks for JSON output, so that errors come as JSON too."""
    return any(a in ("--json", "--jsonl") for a in argv)


def fail(message: str, code: int, argv: list[str]) -> None:
    """Report an error: one line on stderr, and with --json also {"error", "code"} on stdout; then exit."""
    print(f"kb: error: {message}", file=sys.stderr)
    if _json_requested(argv):
        sys.stdout.write(json.dumps({"error": message, "code": code}, ensure_ascii=False) + "\n")
    sys.exit(code)


def main() -> None:
    """Entry point: run the app, turning user-facing errors into one line on stderr."""
    from kb.errors import KBError

    argv = sys.argv[1:]
    try:
        # Not standalone: click would otherwise swallow Ctrl-C with a bare "Aborted!".
        code = app(standalone_mode=False)
    except KBError as exc:
        fail(str(exc), exc.exit_code, argv)
    except (KeyboardInterrupt, typer.Abort):
        print("kb: interrupted; everything finished before the interrupt is kept", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: the message click would print
        # Exit 2 is kb's "batch finished with failures"; usage errors are user errors (1), and
        # plain `kb` showing its help is no error at all.
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
            sys.exit(0)
        if _json_requested(argv):
            fail(exc.format_message(), 1, argv)  # type: ignore[attr-defined]
        exc.show()  # type: ignore[attr-defined]
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
