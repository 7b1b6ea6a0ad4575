"""Local LLMs through llama.cpp (llama-cpp-python), and the protocol the answer code relies on."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from kb.errors import ModelNotFound

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


class LLM(Protocol):
    """What answering and summarising need from a language model."""

    @property
    def name(self) -> str:
        """A short name for the model (its file's stem)."""
        ...

    @property
    def n_ctx(self) -> int:
        """The context window in tokens."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model's own tokenizer makes of `text`."""
        ...

    def chat(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        on_token: Callable[[str], None] | None = None,
        stop: list[str] | None = None,
    ) -> str:
        """The assistant's reply; `on_token` receives text as it is generated."""
        ...


class BackgroundLLM:
    """An LLM loading in a thread while the caller goes on; the first use waits for it.

    A cold `kb ask` loads the model (native code, about half a second for the default) while it
    searches and ranks sentences (the embedder, native code too), and a question the documents do
    not answer is refused without waiting for the model at all. A failure to load is raised at the
    first use, as it would have been at the start.
    """

    def __init__(self, load: Callable[[], LLM]) -> None:
        self._model: LLM | None = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._model = load()
            except BaseException as exc:  # re-raised in the caller's thread at first use
                self._error = exc

        self._thread = threading.Thread(target=run, name="kb-llm-load", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Wait for the load to end (kb ask does before it writes anything to stderr, which llama.cpp's
        load silences for its duration)."""
        self._thread.join()

    def get(self) -> LLM:
        """The loaded model (waiting for it), or the loader's error."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._model is not None
        return self._model

    @property
    def name(self) -> str:
        return self.get().name

    @property
    def n_ctx(self) -> int:
        return self.get().n_ctx

    def count_tokens(self, text: str) -> int:
        return self.get().count_tokens(text)

    def chat(self, messages: list[Message], **options: Any) -> str:
        return self.get().chat(messages, **options)


def default_gguf_path() -> Path:
    """The file of the model `llm_model = "default"` names (kb.models.DEFAULT_MODEL), checked."""
    return resolve_gguf("default")


def resolve_gguf(name: str) -> Path:
    """Turn the `llm_model` setting (a short name, 'default', or a path) into a .gguf file that exists.

    A known model's file is checked by size and SHA-256 (once: kb.models keeps a stamp), and a
    model shipped in parts is joined into the model cache on first use.
    """
    from kb import models

    known = models.known_model(name)
    if known is not None:
        return models.model_file(known)
    path = Path(name).expanduser()
    if not path.is_file():
        if models.looks_like_name(name):
            raise ModelNotFound(
                f"{name}: no such model; known models: {', '.join(models.KNOWN)} (or give a path to a .gguf file)"
            )
        raise ModelNotFound(f"{path}: GGUF model file not found")
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ModelNotFound(f"{path}: not a GGUF file")
    return path


# One thread at a time swaps the stderr file descriptor: two interleaved swaps (the model loading
# in kb ask's background thread while the main thread loads the sentence scorer) would restore
# each other's copy of /dev/null and leave stderr silenced for good.
_QUIET = threading.RLock()


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence llama.cpp's C-level logging, which bypasses Python's sys.stderr."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    with _QUIET:
        saved = os.dup(fd)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            sys.stderr.flush()
            os.dup2(devnull, fd)
            yield
        finally:
            os.dup2(saved, fd)
            os.close(devnull)
            os.close(saved)


def open_llama(path: Path, **params: Any) -> Any:
    """A llama_cpp.Llama over `path` with `params`, quiet, seeded; ModelNotFound if it cannot load."""
    # llama.cpp's CPU threads meet at an OpenMP barrier after every operation. By default
    # waiting threads spin; when the cores are shared (other programs, a busy laptop) a
    # spinning thread keeps the one it waits for off the CPU, and generation ran 7x slower
    # on a loaded 2-core machine (the README, Performance). Passive waiting costs little when
    # the machine is idle. Read by libgomp when llama.cpp loads, so set before the import;
    # a value set by the user wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from llama_cpp import Llama
    except ImportError as exc:  # pragma: no cover - install problem
        raise ModelNotFound(f"llama-cpp-python is not installed ({exc})") from exc
    try:
        with _quiet_stderr():
            return Llama(model_path=str(path), verbose=False, seed=0, **params)
    except (ValueError, RuntimeError) as exc:
        raise ModelNotFound(f"{path}: llama.cpp cannot load this model ({exc})") from exc


class PromptLookup:
    """Draft tokens for speculative decoding, looked up in the text so far (prompt-lookup decoding).

    An answer copies its documents' words ("28 days of paid annual leave per calendar year"), so
    the tokens that followed the latest occurrence of the last few tokens, in the prompt or the
    answer, are a good guess at what comes next. The model checks a guess of k tokens in one pass
    that costs little more than generating one token (on a CPU, writing is bound by reading the
    weights, not by arithmetic); the greedy choice at every position decides, so the text is the
    one the model writes without drafts. No draft is made when nothing matches.
    """

    def __init__(self, max_tokens: int, max_ngram: int = 3, min_ngram: int = 2) -> None:
        self.max_tokens = max_tokens
        self.max_ngram = max_ngram
        self.min_ngram = min_ngram

    def __call__(self, input_ids: Any, /, **_: Any) -> Any:
        import numpy as np

        ids = np.asarray(input_ids)
        n = len(ids)
        for size in range(min(self.max_ngram, n - 1), self.min_ngram - 1, -1):
            tail = ids[n - size :]
            windows = np.lib.stride_tricks.sliding_window_view(ids[: n - 1], size)
            hits = np.flatnonzero((windows == tail).all(axis=1))
            for start in hits[::-1] + size:  # the latest occurrence first
                if start < n:
                    return ids[start : min(start + self.max_tokens, n)].astype(np.intc)
        return np.array([], dtype=np.intc)


def enable_prompt_lookup(llm: Any, max_tokens: int) -> None:
    """Let `llm` (a llama_cpp.Llama made without logits_all) check prompt-lookup drafts.

    llama-cpp-python verifies a draft by sampling at every position of the batch that holds the
    last token and the draft, so those positions need logits. Its own switch for that,
    logits_all, computes the 152k-word output layer for every prompt token as well and keeps an
    n_ctx x vocabulary array; here only a batch short enough to be a draft check (the draft and
    one token) asks for logits at every position, so the prompt is read as before.
    """
    llm.draft_model = PromptLookup(max_tokens)
    library_eval = llm.eval

    def eval_with_draft_logits(tokens: Any) -> None:
        if len(tokens) <= 1 or len(tokens) > max_tokens + 1:
            library_eval(tokens)
            return
        llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        n_past = llm.n_tokens
        llm._batch.set_batch(batch=list(tokens), n_past=n_past, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[n_past : n_past + len(tokens)] = tokens
        llm.n_tokens += len(tokens)
        llm._requires_eval = False

    llm.eval = eval_with_draft_logits


class LlamaCppLLM:
    """A GGUF model run by llama.cpp on the CPU (or Metal on Apple Silicon)."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int = 4096,
        threads: int | None = None,
        n_batch: int = 2048,
        gpu_layers: int = 0,
        flash_attn: bool = True,
        prompt_cache: Path | None = None,
        draft_tokens: int = 0,
    ) -> None:
        self.path = path
        self.name = path.stem
        # CPU speed (the README, Performance): the whole prompt in one batch and one micro-batch
        # (n_ubatch = n_batch; llama.cpp's default micro-batch of 512 splits it again), and
        # flash attention, which skips materialising the attention matrix. The KV cache is
        # reused across calls for the prompt prefix they share (llama-cpp-python keeps the
        # longest common prefix), so `kb summarize` pays for the system prompt once.
        batch = min(n_batch, n_ctx)
        self._llm = open_llama(
            path,
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=batch,
            n_ubatch=batch,
            flash_attn=flash_attn,
            n_gpu_layers=gpu_layers,
        )
        self.n_ctx = self._llm.n_ctx()
        self.threads = self._llm.n_threads
        self.prompt_cache = prompt_cache
        self._formatter: Any = None
        if draft_tokens > 0:
            enable_prompt_lookup(self._llm, draft_tokens)

    def _start_timing(self) -> None:
        """Zero llama.cpp's own counters of prompt and generation time (see `_record_speed`)."""
        import llama_cpp

        llama_cpp.llama_perf_context_reset(self._llm._ctx.ctx)

    def _record_speed(self) -> None:
        """Store this generation's tokens per second, read from llama.cpp's counters, for `kb models`."""
        import llama_cpp

        from kb.models import record_speed

        perf = llama_cpp.llama_perf_context(self._llm._ctx.ctx)
        record_speed(
            self.path, perf.n_p_eval, perf.t_p_eval_ms / 1000, perf.n_eval, perf.t_eval_ms / 1000, self.threads
        )

    def count_tokens(self, text: str) -> int:
        """Tokens the model's own tokenizer makes of `text`."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def chat(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        on_token: Callable[[str], None] | None = None,
        stop: list[str] | None = None,
    ) -> str:
        """The assistant's reply, generated with the model's own chat template."""
        parts: list[str] = []
        self._start_timing()
        if self.prompt_cache is not None and self._llm.n_tokens == 0:
            self._restore_system_prompt(messages)
        try:
            with _quiet_stderr():
                stream = self._llm.create_chat_completion(
                    messages=messages,  # type: ignore[arg-type]  # plain role/content dicts
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_k=1 if temperature == 0 else 40,
                    repeat_penalty=1.1,
                    stream=True,
                    stop=stop or [],
                )
                try:
                    for event in stream:
                        delta: Any = event["choices"][0]["delta"]  # type: ignore[index]
                        piece = str(delta.get("content") or "")
                        if piece:
                            parts.append(piece)
                            if on_token:
                                on_token(piece)  # may raise to stop the generation (kb.answer, kb serve)
                finally:
                    # A generation stopped early is closed now, while the model is alive, not by
                    # the garbage collector at exit, after llama.cpp's context may be freed.
                    close = getattr(stream, "close", None)
                    if close is not None:
                        close()
        finally:
            self._record_speed()
        return "".join(parts)

    def _system_prefix(self, messages: list[Message]) -> list[int] | None:
        """The prompt's tokens up to the first user message's content (the chat template's start
        and the system message, the same for every question), or None when there is none."""
        if len(messages) < 2 or messages[0]["role"] != "system" or messages[1]["role"] != "user":
            return None
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llm = self._llm
            template = llm.metadata.get("tokenizer.chat_template")
            if not template or llm.chat_format != "chat_template.default":
                return None
            eos, bos = llm.token_eos(), llm.token_bos()
            text = llm._model.token_get_text
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=text(eos) if eos != -1 else "",
                bos_token=text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
        result = self._formatter(messages=messages)
        at = result.prompt.find(messages[1]["content"])
        if at <= 0:
            return None

        def tokens(text: str) -> list[int]:
            return list(self._llm.tokenize(text.encode("utf-8"), add_bos=not result.added_special, special=True))

        prefix = tokens(result.prompt[:at])
        return prefix if tokens(result.prompt)[: len(prefix)] == prefix else None

    def _restore_system_prompt(self, messages: list[Message]) -> None:
        """Load the model's state after the system prompt from the prompt cache, or compute it and
        store it there: a new process then reads only the question and its passages.

        The state is llama.cpp's KV cache of those tokens (about 1 MB for 100 tokens of a 0.5B
        model), keyed by the model file, the context size and the tokens themselves.
        """
        import hashlib

        import llama_cpp

        prefix = self._system_prefix(messages)
        if not prefix or self.prompt_cache is None:
            return
        st = self.path.stat()
        key = hashlib.sha256(repr((st.st_size, int(st.st_mtime), self.n_ctx, prefix)).encode()).hexdigest()[:20]
        file = self.prompt_cache / f"{self.path.stem}-{key}.kv"
        ctx = self._llm._ctx.ctx
        n = len(prefix)
        out = (llama_cpp.llama_token * n)()
        got = ctypes.c_size_t(0)
        if file.is_file():
            with _quiet_stderr():
                read = llama_cpp.llama_state_seq_load_file(ctx, str(file).encode(), 0, out, n, ctypes.byref(got))
            if read and got.value == n and list(out) == prefix:
                self._llm.input_ids[:n] = prefix
                self._llm.n_tokens = n
                return
            self._llm.reset()
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        with _quiet_stderr():
            self._llm.eval(prefix)
        for i, token in enumerate(prefix):
            out[i] = token
        tmp = file.with_name(f"{file.name}.tmp{os.getpid()}")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            if llama_cpp.llama_state_seq_save_file(ctx, str(tmp).encode(), 0, out, n):
                os.replace(tmp, file)
        except OSError:
            pass  # a read-only cache: the next process computes the prefix again
        finally:
            tmp.unlink(missing_ok=True)


CONVERSIONS = ("auto", "off", "f16", "q8_0", "iq4_nl")


def conversion_for(name: str, convert: str) -> str:
    """What `llm_convert` means for this model: "off", "f16" or "q8_0".

    auto converts a known model when that measurably helps on a CPU (kb.models, auto_convert):
    the packaged SmolLM2 Q4_1 weights are read by llama.cpp's generic 4-bit kernels, and the same
    weights stored as F16 are read about twice as fast (docs/models.md) at 270 MB instead of
    92 MB; the Q4_K_M models are left as they are. A file a user chose is left as it is, since
    converting a 7B model would multiply its memory.
    """
    from kb.models import known_model

    if convert not in CONVERSIONS:
        raise ValueError(f"llm_convert must be one of {', '.join(CONVERSIONS)}, not {convert!r}")
    if convert == "auto":
        known = known_model(name)
        return known.auto_convert if known is not None else "off"
    return convert


def converted_path(path: Path, target: str, cache: Path | None = None) -> Path:
    """Where the `target` conversion of `path` is cached (whether or not it was made yet)."""
    if target == "off":
        return path
    from kb.config import model_cache_root

    st = path.stat()
    return (cache or model_cache_root()) / f"{path.stem}-{st.st_size}-{int(st.st_mtime)}.{target}.gguf"


def converted_gguf(path: Path, target: str, cache: Path | None = None) -> Path:
    """`path` with its weights converted to `target` ("f16" or "q8_0"), made once and cached.

    The conversion is llama.cpp's own quantize step, run locally in about a second; the file is
    written under a temporary name and renamed, so a crash never leaves half a model. When it
    cannot be made (read-only cache, a model llama.cpp cannot convert) the original is used.
    """
    if target == "off":
        return path
    import llama_cpp

    out = converted_path(path, target, cache)
    if out.is_file():
        return out
    ftype = {
        "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
        "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
        "iq4_nl": llama_cpp.LLAMA_FTYPE_MOSTLY_IQ4_NL,
    }[target]
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.allow_requantize = True
        params.nthread = os.cpu_count() or 1
        with _quiet_stderr():
            rc = llama_cpp.llama_model_quantize(str(path).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0:
            raise RuntimeError(f"llama.cpp returned {rc}")
        os.replace(tmp, out)
        return out
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        print(f"kb: {path}: not converted to {target} ({exc}); using it as it is", file=sys.stderr)
        return path


def load_llm(settings) -> LlamaCppLLM:
    """The LLM named by the settings (one instance per model and settings per process)."""
    path = resolve_gguf(settings.llm_model)
    path = converted_gguf(path, conversion_for(settings.llm_model, settings.llm_convert))
    return _cached_llm(
        path, settings.n_ctx, settings.threads, settings.n_batch, settings.gpu_layers, settings.draft_tokens
    )


@functools.lru_cache(maxsize=2)
def _cached_llm(path: Path, n_ctx: int, threads: int, n_batch: int, gpu_layers: int, draft: int) -> LlamaCppLLM:
    from kb.config import model_cache_root

    return LlamaCppLLM(
        path,
        n_ctx=n_ctx,
        threads=threads,
        n_batch=n_batch,
        gpu_layers=gpu_layers,
        prompt_cache=model_cache_root() / "prompts",
        draft_tokens=draft,
    )


class QuestionScorer:
    """How well a sentence explains a question: the language model's log-likelihood of the
    question read after the sentence, minus its likelihood read alone, per question token.

    This is query-likelihood reranking (UPR, Sachan et al. 2022): a sentence that answers the
    question makes its words predictable, while one that merely shares its topic does not. It
    separates sentences that a bi-encoder's cosine ranks alike (the README, How an answer is
    made, step 3). The model keeps the logits of every token, so it is a second, small
    instance over the same file (memory-mapped, so the weights are shared).
    """

    PREFIX = "Passage: {}\nQuestion: "

    def __init__(
        self, path: Path, *, threads: int | None = None, n_ctx: int = 256, max_sentence_tokens: int = 160
    ) -> None:
        self._llm = open_llama(
            path,
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=True,
            flash_attn=True,
        )
        self.n_ctx = n_ctx
        self.max_sentence_tokens = max_sentence_tokens

    def _tokens(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _question_logprob(self, prefix: list[int], question: list[int]) -> float:
        """Mean log-probability of the question's tokens after `prefix`."""
        import numpy as np

        tokens = prefix + question
        with _quiet_stderr():
            self._llm.reset()
            self._llm.eval(tokens)
        logits = np.asarray(self._llm.scores[len(prefix) - 1 : len(tokens) - 1], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        return float((logits[np.arange(len(question)), question] - log_norm).mean())

    def gains(self, sentences: list[str], question: str) -> list[float]:
        """For each sentence, how much more likely the question becomes after reading it
        (nats per question token; above 0 means it helps predict the question)."""
        q = self._tokens(question)[: self.n_ctx // 4]
        if not q:
            return [0.0] * len(sentences)
        # A sentence is cut to its first `max_sentence_tokens` (a table row run together can be
        # hundreds): reading time, not the window, is what bounds the scorer on a CPU.
        room = min(self.max_sentence_tokens, self.n_ctx - len(q) - 16)  # 16: the prefix's own words
        alone = self._question_logprob(self._tokens("Question: "), q)
        out = []
        for s in sentences:
            words = self._tokens(s)
            body = s if len(words) <= room else self._llm.detokenize(words[:room]).decode("utf-8", "ignore")
            out.append(self._question_logprob(self._tokens(self.PREFIX.format(body)), q) - alone)
        return out


def load_scorer(settings) -> QuestionScorer:
    """The packaged small model as a question scorer, whatever LLM writes the answers: it is fast
    enough to score a few sentences per question on a CPU, where a 7B model would take seconds
    per sentence."""
    scorer = "smollm2-135m"
    path = converted_gguf(resolve_gguf(scorer), conversion_for(scorer, settings.llm_convert))
    return _cached_scorer(path, settings.threads)


@functools.lru_cache(maxsize=1)
def _cached_scorer(path: Path, threads: int) -> QuestionScorer:
    return QuestionScorer(path, threads=threads)
