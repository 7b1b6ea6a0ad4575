"""Document text is data, never instructions: find sentences in passages that address the model
(prompt injection) so they are neither shown to it nor used as evidence."""

from __future__ import annotations

import re

from kb.text import Span, split_sentences

_INJECTION = re.compile(
    r"""(
        \b(ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(previous|prior|above|earlier|all|any|your|the)\b[^.!?\n]{0,30}
            \b(instructions?|prompts?|rules|directions|context|guidelines)\b
      | \b(you\s+are\s+now|act\s+as|pretend\s+to\s+be|from\s+now\s+on,?\s+you)\b
      | \bsystem\s+prompt\b
      | \b(as\s+an?\s+)?(ai|assistant|language\s+model|chatbot|llm)\b[^.!?\n]{0,40}\b(must|should|shall|will)\b
      | \b(always|only)\s+(answer|reply|respond|say|output)\b
      | \b(answer|reply|respond)\s+(every|all|any)\s+questions?\b
      | <\s*/?\s*(system|assistant|user|im_start|im_end)\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)

PLACEHOLDER = "[text addressed to an AI system removed]"


def injection_spans(text: str) -> list[Span]:
    """Sentences that read as instructions to an AI model."""
    return [s for s in split_sentences(text) if _INJECTION.search(s.text)]


def sanitize(text: str) -> str:
    """The text with instruction-like sentences replaced by a placeholder."""
    spans = injection_spans(text)
    if not spans:
        return text
    out, pos = [], 0
    for s in spans:
        out.append(text[pos : s.start])
        out.append(PLACEHOLDER)
        pos = s.end
    out.append(text[pos:])
    return "".join(out)


def mask(text: str) -> str:
    """The text with instruction-like sentences blanked out, same length: what is checked as
    evidence, with offsets that still point into the original."""
    out = list(text)
    for s in injection_spans(text):
        out[s.start : s.end] = " " * (s.end - s.start)
    return "".join(out)
