"""OCR: the text of page images and image files, with RapidOCR.

`rapidocr-onnxruntime` ships its PP-OCRv4 detection and recognition models inside its wheel
and runs them on onnxruntime, so OCR installs from the package index alone and reads nothing
from the network. It is loaded on first use, one thread per parse worker (the workers are the
parallelism). Recognised lines are put back in reading order (a page set in columns a column at
a time; rows top to bottom, boxes left to right within a row, a blank line where the gap between
rows is wide), and their confidence is kept: the mean recognition score of the page's
characters.

A page's OCR has a budget of CPU time (`ocr_page_timeout`); past it the page is given up with
a warning and the rest of the file goes on.
"""

from __future__ import annotations

import contextlib
import signal
import statistics
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ingest.errors import ParseError

OCR_MODES = ("auto", "off", "always")
MAX_PIXELS = 40_000_000  # a page or image is scaled down past this (an A0 poster at 200 DPI is 39 MP)
# Lines recognised per onnxruntime call. RapidOCR's 6 pads each line to the widest of its batch
# and allocates per call (it turns onnxruntime's memory arena off), which on pages of long
# lines cost more than it saved: see docs/ocr.md.
REC_BATCH = 1


@dataclass(frozen=True)
class OcrOptions:
    """How pages and images are OCRed."""

    mode: str = "auto"  # auto: pages without a usable text layer; always: every page; off: never
    dpi: int = 200  # PDF pages are rendered at this resolution
    page_timeout: float = 60.0  # seconds one page's OCR may take (0 = no limit)


@dataclass(frozen=True)
class OcrText:
    """What OCR read on one page or image."""

    text: str
    confidence: float  # 0-1, the mean recognition score over the characters read
    lines: int


class OcrUnavailable(ParseError):
    """The OCR package is not installed."""


class OcrTimeout(Exception):
    """A page's OCR ran over its time budget."""


_ENGINE: Any = None


def _engine() -> Any:
    """The RapidOCR engine, loaded once per process."""
    global _ENGINE
    if _ENGINE is None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise OcrUnavailable(
                "OCR needs the 'rapidocr-onnxruntime' package (pip install rapidocr-onnxruntime==1.4.4)"
            ) from exc
        import logging

        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        _one_malloc_arena()
        engine = RapidOCR(
            intra_op_num_threads=1,
            inter_op_num_threads=1,
            # Keep the resolution pages were rendered at: the default would shrink a 200 DPI page
            # (2,200 px tall) to 2,000 px before recognition.
            max_side_len=6000,
            rec_batch_num=REC_BATCH,
        )
        _ENGINE = engine
    return _ENGINE


def _one_malloc_arena() -> None:
    """Have glibc serve every thread from one heap. By default each thread that allocates gets
    an arena of its own, reserved 64 MB at a time, and that reserve counts against the parse
    worker's address-space cap (parse_memory_mb) though little of it is used: with onnxruntime's
    and OpenCV's threads, four 200 DPI pages peaked at 1,416 MB of address space, 1,096 MB with
    one arena, in the same CPU time (onnxruntime computes on one thread here, so the threads do
    not contend for the heap). Not glibc (macOS): nothing to do."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        m_arena_max = -8  # from glibc's malloc.h
        ctypes.CDLL(None).mallopt(m_arena_max, 1)


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise OcrTimeout in this block once it has used `seconds` of CPU time (main thread on
    Unix only; elsewhere no limit). CPU time, not wall time: a worker waiting for a core while
    the embedder runs is not charged for it.

    The signal lands between onnxruntime calls (each a fraction of a second), so the page stops
    soon after its budget runs out."""
    usable = seconds > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise OcrTimeout

    previous = signal.signal(signal.SIGPROF, expired)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def load() -> None:
    """Load the OCR models now (a few seconds), so that no page's time budget pays for it."""
    _engine()


