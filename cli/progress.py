"""Progress bars on stderr, silent when stderr is not a terminal or when asked."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self


class Bar:
    """A rich progress bar with an ETA; `log` prints a line above it."""

    def __init__(self, description: str, *, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None
        self.description = description

    def _columns(self) -> list[Any]:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        return [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[item]}"),
        ]

    def __enter__(self) -> Self:
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress

            self._progress = Progress(*self._columns(), console=Console(stderr=True), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=None, item="", counts="")
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


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s" if seconds > 0.5 else "…"


def work_counts(work: Any) -> str:
    """'12/40 files · 1,204 pages 95/s · 8,830 passages 88/s' for a kb.indexer.Work."""
    return (
        f"{work.files_done}/{work.files_total} files · {work.pages:,} pages {_rate(work.pages, work.seconds)} · "
        f"{work.passages:,} passages {_rate(work.passages, work.seconds)}"
    )


class IngestBar(Bar):
    """The bar of `kb ingest` and `kb rebuild`: filled by the bytes of the files parsed and
    stored (so a 600-page PDF weighs what it costs), with files, pages and passages counted,
    their rates, and an ETA from that fill."""

    def _columns(self) -> list[Any]:
        from rich.progress import BarColumn, TextColumn, TimeRemainingColumn

        return [
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[item]}"),
        ]

    _has_work = False

    def update(self, done: int, total: int | None, item: str = "") -> None:
        """Name the file being worked on; until pages are stored, count the files checked."""
        if self._progress is not None:
            if self._has_work:
                self._progress.update(self._task, item=item[-40:])
            else:
                self._progress.update(self._task, counts=f"{done}/{total} files", item=item[-40:])

    def work(self, work: Any) -> None:
        """The `on_work` callback of kb.indexer.ingest."""
        self._has_work = True
        if self._progress is not None:
            self._progress.update(
                self._task,
                completed=work.bytes_done,
                total=work.bytes_total or None,
                counts=work_counts(work),
            )


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
