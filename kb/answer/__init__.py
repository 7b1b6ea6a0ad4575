"""Answering questions from the documents, by stage:

- `gate`: whether the retrieved passages answer the question at all (or kb refuses);
- `rank`: every sentence of the passages scored as a possible answer (the evidence);
- `generate`: the prompt a model answers from;
- `attribute`: each sentence of the model's answer tied to the passage that backs it, or dropped;
- `pipeline`: the stages in order, with the extractive answer and the refusal.

Document text is data: it is fenced inside the prompt, the model is told so, and whatever it
writes is only kept when a retrieved passage backs it.
"""

from kb.answer.attribute import SUPPORT_THRESHOLD, verify_answer
from kb.answer.pipeline import Answerer
from kb.answer.types import REFUSAL, Answer, Candidate, Sentence, Source

__all__ = ["REFUSAL", "SUPPORT_THRESHOLD", "Answer", "Answerer", "Candidate", "Sentence", "Source", "verify_answer"]
