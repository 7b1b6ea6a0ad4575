"""Summaries of documents and folders: map-reduce over every chunk, each point cited and verified.

Map: a document's chunks, in order, are packed into windows that fit the model's context
(counted in its own tokens, with room left for the reply; `windows`); the model lists each
window's key points, citing [n] passages. Each point is checked against the passages it cites the
way answers are (kb.answer.verify_answer: content words and every number must be there), and each
of its clauses on its own (`checks`); points the passages do not back are dropped, as are headings,
fragments and lines about the text rather than from it (`sentences`). What the model could not back
is made up with the window's most central sentences (by embedding similarity to the window's
centroid), quoted verbatim and marked extractive: a window with no verified point contributes its
most central sentence first, so even a 135M model gives a summary that covers the document.

Reduce: while the points far exceed the word budget they are packed into groups that fit the
context and the model merges each group, citing [n] points; a merged point is kept only when
the quotes behind the points it cites back it, so it keeps verified page citations. Points the
model leaves out are topped up by MMR, so coverage does not hinge on the model. Finally points
are picked by MMR (central yet diverse, `select`) up to the word budget and shown in document order
(`pipeline`).

A folder overview runs the same pipeline with the file summaries as passages, citing files
(`folder`). Finished summaries are cached by content hash and everything that shapes them; map
results are checkpointed per window, so a run killed in the middle of a long file resumes where it
was (`cache`). The nouns (Cite, Point, Summary, SummaryOptions) are in `points`.
"""

from kb.summarize.cache import Checkpoint, SummaryCache, gguf_model_id
from kb.summarize.checks import verify_points
from kb.summarize.folder import FileOutcome, ProgressEvent, SummaryReport, summarize_paths
from kb.summarize.pipeline import TEMPLATE_TOKENS, Summarizer
from kb.summarize.points import Cite, Point, Stats, Summary, SummaryOptions, compose, page_label
from kb.summarize.select import mmr_select
from kb.summarize.sentences import display_text, drop_heading_lines, usable
from kb.summarize.windows import Passage, chunk_passages, plan_windows, split_to_fit

__all__ = [
    "TEMPLATE_TOKENS",
    "Checkpoint",
    "Cite",
    "FileOutcome",
    "Passage",
    "Point",
    "ProgressEvent",
    "Stats",
    "Summarizer",
    "Summary",
    "SummaryCache",
    "SummaryOptions",
    "SummaryReport",
    "chunk_passages",
    "compose",
    "display_text",
    "drop_heading_lines",
    "gguf_model_id",
    "mmr_select",
    "page_label",
    "plan_windows",
    "split_to_fit",
    "summarize_paths",
    "usable",
    "verify_points",
]
