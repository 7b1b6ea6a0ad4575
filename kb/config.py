"""Settings in one typed place.

Precedence, lowest first: built-in defaults, the config file (TOML), `KB_*` environment
variables, then CLI flags (applied by the CLI through `Settings.with_overrides`).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import ConfigError, KBError

# How the embedding model may run (kb/embeddings.py load_embedder, kb/onnx_embed.py).
EMBED_BACKENDS = ("auto", "torch", "onnx", "onnx-int8", "openvino")
# KB_* variables that are read but name no setting.
OTHER_ENV = ("KB_CONFIG", "KB_MODEL_CACHE", "KB_SERVER", "KB_TOKEN")  # read by the CLI, not settings


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kb"


def default_config_path() -> Path:
    """Where the config file is looked for unless KB_CONFIG names another."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kb" / "config.toml"


def _default_gpu_layers() -> int:
    # Apple Silicon: put every layer on Metal; elsewhere the CPU build has no GPU.
    return -1 if platform.system() == "Darwin" and platform.machine() == "arm64" else 0


def _doc(text: str, **kw: Any) -> Any:
    return field(metadata={"doc": text}, **kw)


def model_cache_root() -> Path:
    """Where models derived locally (ONNX exports, converted GGUF files) are cached:
    $KB_MODEL_CACHE, else $XDG_CACHE_HOME/kb/models or ~/.cache/kb/models."""
    if os.environ.get("KB_MODEL_CACHE"):
        return Path(os.environ["KB_MODEL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kb" / "models"


@dataclass(frozen=True)
class Settings:
    """Every tunable of kb. Each field documents itself; `kb config` lists them."""

    home: Path = _doc("Knowledge-base folder (flag --kb).", default_factory=_default_home)  # noqa: RUF009
    embed_model: str = _doc(
        "Sentence-transformers model folder, or 'default' for the packaged all-MiniLM-L6-v2.",
        default="default",
    )
    embed_backend: str = _doc(
        "How the embedding model runs: auto (OpenVINO for bulk ingest, ONNX Runtime for queries; "
        "same vectors as torch), torch (sentence-transformers on PyTorch fp32, the reference), onnx "
        "(ONNX Runtime fp32), openvino, or onnx-int8 (int8 weights: fastest without bf16 hardware, "
        "vectors differ slightly so a knowledge base built with it must be searched with it). The "
        "ONNX export is made once, offline, from the model folder into ~/.cache/kb/models "
        "($KB_MODEL_CACHE).",
        default="auto",
    )
    llm_model: str = _doc(
        "The LLM: a packaged model's name (smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b; `kb models` "
        "lists them), 'default' for the one `make install` sets up, or a path to any .gguf file.",
        default="default",
    )
    llm_convert: str = _doc(
        "Weight format the LLM runs in: auto (the packaged SmolLM2 Q4_1 model is converted once, locally, to "
        "F16, the same weights unpacked, which llama.cpp reads about twice as fast on a CPU, and the packaged "
        "Qwen 0.5B Q4_K_M model to Q8_0, whose prompt is read about 1.3x faster; the 1.5B model and other "
        "files are used as they are), off, f16, q8_0, or iq4_nl (4-bit: faster on a CPU, a slightly different "
        "model). Converted files are cached in "
        "~/.cache/kb/models ($KB_MODEL_CACHE).",
        default="auto",
    )
    chunk_tokens: int = _doc("Chunk size in embedding-model tokens (the default model reads at most 256).", default=200)
    chunk_overlap: int = _doc("Tokens shared by consecutive chunks.", default=32)
    embed_batch: int = _doc("Passages embedded per batch.", default=32)
    threads: int = _doc("CPU threads for the LLM and embedder.", default_factory=lambda: os.cpu_count() or 1)
    n_ctx: int = _doc("LLM context window in tokens.", default=4096)
    n_batch: int = _doc(
        "LLM prompt-processing batch size in tokens (also the micro-batch): a whole prompt in one batch "
        "is evaluated fastest on a CPU (the README, Performance).",
        default=2048,
    )
    gpu_layers: int = _doc("LLM layers offloaded to Metal (-1 all, 0 none).", default_factory=_default_gpu_layers)
    draft_tokens: int = _doc(
        "Prompt-lookup drafting: up to this many tokens that followed the latest occurrence of the last "
        "few tokens in the prompt are checked in one pass of the LLM, since answers copy their documents' "
        "words; the greedy answer is the same, written faster. 0 turns it off.",
        default=3,
    )
    vector_index: str = _doc(
        "FAISS index type: auto (exact search up to exact_search_max vectors, IVF above), flat (always "
        "exact) or ivf (always approximate).",
        default="auto",
    )
    exact_search_max: int = _doc(
        "With vector_index=auto, the largest number of vectors searched exactly (the README, Performance).",
        default=200_000,
    )
    ivf_nprobe: int = _doc(
        "IVF lists searched per query (0 = an eighth of them, at least 16): higher finds more of the exact "
        "neighbours, slower (the README, Performance has recall and latency).",
        default=0,
    )
    top_k: int = _doc("Passages retrieved for an answer.", default=6)
    glossary: str = _doc(
        "A text file of `term | the words it is read as` lines: a question that uses a term is also searched "
        "for those words (kb knows common measures of financial analysis, such as operating margin or quick "
        "ratio, as the line items they are computed from; these add yours). Empty: the built-in terms only.",
        default="",
    )
    search_mode: str = _doc("Retrieval mode: hybrid, dense or keyword.", default="hybrid")
    max_answer_tokens: int = _doc("Most tokens the LLM may generate for an answer.", default=160)
    evidence_tokens: int = _doc(
        "Prompt budget, in LLM tokens, for the passages `kb ask` shows the model (those holding the "
        "best-ranked sentences first). Reading the prompt is most of an answer's time on a CPU; raise "
        "it for a larger model with a long context.",
        default=640,
    )
    excerpt_sentences: int = _doc(
        "The model reads the passages cut to the N best-ranked sentences and the sentence either side of "
        "each, instead of whole passages (0: whole passages). Half the prompt, so a faster answer on a CPU, "
        "with the same answers on the samples and multi-hop questions.",
        default=8,
    )
    extractive_sentences: int = _doc(
        "Most sentences in an extractive answer (and in the fallback when the LLM's answer fails "
        "verification): the best one, then near-ties from other passages of the same document, "
        "each quoted and cited.",
        default=3,
    )
    rerank_sentences: int = _doc(
        "`kb ask` (not --extractive) re-scores this many best-ranked sentences by how likely the packaged "
        "small model finds the question after each one (query likelihood), to choose the sentences the "
        "answer rests on; 0 (the default) turns it off. It helped on long scientific prose and hurt on short "
        "policy documents with tables (the README, How an answer is made); about 0.15-0.35 s per sentence "
        "on a 2-core CPU.",
        default=0,
    )
    temperature: float = _doc("LLM sampling temperature (0 = deterministic).", default=0.0)
    min_relevance: float = _doc(
        "`kb ask` refuses when no passage is at least this similar to the question (cosine, 0-1).", default=0.2
    )
    min_answerability: float = _doc(
        "`kb ask` refuses below this answerability: 0.6 x best sentence score (cosine + IDF-weighted shared words) "
        "+ 0.2 x question-word coverage of a top passage + 0.1 x the best document's margin over the "
        "next one + 0.2 x how specific a name of the question is that the best evidence mentions. Up to 0.1 "
        "below it, kb still answers when the evidence's document is about a name of the question, and says the "
        "documents only partly answer. Raise it to refuse more readily, lower it to answer more "
        "(docs/answers.md has the trade-off).",
        default=0.56,
    )
    max_file_mb: float = _doc("Files larger than this are skipped at ingest.", default=200.0)
    parse_timeout: float = _doc(
        "Seconds a parser may work on a file without finishing it, or without finishing a page of a PDF "
        "(time spent waiting for a core is not counted).",
        default=120.0,
    )
    parse_memory_mb: int = _doc(
        "Address-space cap in MB for the parse worker (0 = no cap); a file whose parser exceeds it fails alone.",
        default=2048,
    )
    pdf_password: str = _doc("Password tried on encrypted PDFs (empty password is always tried).", default="")
    default_group: str = _doc(
        "Access group of documents ingested without one (`kb serve` tokens): empty (the default) makes them "
        "visible to every token; a name makes them visible only to tokens in that group.",
        default="",
    )
    tokens: tuple = _doc(
        "`kb serve` API tokens, config file only: [tokens.NAME] tables with sha256 (of the token), groups and "
        "optional scopes (search, ask, summarize). `kb token create` writes one. With none, the server answers "
        "only on loopback, without authentication.",
        default=(),
    )
    serve_queue: int = _doc(
        "`kb serve`: requests that may wait for the LLM while it answers another; one more gets 429 with Retry-After.",
        default=4,
    )
    pdf_engine: str = _doc(
        "Library that reads PDF text: auto (PDFium through pypdfium2, about 20x faster; pypdf for a file or "
        "page PDFium cannot read), pdfium (PDFium only) or pypdf (pypdf only, the slower pure-Python reader). "
        "docs/pdf.md compares their text. Env KB_PDF_ENGINE.",
        default="auto",
    )
    ocr: str = _doc(
        "When text is read by OCR (RapidOCR, models inside the rapidocr-onnxruntime package): auto (images, "
        "and PDF pages that show an image and whose text layer is empty or far too short for their area), "
        "always (every PDF page too), or off. OCR text is marked in citations (p. 3, OCR) with its "
        "confidence. Env KB_OCR.",
        default="auto",
    )
    ocr_dpi: int = _doc("Resolution PDF pages are rendered at for OCR (at least 200).", default=200)
    ocr_page_timeout: float = _doc(
        "Seconds the OCR of one page or image may take; past it that page is skipped with a warning.",
        default=60.0,
    )
    parse_workers: int = _doc(
        "Parse worker processes (default: the cores). Each parses one file at a time, isolated (parse_timeout, "
        "parse_memory_mb, crashes), at a lower priority than the embedder, so parsing fills the time the "
        "embedder leaves. Env KB_PARSE_WORKERS.",
        default_factory=lambda: os.cpu_count() or 1,
    )

    @classmethod
    def fields_doc(cls) -> list[tuple[str, str, Any]]:
        """(name, description, default) for every setting."""
        out = []
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            out.append((f.name, f.metadata.get("doc", ""), default))
        return out

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with the given non-None values replaced and checked."""
        clean = {k: v for k, v in values.items() if v is not None}
        return _validated(dataclasses.replace(self, **_coerce(clean)), dict.fromkeys(clean, "flag"))

    @classmethod
    def load(cls, config_path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
        """Defaults, then the config file, then KB_* environment variables."""
        return load_with_sources(config_path, environ).settings


@dataclass(frozen=True)
class Loaded:
    """Settings with where each value comes from, as `kb config` shows them."""

    settings: Settings
    file: Path | None  # the config file that was read, None when there is none
    looked_at: Path  # where a config file was looked for
    sources: dict[str, str]  # setting -> "default", "file" or "env KB_NAME"
    unknown_env: tuple[str, ...] = ()  # KB_* variables that name no setting

    def with_flags(self, **values: Any) -> Loaded:
        """The same with command-line values (None = not given) applied and marked as flags."""
        given = {k: v for k, v in values.items() if v is not None}
        sources = {**self.sources, **dict.fromkeys(given, "flag")}
        return dataclasses.replace(self, settings=self.settings.with_overrides(**given), sources=sources)


def load_with_sources(config_path: Path | None = None, environ: dict[str, str] | None = None) -> Loaded:
    """Defaults, then the config file, then KB_* environment variables; with the source of each value."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_path or (Path(env["KB_CONFIG"]) if env.get("KB_CONFIG") else default_config_path())
    loaded: Path | None = None
    if path.is_file():
        try:
            values.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
        loaded = path
    elif config_path is not None:
        raise ConfigError(f"{path}: config file given with --config does not exist")
    elif env.get("KB_CONFIG"):
        raise ConfigError(f"{path}: config file named by KB_CONFIG does not exist")
    names = [f.name for f in dataclasses.fields(Settings)]
    for name in sorted(set(values) - set(names)):
        raise ConfigError(f"{path}: unknown setting {name}{_suggest(name, names)}")
    sources = {name: "file" if name in values else "default" for name in names}
    for name in names:
        if name == "tokens":  # secrets' hashes live in the file, never in the environment
            continue
        key = "KB_" + name.upper()
        if key in env and env[key] != "":
            values[name] = env[key]
            sources[name] = f"env {key}"
    known = {"KB_" + n.upper() for n in names} | set(OTHER_ENV)
    unknown = tuple(sorted(k for k in env if k.startswith("KB_") and k not in known))
    settings = _validated(Settings(**_coerce(values)), sources, loaded)
    return Loaded(settings, loaded, path, sources, unknown)


def unknown_env_warning(name: str) -> str:
    """The warning for a KB_* variable that names no setting, with the likeliest meant one."""
    names = ["KB_" + f.name.upper() for f in dataclasses.fields(Settings)] + list(OTHER_ENV)
    return f"{name} is not a kb setting, ignored{_suggest(name, names)}"


def _suggest(name: str, choices: list[str]) -> str:
    """'; did you mean x?' for the closest choice, or ''."""
    import difflib

    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


_TYPES = {f.name: f.type for f in dataclasses.fields(Settings)}


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        kind = _TYPES.get(name)
        try:
            if name == "tokens":
                from kb.tokens import parse_tokens

                out[name] = value if isinstance(value, tuple) else parse_tokens(value)
            elif kind == "int":
                out[name] = int(value)
            elif kind == "float":
                out[name] = float(value)
            elif kind == "Path":
                out[name] = Path(str(value)).expanduser()
            else:
                out[name] = str(value)
        except ValueError as exc:
            raise ConfigError(f"setting {name}: {value!r} is not a valid {kind}") from exc
    return out


def _where(source: str, file: Path | None) -> str:
    if source == "file":
        return f", from {file}" if file else ", from the config file"
    if source == "flag":
        return ", from the command line"
    if source.startswith("env "):
        return f", from {source[4:]}"
    return ""


_CHOICES = {
    "embed_backend": EMBED_BACKENDS,
    "llm_convert": ("auto", "off", "f16", "q8_0", "iq4_nl"),
    "vector_index": ("auto", "flat", "ivf"),
    "search_mode": ("hybrid", "dense", "keyword"),
    "pdf_engine": ("auto", "pdfium", "pypdf"),
    "ocr": ("auto", "off", "always"),
}
# (setting, lowest, highest or None): each value is checked on its own, so a message names one.
_RANGES: tuple[tuple[str, float, float | None], ...] = (
    ("chunk_tokens", 16, None),
    ("embed_batch", 1, None),
    ("threads", 1, None),
    ("n_ctx", 256, None),
    ("n_batch", 32, None),
    ("draft_tokens", 0, 32),
    ("exact_search_max", 0, None),
    ("ivf_nprobe", 0, None),
    ("top_k", 1, None),
    ("max_answer_tokens", 1, None),
    ("evidence_tokens", 64, None),
    ("excerpt_sentences", 0, None),
    ("extractive_sentences", 1, None),
    ("rerank_sentences", 0, None),
    ("temperature", 0, None),
    ("min_relevance", 0, 1),
    ("min_answerability", 0, 1),
    ("max_file_mb", 0, None),
    ("parse_timeout", 0.1, None),
    ("serve_queue", 0, None),
    ("parse_workers", 1, None),
    ("ocr_dpi", 200, 600),
    ("ocr_page_timeout", 0, None),
)


def _validated(s: Settings, sources: dict[str, str] | None = None, file: Path | None = None) -> Settings:
    """`s` if every value is usable; else a ConfigError naming the first wrong one and where it came from."""
    sources = sources or {}

    def bad(name: str, rule: str) -> ConfigError:
        return ConfigError(f"{name} {rule} (got {getattr(s, name)!r}{_where(sources.get(name, ''), file)})")

    for name, choices in _CHOICES.items():
        if getattr(s, name) not in choices:
            raise bad(name, f"must be one of {', '.join(choices)}")
    for name, low, high in _RANGES:
        value = getattr(s, name)
        if value < low or (high is not None and value > high):
            if high is not None:
                raise bad(name, f"must be between {low:g} and {high:g}")
            raise bad(name, f"must be at least {low:g}")
    if not 0 <= s.chunk_overlap <= s.chunk_tokens // 2:
        raise bad("chunk_overlap", f"must be between 0 and half of chunk_tokens ({s.chunk_tokens // 2})")
    if s.parse_memory_mb != 0 and s.parse_memory_mb < 256:
        raise bad("parse_memory_mb", "must be 0 (no cap) or at least 256")
    if s.default_group:
        from kb.groups import check_group_name

        try:
            check_group_name(s.default_group)
        except KBError as exc:
            raise bad("default_group", f"is not a group name: {exc}") from None
    return s
