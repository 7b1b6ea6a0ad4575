"""Images (.png .jpg .jpeg .tif .tiff .bmp) as documents of their own: their text read by OCR.

Each frame is a page (a multi-page TIFF has several); every block is marked with its OCR
confidence (Block.meta {"ocr": 0.93}), so a citation says "p. 1, OCR".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest.builder import DocumentBuilder
from ingest.errors import ParseError, UnsupportedFormat
from ingest.ocr import OcrOptions, OcrTimeout, load, recognize, scale_for, time_budget
from ingest.types import ParsedDocument

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
OCR_OFF_REASON = "image: OCR is off (set ocr = auto to read the text of images)"
MAX_FRAMES = 500  # pages of a multi-page TIFF read at most


def _frames(path: Path) -> Any:
    """The image's frames as BGR arrays, scaled down past ingest.ocr.MAX_PIXELS."""
    import numpy as np
    from PIL import Image, ImageSequence, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # huge scans are scaled down below, not refused as "bombs"
    try:
        image = Image.open(path)
    except UnidentifiedImageError as exc:
        raise ParseError("not a readable image (unknown or damaged format)") from exc
    with image:
        for index, frame in enumerate(ImageSequence.Iterator(image)):
            if index >= MAX_FRAMES:
                return
            rgb = frame.convert("RGB")
            scale = scale_for(rgb.width, rgb.height, 1.0)
            if scale < 1.0:
                rgb = rgb.resize((max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale))))
            yield np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def parse_image(
    path: Path, *, ocr: OcrOptions | None = None, on_page: Callable[[], None] | None = None
) -> ParsedDocument:
    """An image file, one block per frame with the text OCR read on it."""
    options = ocr or OcrOptions()
    if options.mode == "off":
        raise UnsupportedFormat(OCR_OFF_REASON)
    builder = DocumentBuilder()
    notes: list[str] = []
    frames = 0
    try:
        for frames, frame in enumerate(_frames(path), start=1):
            try:
                load()
                with time_budget(options.page_timeout):
                    read = recognize(frame)
            except OcrTimeout:
                notes.append(f"page {frames}: OCR stopped after {options.page_timeout:g} s (ocr_page_timeout)")
                continue
            finally:
                if on_page:
                    on_page()
            builder.add(read.text, page=frames, meta={"ocr": read.confidence})
    except OSError as exc:  # PIL raises OSError for truncated or broken image data
        if not frames:
            raise ParseError(f"not a readable image ({str(exc)[:100]})") from exc
        notes.append(f"image data broken after frame {frames} ({str(exc)[:80]})")
    if frames >= MAX_FRAMES:
        notes.append(f"only the first {MAX_FRAMES} frames were read")
    return builder.build(path, "image", n_pages=frames, warnings=notes, empty_reason="no text found by OCR")
