"""The nouns of a summary: where a point comes from (Cite), a verified point, the work done, the
summary itself and the options that shape it; and how points are written out with their citations."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import InputError

STYLES = ("bullets", "prose")


@dataclass(frozen=True)
class Cite:
    """Where a point comes from: pages (or sections, for formats without pages), character spans, files."""

    pages: tuple[int, ...] = ()
    sections: tuple[str, ...] = ()
    spans: tuple[tuple[int, int], ...] = ()  # character offsets in the parsed document text
    files: tuple[str, ...] = ()

    @staticmethod
    def merge(cites: list[Cite]) -> Cite:
        """The union of several citations, in order."""

        def union(items: Any) -> tuple:
            return tuple(dict.fromkeys(x for c in cites for x in items(c)))

        return Cite(
            tuple(sorted(union(lambda c: c.pages))),
            union(lambda c: c.sections),
            tuple(sorted(union(lambda c: c.spans))),
            union(lambda c: c.files),
        )


@dataclass(frozen=True)
class Point:
    """One verified statement of a summary, with the verbatim text that backs it."""

    text: str
    cite: Cite
    quotes: tuple[str, ...]  # verbatim source sentences that back the point
    support: float
    mode: str  # "generative" (the model wrote it, code verified it) or "extractive" (quoted verbatim)
    order: int  # position in the document (chunk ordinal) or folder (file index), for display order

    def to_json(self) -> dict:
        """The documented JSON form."""
        return {
            "text": self.text,
            "pages": list(self.cite.pages),
            "sections": list(self.cite.sections),
            "spans": [list(s) for s in self.cite.spans],
            "files": list(self.cite.files),
            "quotes": list(self.quotes),
            "support": round(self.support, 3),
            "supported": True,
            "mode": self.mode,
            "order": self.order,
        }

    @classmethod
    def from_json(cls, d: dict) -> Point:
        """Inverse of to_json."""
        cite = Cite(tuple(d["pages"]), tuple(d["sections"]), tuple(tuple(s) for s in d["spans"]), tuple(d["files"]))
        return cls(d["text"], cite, tuple(d["quotes"]), d["support"], d["mode"], d["order"])


@dataclass
class Stats:
    """Work done for one summary; summed over a run for throughput figures."""

    windows: int = 0
    resumed_windows: int = 0  # taken from the checkpoint of an interrupted run, at no cost now
    extractive_windows: int = 0
    reduce_levels: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    llm_seconds: float = 0.0
    seconds: float = 0.0

    def add(self, other: Stats) -> None:
        """Accumulate another summary's work."""
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def to_json(self) -> dict:
        """The documented JSON form."""
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass
class Summary:
    """A summary of one file, or (kind 'folder') the overview of several."""

    kind: str  # "document" or "folder"
    path: str
    title: str
    format: str
    n_pages: int | None
    n_chunks: int
    points: list[Point]
    unsupported: list[tuple[str, float]] = field(default_factory=list)  # model lines not backed by sources
    stats: Stats = field(default_factory=Stats)
    cached: bool = False

    def text(self, style: str = "bullets") -> str:
        """The summary as plain text with a citation after each point."""
        return compose(self.points, style)

    def to_json(self, style: str = "bullets") -> dict:
        """The documented JSON form (unsupported model lines are listed, flagged, never shown)."""
        return {
            "kind": self.kind,
            "path": self.path,
            "title": self.title,
            "format": self.format,
            "pages": self.n_pages,
            "chunks": self.n_chunks,
            "cached": self.cached,
            "text": self.text(style),
            "points": [p.to_json() for p in self.points],
            "unsupported": [{"text": t, "support": round(s, 3), "supported": False} for t, s in self.unsupported],
            "stats": self.stats.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict) -> Summary:
        """Inverse of to_json (the cache format)."""
        return cls(
            d["kind"],
            d["path"],
            d["title"],
            d["format"],
            d["pages"],
            d["chunks"],
            [Point.from_json(p) for p in d["points"]],
            [(u["text"], u["support"]) for u in d["unsupported"]],
            Stats(**d["stats"]),
        )


@dataclass(frozen=True)
class SummaryOptions:
    """What shapes a summary besides the models and chunking; all but `style` are in the cache key."""

    words: int = 150  # approximate length of each file summary
    overview_words: int = 200  # approximate length of the folder overview
    style: str = "bullets"  # only how points are laid out, so cached summaries serve both styles
    window_tokens: int = 2048  # cap on a map prompt: small models lose the thread in long ones
    max_output_tokens: int = 192  # room for map_points points; small models ramble on otherwise
    map_points: int = 4  # points asked of each window
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise InputError(f"--style must be one of {', '.join(STYLES)} (got {self.style!r})")
        if self.words < 10 or self.overview_words < 10:
            raise InputError("--words must be at least 10")

    def key_fields(self) -> dict:
        """The options that change what is generated."""
        d = asdict(self)
        for name in ("style", "words", "overview_words"):  # word budgets enter keys only where they apply
            d.pop(name)
        return d


def page_label(pages: tuple[int, ...]) -> str:
    """'p. 3', 'pp. 3-5, 8' or ''."""
    if not pages:
        return ""
    runs: list[list[int]] = []
    for p in pages:
        if runs and p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    text = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
    return f"p. {text}" if len(pages) == 1 else f"pp. {text}"


def cite_label(cite: Cite) -> str:
    """How a citation is shown after a point: pages, else sections, else file names."""
    if cite.pages:
        return page_label(cite.pages)
    if cite.sections:
        return "; ".join(f"§ {s}" for s in cite.sections)
    return "; ".join(Path(f).name for f in cite.files)


def compose(points: list[Point], style: str) -> str:
    """Points as a bulleted list or a paragraph, each followed by its citation."""

    def one(p: Point) -> str:
        label = cite_label(p.cite)
        body = p.text.rstrip()
        if not label:
            return body
        if body[-1:] in ".!?":
            return f"{body[:-1]} ({label}){body[-1]}"
        return f"{body} ({label})"

    if style == "prose":
        return " ".join(s if s[-1:] in ".!?" else s + "." for s in map(one, points))
    return "\n".join(f"- {one(p)}" for p in points)
