"""The OpenAI chat-completions wire format, with kb's citations carried along.

A response (or the final chunk of a stream) has, beside the standard fields, an extension
object `kb`:

    "kb": {
      "citations": [ {n, path, title, page_start, page_end, heading, chunk_id, score, relevance,
                      text, quote: {text, start, end, doc_start, doc_end}} ... ],
      "refused": false, "mode": "generative", "note": "",
      "question": "the standalone question retrieval used",
      "rewrite": {"asked", "standalone", "how"},
      "closest": [ ... on a refusal, the closest passages, same fields ... ]
    }

The `[n]` markers in the message content are the `n` of these citations. The first chunk of a
stream carries `kb.rewrite` too, so a client can show what was searched before the answer
comes. Official clients keep unknown fields (`response.model_extra["kb"]` in the Python client).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any


def completion_id() -> str:
    """A fresh `chatcmpl-...` id."""
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def kb_extension(rewrite: Any, answer: Any) -> dict:
    """The `kb` object: citations resolved to file, page and quote, and how the answer was made."""
    data = answer.to_json()
    return {
        "citations": data["sources"],
        "refused": data["refused"],
        "mode": data["mode"],
        "note": data["note"],
        "question": answer.question,
        "rewrite": rewrite.to_json() if rewrite is not None else None,
        "closest": data["closest"],
    }


def completion(cid: str, model: str, rewrite: Any, answer: Any) -> dict:
    """A non-streamed chat completion."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "kb": kb_extension(rewrite, answer),
    }


def chunk(cid: str, model: str, delta: dict, finish: str | None = None, kb: dict | None = None) -> str:
    """One server-sent event of a streamed completion."""
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
    if kb is not None:
        body["kb"] = kb
    return sse(body)


def sse(data: Any, event: str | None = None) -> str:
    """A server-sent event carrying JSON (or the literal [DONE])."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def error_body(message: str, kind: str, code: str | None = None) -> dict:
    """The OpenAI error shape, used by every endpoint."""
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}
