"""`kb serve`: one resident process per knowledge base.

It keeps the embedder and the LLM loaded, and serves an HTTP API (kb's own JSON, and an
OpenAI-compatible chat endpoint that carries kb's citations), a static web page, and access
groups enforced at retrieval time. service.py holds the state and the work, queue.py the
bounded LLM queue, app.py the HTTP routes, openai_compat.py the OpenAI wire format.
"""
