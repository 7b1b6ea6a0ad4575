"""Conversation over the knowledge base: follow-up questions rewritten into standalone ones.

Retrieval sees one question at a time, so "and for part-time staff?" must become "How many
days of annual leave do part-time staff get?" before it is searched. The LLM is asked for the
rewrite; a small model's rewrite is often useless (it answers instead, repeats the follow-up,
or invents words), so a rewrite is only taken when it keeps the follow-up's own words, adds
words of the conversation, and brings in almost nothing from elsewhere. Otherwise the fallback
joins the previous question to the follow-up, which retrieval handles well enough: the earlier
question's words find the topic and the follow-up's words pick the passage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kb.llm import LLM, Message
from kb.verify import content_terms

REWRITE_PROMPT_VERSION = 1
REWRITE_SYSTEM = (
    "You rewrite the user's last question so that it can be understood without the conversation. "
    "Use the words of the conversation. Do not answer the question. Reply with the rewritten question only."
)
# One worked example: small models copy its shape.
_EXAMPLE = (
    "Conversation:\nUser: What is the deadline for expense claims?\n"
    "Assistant: Expense claims must be filed within 30 days [1].\n"
    "Last question: and for travel bookings?\n"
    "Standalone question: What is the deadline for travel bookings?"
)
# Words that point back into the conversation ("it", "them", "that policy", "and for ...").
_BACK_WORDS = (
    "it its it's they them their theirs this that these those he she him her his there one ones same such "
    "former latter also too either"
)
_BACK_REFERENCES = frozenset(_BACK_WORDS.split())
_CONTINUATIONS = re.compile(r"^\s*(and|or|but|also|so|what about|how about|same|then|plus|except)\b", re.I)
_WORDS = re.compile(r"[\w'’]+")
_QUESTION_START = re.compile(
    r"^(what|how|when|where|who|whom|whose|which|why|is|are|was|were|do|does|did|can|could|should|will|would|may|"
    r"must|has|have|list|describe|explain|tell|give|show)\b",
    re.I,
)
MAX_HISTORY_TURNS = 6  # earlier messages shown to the model for the rewrite
MIN_KEPT = 0.5  # share of the follow-up's content terms a rewrite must keep
MAX_FOREIGN = 0.2  # share of a rewrite's content terms that may come from neither the follow-up nor the conversation


@dataclass(frozen=True)
class Turn:
    """One message of the conversation."""

    role: str  # "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Rewrite:
    """The question as asked and the standalone question retrieval uses."""

    asked: str
    standalone: str
    how: (
        str  # "as asked" (no rewrite needed), "model" (the LLM's rewrite), "fallback" (joined to the previous question)
    )

    @property
    def rewritten(self) -> bool:
        """Whether retrieval uses something else than the question as asked."""
        return self.how != "as asked"

    def to_json(self) -> dict:
        """The documented JSON form."""
        return {"asked": self.asked, "standalone": self.standalone, "how": self.how}


def previous_question(history: Sequence[Turn]) -> str:
    """The last question the user asked before the current one ("" if none)."""
    return next((t.content.strip() for t in reversed(history) if t.role == "user" and t.content.strip()), "")


def needs_rewrite(history: Sequence[Turn], question: str) -> bool:
    """Whether the question leans on the conversation: it points back ("it", "those", "and for
    ...") or is too short to stand alone."""
    if not previous_question(history):
        return False
    words = {w.lower() for w in _WORDS.findall(question)}
    return bool(_CONTINUATIONS.match(question) or words & _BACK_REFERENCES or len(content_terms(question)) < 3)


def rewrite_messages(history: Sequence[Turn], question: str) -> list[Message]:
    """The prompt asking the model for a standalone question."""
    lines = []
    for t in list(history)[-MAX_HISTORY_TURNS:]:
        who = "User" if t.role == "user" else "Assistant"
        lines.append(f"{who}: {' '.join(t.content.split())[:400]}")
    user = f"{_EXAMPLE}\n\nConversation:\n" + "\n".join(lines) + f"\nLast question: {question}\nStandalone question:"
    return [{"role": "system", "content": REWRITE_SYSTEM}, {"role": "user", "content": user}]


def clean_rewrite(raw: str) -> str:
    """The model's reply as one question: first line, lead-in and quotes removed."""
    line = next((x.strip() for x in raw.strip().splitlines() if x.strip()), "").strip("\"'“”").strip()
    line = re.sub(r"^(standalone question|rewritten question|question)\s*:\s*", "", line, flags=re.I)
    return line.strip().strip("\"'“”").strip()


def acceptable(candidate: str, history: Sequence[Turn], question: str) -> bool:
    """Whether a rewrite can stand in for the follow-up: a question of sensible length that keeps
    most of the follow-up's words, adds words of the conversation, and invents almost nothing."""
    if not candidate or "\n" in candidate or not 3 <= len(candidate.split()) <= 60:
        return False
    low = candidate.lower()
    if low.startswith(("i don't know", "i do not know", "sorry")) or candidate == question.strip():
        return False
    if re.search(r"\[\d+\]", candidate) or not (candidate.endswith("?") or _QUESTION_START.match(candidate)):
        return False  # an answer, not a question
    cand = content_terms(candidate)
    asked = content_terms(question) - _BACK_REFERENCES
    context = set().union(*(content_terms(t.content) for t in history)) if history else set()
    if asked and len(asked & cand) / len(asked) < MIN_KEPT:
        return False
    if not (cand - asked) & context:
        return False  # nothing of the conversation came in: it is not standalone
    foreign = cand - asked - context
    return len(foreign) <= MAX_FOREIGN * len(cand)


def fallback(history: Sequence[Turn], question: str) -> str:
    """The previous question followed by the follow-up."""
    prev = previous_question(history)
    return f"{prev} {question.strip()}" if prev else question.strip()


def rewrite(history: Sequence[Turn], question: str, llm: LLM | None, *, max_tokens: int = 48) -> Rewrite:
    """The standalone form of `question` given the conversation before it."""
    question = question.strip()
    if not needs_rewrite(history, question):
        return Rewrite(question, question, "as asked")
    if llm is not None:
        raw = llm.chat(rewrite_messages(history, question), max_tokens=max_tokens, temperature=0.0, stop=["\n\n"])
        candidate = clean_rewrite(raw)
        if acceptable(candidate, history, question):
            return Rewrite(question, candidate, "model")
    return Rewrite(question, fallback(history, question), "fallback")


def message_text(content: object) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def split_conversation(messages: Sequence[dict]) -> tuple[list[Turn], str]:
    """OpenAI-style messages -> (earlier turns, last user question). System messages are ignored:
    kb's own rules govern the answer. ValueError when there is no user question."""
    turns = [Turn(str(m.get("role", "")), message_text(m.get("content"))) for m in messages]
    last = max((i for i, t in enumerate(turns) if t.role == "user"), default=None)
    if last is None or not turns[last].content.strip():
        raise ValueError("the conversation has no user question")
    history = [t for t in turns[:last] if t.role in ("user", "assistant")]
    return history, turns[last].content.strip()


def sentence_piece(sentence: Any) -> str:
    """One verified sentence as it reads in the answer text: its words, then its [n] markers."""
    return " ".join(sentence.text.split()) + " " + "".join(f"[{n}]" for n in sentence.citations)


def answer_pieces(answer: Any) -> list[str]:
    """The answer text cut into its verified sentences, each with its [n] markers, for streaming.

    Joined with single spaces they give `answer.text` exactly; when they would not (a refusal,
    a text composed otherwise), the whole text is one piece.
    """
    pieces = [sentence_piece(s) for s in answer.sentences if s.supported and s.citations]
    return pieces if pieces and " ".join(pieces) == answer.text else [answer.text]


def remaining_pieces(answer: Any, streamed: Sequence[str]) -> list[str]:
    """What a stream that has sent `streamed` (sentences as they were verified) still owes of the
    finished answer: nothing when they make up its text, the rest of the text when they begin it,
    and the whole text as pieces when nothing was sent (a refusal streams no sentence). When the
    streamed sentences are not the text's beginning, nothing: the final answer is authoritative."""
    if not streamed:
        return answer_pieces(answer)
    sent = " ".join(streamed)
    if answer.text == sent or not answer.text.startswith(sent + " "):
        return []
    return [answer.text[len(sent) + 1 :]]
