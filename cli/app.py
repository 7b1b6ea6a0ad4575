"""The `kb` command line: parses arguments, calls kb/, renders text, JSON and progress.

Heavy libraries (torch, sentence-transformers, faiss, llama.cpp) are imported inside the
commands that need them, so `kb --help` answers at once.
"""

from __future__ import annotations

import sys

import typer

from cli import (
    ask_cmd,
    eval_cmd,
    eval_qa_cmd,
    eval_summaries_cmd,
    ingest_cmd,
    maintenance_cmd,
    search_cmd,
    status_cmd,
    summarize_cmd,
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

ingest_cmd.register(app)
search_cmd.register(app)
ask_cmd.register(app)
status_cmd.register(app)
maintenance_cmd.register(app)
summarize_cmd.register(app)
eval_qa_cmd.register(eval_cmd.app)
eval_summaries_cmd.register(eval_cmd.app)
app.add_typer(eval_cmd.app, name="eval")


def main() -> None:
    """Entry point: run the app, turning user-facing errors into one line on stderr."""
    from kb.errors import KBError

    try:
        # Not standalone: click would otherwise swallow Ctrl-C with a bare "Aborted!".
        code = app(standalone_mode=False)
    except KBError as exc:
        print(f"kb: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        print("kb: interrupted; everything finished before the interrupt is kept", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: the message click would print
        exc.show()  # type: ignore[attr-defined]
        # Exit 2 is kb's "batch finished with failures"; usage errors are user errors (1), and
        # plain `kb` showing its help is no error at all.
        sys.exit(0 if type(exc).__name__ == "NoArgsIsHelpError" else 1)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
