"""A client of a running `kb serve`, for `kb ask`, `kb search` and `kb chat` (`--server`).

`find_server` looks for the server that announced itself in the knowledge-base folder
(serve.json) and answers for the same folder; the commands use it when found and otherwise
work in-process as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kb.errors import KBError

CONNECT_TIMEOUT = 0.5  # seconds: an announced server that does not answer this fast is not used
ANSWER_TIMEOUT = 600.0  # a long queue plus a slow model


class ServerError(KBError):
    """The server refused the request or could not be reached."""


class ServerClient:
    """Calls to one server (httpx), with an optional token."""

    def __init__(self, url: str, token: str | None = None, timeout: float = ANSWER_TIMEOUT) -> None:
        import httpx

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT * 4)
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, body: dict | None = None, timeout: float | None = None) -> Any:
        import httpx

        try:
            kw: dict[str, Any] = {"json": body} if body is not None else {}
            if timeout is not None:
                kw["timeout"] = timeout
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach the kb server at {self.url} ({exc})") from None
        if r.status_code != 200:
            raise ServerError(f"the kb server at {self.url} said: {_message(r.status_code, r.text)}")
        return r.json()

    def health(self, timeout: float = CONNECT_TIMEOUT) -> dict:
        """GET /health."""
        return self._request("GET", "/health", timeout=timeout)

    def search(self, query: str, k: int, mode: str | None) -> dict:
        """POST /v1/search: the JSON of `kb search --json`."""
        return self._request("POST", "/v1/search", {"query": query, "k": k, "mode": mode})

    def ask(self, question: str, *, extractive: bool, k: int | None, mode: str | None) -> dict:
        """POST /v1/ask: the JSON of `kb ask --json`."""
        return self._request("POST", "/v1/ask", _ask_body(question, extractive, k, mode))

    def ask_stream(
        self, question: str, *, extractive: bool, k: int | None, mode: str | None, on_sentence: Callable[[str], None]
    ) -> dict:
        """POST /v1/ask with streaming: verified sentences to `on_sentence` as they come, then the answer JSON."""
        body = {**_ask_body(question, extractive, k, mode), "stream": True}
        answer: dict | None = None
        for event, data in self._events("/v1/ask", body):
            if event == "sentence":
                on_sentence(data["text"])
            elif event == "answer":
                answer = data
        if answer is None:
            raise ServerError(f"the kb server at {self.url} ended the answer early")
        return answer

    def chat_stream(
        self,
        messages: list[dict],
        *,
        extractive: bool = False,
        k: int | None = None,
        mode: str | None = None,
        on_rewrite: Callable[[dict], None] | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[str, dict]:
        """One turn over /v1/chat/completions, streamed: (answer text, the `kb` field of the final chunk)."""
        body = {
            "model": "kb",
            "messages": messages,
            "stream": True,
            "kb": {"extractive": extractive, "k": k, "mode": mode},
        }
        text, final = [], None
        for _, data in self._events("/v1/chat/completions", body):
            kb = data.get("kb") or {}
            if kb.get("rewrite") and on_rewrite and "citations" not in kb:
                on_rewrite(kb["rewrite"])
            for choice in data.get("choices", []):
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    text.append(piece)
                    if on_text:
                        on_text(piece)
            if "citations" in kb:
                final = kb
        if final is None:
            raise ServerError(f"the kb server at {self.url} ended the answer early")
        return "".join(text), final

    def _events(self, path: str, body: dict) -> Iterator[tuple[str, Any]]:
        """(event name, JSON data) of a server-sent event stream; an error event raises ServerError."""
        import httpx

        try:
            with self._http.stream("POST", path, json=body) as r:
                if r.status_code != 200:
                    raise ServerError(f"the kb server at {self.url} said: {_message(r.status_code, r.read().decode())}")
                event = "message"
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        payload = line[6:]
                        if payload != "[DONE]":
                            data = json.loads(payload)
                            if isinstance(data, dict) and "error" in data:
                                raise ServerError(f"the kb server at {self.url} said: {data['error'].get('message')}")
                            yield event, data
                    elif not line:
                        event = "message"
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach the kb server at {self.url} ({exc})") from None


def _ask_body(question: str, extractive: bool, k: int | None, mode: str | None) -> dict:
    return {"question": question, "extractive": extractive, "k": k, "mode": mode}


def _message(status: int, text: str) -> str:
    try:
        return f"{status} {json.loads(text)['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{status} {text[:200]}"


def find_server(folder: Path, token: str | None) -> ServerClient | None:
    """A client of the server announced in `folder` if it is alive, serves that same folder, and
    can be used with `token` (a server with tokens is skipped without one); else None."""
    from kb.server.discovery import announced_server, kb_id

    data = announced_server(folder)
    if data is None or data.get("kb_id") != kb_id(folder):
        return None
    client = ServerClient(str(data.get("url", "")), token)
    try:
        health = client.health()
    except ServerError:
        client.close()
        return None
    if health.get("kb_id") != kb_id(folder) or (health.get("auth") and not token):
        client.close()
        return None
    return client


def connect(url: str, token: str | None) -> ServerClient:
    """A client of the server at `url`, checked to answer; ServerError when it does not."""
    client = ServerClient(url, token)
    try:
        client.health(timeout=5.0)
    except ServerError:
        client.close()
        raise
    return client