def _chain(exc: BaseException, *, implicit: bool = True) -> Iterator[BaseException]:
    """`exc` and the exceptions behind it, outermost first: its causes, and with `implicit` the
    exceptions being handled when each was raised. RapidOCR wraps what onnxruntime raises (our
    OcrTimeout among it) in its own ONNXRuntimeError."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (current.__context__ if implicit else None)


def describe_error(exc: BaseException) -> str:
    """The innermost exception behind `exc` as "Type: message", its message's whole first line.
    RapidOCR's ONNXRuntimeError says only "Traceback (most recent call last):"; the reason is in
    the onnxruntime error it wraps, at the end of a long line ("... Status Message: std::bad_alloc")."""
    root = list(_chain(exc, implicit=False))[-1]
    line = next((ln.strip() for ln in str(root).splitlines() if ln.strip()), "")
    return f"{type(root).__name__}: {line}" if line else type(root).__name__


def _out_of_memory(exc: BaseException) -> bool:
    # onnxruntime reports a failed allocation (under the parse worker's address-space cap) as a
    # RuntimeException or Fail whose message ends in "std::bad_alloc", not as MemoryError.
    return any("bad_alloc" in str(e) for e in _chain(exc))


def recognize(image: Any) -> OcrText:
    """OCR of one image: a numpy array, height x width x 3 in BGR order (as OpenCV and PDFium
    give it), or height x width grey."""
    import numpy as np

    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    try:
        result, _ = _engine()(np.ascontiguousarray(img))
    except OcrUnavailable:
        raise
    except Exception as exc:
        if any(isinstance(e, OcrTimeout) for e in _chain(exc)):
            raise OcrTimeout from exc
        if _out_of_memory(exc):
            raise MemoryError(f"OCR ran out of memory ({describe_error(exc)})") from exc
        raise
    if not result:
        return OcrText("", 0.0, 0)
    boxes = [(_box(points), str(text), float(score)) for points, text, score in result if str(text).strip()]
    text = reading_order(boxes)
    chars = sum(len(t) for _, t, _ in boxes)
    confidence = sum(len(t) * s for _, t, s in boxes) / chars if chars else 0.0
    return OcrText(text, round(confidence, 4), len(boxes))


Box = tuple[float, float, float, float]  # left, top, right, bottom


def _box(points: Any) -> Box:
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def reading_order(boxes: list[tuple[Box, str, float]]) -> str:
    """Lines of text from recognised boxes. A page set in columns is read a column at a time (see
    `_segments`); within a column, boxes whose vertical middles fall within one another form a
    row, read left to right; rows top to bottom; a blank line where rows are far apart and where a
    new column begins."""
    if not boxes:
        return ""
    items = [(box, text) for box, text, _ in boxes]
    heights = [b[3] - b[1] for b, _ in items]
    line_height = statistics.median(heights)
    out: list[str] = []
    previous_bottom: float | None = None
    for segment in _segments(items, line_height) if len(items) <= _MAX_SEGMENTED else [items]:
        for row in _rows(segment):
            top = min(b[1] for b, _ in row)
            new_column = previous_bottom is not None and top < previous_bottom
            if previous_bottom is not None and (new_column or top - previous_bottom > 1.2 * line_height):
                out.append("")
            out.append(" ".join(t.strip() for _, t in row))
            previous_bottom = max(b[3] for b, _ in row)
    return "\n".join(out)


Item = tuple[Box, str]
_MAX_SEGMENTED = 1500  # boxes; a page with more is read by rows alone (the cuts cost n^2)


def _rows(items: list[Item]) -> list[list[Item]]:
    """Boxes grouped into rows top to bottom, each row left to right."""
    rows: list[list[Item]] = []
    for box, text in sorted(items, key=lambda b: (b[0][1] + b[0][3]) / 2):
        middle = (box[1] + box[3]) / 2
        if rows:
            last = rows[-1]
            top = statistics.fmean(b[1] for b, _ in last)
            bottom = statistics.fmean(b[3] for b, _ in last)
            if top <= middle <= bottom:
                last.append((box, text))
                continue
        rows.append([(box, text)])
    for row in rows:
        row.sort(key=lambda bt: bt[0][0])
    return rows


def _widest_gap(items: list[Item], lo: int, hi: int) -> tuple[float, float] | None:
    """The widest interval along one axis (lo, hi: box indexes of its start and end) that no box
    covers, between the first box and the last; None if the boxes cover it all."""
    spans = sorted((b[lo], b[hi]) for b, _ in items)
    best: tuple[float, float] | None = None
    reach = spans[0][1]
    for start, end in spans[1:]:
        if start > reach and (best is None or start - reach > best[1] - best[0]):
            best = (reach, start)
        reach = max(reach, end)
    return best


def _is_column(side: list[Item], region_width: float) -> bool:
    """Whether boxes look like a column of text: three lines or more, most of them wide (table
    cells are short: a table keeps being read a row at a time)."""
    widths = [b[2] - b[0] for b, _ in side]
    return len(side) >= 3 and statistics.median(widths) >= 0.2 * region_width


def _segments(items: list[Item], line_height: float) -> list[list[Item]]:
    """The boxes cut into pieces in reading order, recursively (an XY cut): at a vertical gutter
    that no box crosses, wider than the widest horizontal gap, with a column of text on either
    side (left first); else at the widest horizontal gap (top first); a piece with no gap left is
    one segment. So a title above two columns is read title, left column, right column."""
    todo, done = [items], []
    while todo:
        piece = todo.pop()
        if len(piece) < 2:
            done.append(piece)
            continue
        vertical = _widest_gap(piece, 0, 2)
        horizontal = _widest_gap(piece, 1, 3)
        h_width = horizontal[1] - horizontal[0] if horizontal else 0.0
        if vertical and vertical[1] - vertical[0] >= max(0.8 * line_height, h_width):
            cut = (vertical[0] + vertical[1]) / 2
            left = [it for it in piece if it[0][2] <= cut]
            right = [it for it in piece if it[0][0] >= cut]
            width = max(b[2] for b, _ in piece) - min(b[0] for b, _ in piece)
            if _is_column(left, width) and _is_column(right, width):
                todo.extend([right, left])  # popped left first
                continue
        if horizontal:
            cut = (horizontal[0] + horizontal[1]) / 2
            todo.extend([[it for it in piece if it[0][1] >= cut], [it for it in piece if it[0][3] <= cut]])
            continue
        done.append(piece)
    return done


def scale_for(width: float, height: float, scale: float) -> float:
    """`scale`, reduced when width x height x scale^2 pixels would pass MAX_PIXELS."""
    pixels = width * height * scale * scale
    return scale if pixels <= MAX_PIXELS else scale * (MAX_PIXELS / pixels) ** 0.5
