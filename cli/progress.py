"""Progress bars on stderr, silent when stderr is not a terminal or when asked."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Bar:
    """A rich progress bar with an ETA; `log` prints a line above it."""

    def __init__(self, description: str, *, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None
        self.description = description

    def __enter__(self) -> Bar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[item]}"),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=None, item="")
        return self

    def update(self, done: int, total: int | None, item: str = "") -> None:
        """Move the bar."""
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total, item=item[-50:])

    def log(self, line: str) -> None:
        """A line on stderr that does not break the bar."""
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=sys.stderr)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def ingest_progress(bar: Bar, also: Callable[[int, int, Any], None] | None = None) -> Callable[[int, int, Any], None]:
    """The `progress` callback of kb.indexer.ingest for a bar: new failures are logged above it,
    and a large file shows its embedded passages while it is embedded. `also` is told every call."""
    from cli.common import display_path

    def progress(done: int, total: int, result: Any) -> None:
        if also:
            also(done, total, result)
        if result is not None and result.status == "failed" and not result.known and bar.enabled:
            bar.log(f"{display_path(result.path)}: {result.reason}")
        item = Path(result.path).name if result else ""
        if result is not None and result.status == "embedding":
            item += f" ({result.reason})"
        bar.update(done, total, item)

    return progress
