"""Fast CPU embedding: a sentence-transformers model exported once to ONNX, then run by ONNX
Runtime (fp32 or int8) or OpenVINO, with the model's own tokenizer and its pooling done in numpy.

The export is made locally, offline, from the model folder (never downloaded), validated
against PyTorch, and cached under `model_cache_root()/<fingerprint>-onnx<N>/`:

    model.onnx        fp32, attention and layer norms fused by ONNX Runtime's BERT optimizer
    model_int8.onnx   the same with dynamic int8 weights (per channel) for MatMul and Attention;
                      the embedding table stays fp32 (it is a lookup, not compute)
    export.json       versions, fused operators, and the largest difference to PyTorch
    openvino/         OpenVINO's compiled-model cache (made on first OpenVINO use)

Only the export imports torch; embedding with these files needs onnxruntime (or openvino),
tokenizers and numpy, so a query embeds in a fraction of a second in a new process.

The sentence-transformers helpers (`export_dynamic_quantized_onnx_model`, backend="onnx")
need `optimum-onnx`, which pins transformers below 4.58; kb does the same steps with
torch.onnx and onnxruntime.quantization instead, and checks the result the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kb.config import model_cache_root
from kb.errors import ModelNotFound

EXPORT_VERSION = 1  # bump when the exported files change, so old caches are not reused
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
META_FILE = "export.json"
# In "auto", a call embedding at least this many texts goes to OpenVINO (fast in bulk, slow to
# start); fewer (a query, a few sentences) go to ONNX Runtime, which starts in a few tenths of a second.
AUTO_BULK = 64
# Texts used to check an export against PyTorch: varied lengths so padding is exercised.
_CHECK_TEXTS = (
    "Employees get 25 days of annual leave.",
    "How many days of unused leave may be carried over into the following year, and who approves it?",
    "x",
    "Expense claims must be filed within 30 days with receipts attached; late claims need a manager's "
    "approval and are paid in the next cycle. " * 6,
)


class ExportError(ModelNotFound):
    """The model could not be exported to (or checked as) ONNX."""


@dataclass(frozen=True)
class Pipeline:
    """What the sentence-transformers folder does after the transformer: pooling, normalising."""

    transformer_dir: Path
    pooling: str  # "mean", "cls" or "max"
    lowercase: bool


def read_pipeline(path: Path) -> Pipeline:
    """The model's modules, or ExportError when they are more than Transformer, Pooling and Normalize."""
    modules_file = path / "modules.json"
    modules = (
        json.loads(modules_file.read_text())
        if modules_file.is_file()
        else [
            {"type": "sentence_transformers.models.Transformer", "path": ""},
            {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"},
        ]
    )
    transformer_dir, pooling = path, "mean"
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        folder = path / module.get("path", "")
        if kind == "Transformer":
            transformer_dir = folder
        elif kind == "Pooling":
            cfg = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
            modes = [
                m for m in ("cls", "mean", "max") if cfg.get(f"pooling_mode_{m}_token" + ("" if m == "cls" else "s"))
            ]
            others = [
                k
                for k, v in cfg.items()
                if k.startswith("pooling_mode_") and v and not k.endswith(("cls_token", "mean_tokens", "max_tokens"))
            ]
            if len(modes) != 1 or others:
                raise ExportError(f"{path}: pooling {cfg} is not supported by the ONNX backends")
            pooling = modes[0]
        elif kind != "Normalize":
            raise ExportError(f"{path}: module {kind} is not supported by the ONNX backends (use embed_backend=torch)")
    sbert = path / "sentence_bert_config.json"
    lowercase = bool(json.loads(sbert.read_text()).get("do_lower_case", False)) if sbert.is_file() else False
    return Pipeline(transformer_dir, pooling, lowercase)


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Sentence vectors from token vectors (batch, seq, dim) and the attention mask, L2-normalised."""
    hidden = hidden.astype(np.float32, copy=False)
    if mode == "cls":
        vecs = hidden[:, 0]
    elif mode == "max":
        vecs = np.where(mask[..., None] > 0, hidden, -1e9).max(axis=1)
    else:
        m = mask[..., None].astype(np.float32)
        vecs = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return np.ascontiguousarray(vecs / np.maximum(norms, 1e-12), dtype=np.float32)


def export_dir(fingerprint: str, root: Path | None = None) -> Path:
    """The cache folder of one model's export."""
    return (root or model_cache_root()) / f"{fingerprint}-onnx{EXPORT_VERSION}"


def ensure_export(model_dir: Path, fingerprint: str, root: Path | None = None) -> Path:
    """The folder holding the model's ONNX files, exporting them first if they are not cached.

    Concurrent processes wait for each other (a lock file); the folder appears whole or not at
    all (written to a temporary folder, then renamed).
    """
    final = export_dir(fingerprint, root)
    if (final / META_FILE).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / META_FILE).is_file():  # another process finished it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            meta = export_model(model_dir, tmp)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporters' warnings and root-logger messages: the library never prints."""
    import logging
    import warnings

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def export_model(model_dir: Path, out: Path) -> dict[str, Any]:
    """Export the transformer to out/model.onnx (fused fp32) and out/model_int8.onnx; returns metadata.

    Raises ExportError if the export cannot be made or differs from PyTorch.
    """
    pipeline = read_pipeline(model_dir)
    started = time.monotonic()
    try:
        with _quiet_export():
            for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS"):
                os.environ.setdefault(key, "1")
            raw = out / "raw.onnx"
            inputs, reference, config = _torch_export(pipeline.transformer_dir, raw)
            fused = _fuse(raw, out / FP32_FILE, config)
            raw.unlink()
            _quantize(out / FP32_FILE, out / INT8_FILE)
    except ExportError:
        raise
    except Exception as exc:  # an unexportable architecture must be a one-line error
        raise ExportError(f"{model_dir}: cannot export to ONNX ({type(exc).__name__}: {exc})") from exc
    # Checked on sentence vectors, as used: fp32 must match PyTorch, int8 stay close to it.
    want = pool(reference, inputs["attention_mask"], pipeline.pooling)
    cosine = {}
    for name, floor in ((FP32_FILE, 0.9999), (INT8_FILE, 0.97)):
        got = pool(_OrtRunner(out / name, threads=1).run(inputs), inputs["attention_mask"], pipeline.pooling)
        cosine[name] = float(np.min(np.sum(got * want, axis=1)))
        if not cosine[name] >= floor:
            raise ExportError(f"{model_dir}: ONNX export does not match PyTorch (cosine {cosine[name]:.4f}, {name})")
    import onnxruntime
    import torch

    return {
        "export_version": EXPORT_VERSION,
        "source": str(model_dir),
        "inputs": sorted(inputs),
        "fused_operators": fused,
        "min_cosine_to_torch": cosine,
        "seconds": round(time.monotonic() - started, 1),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _torch_export(transformer_dir: Path, target: Path) -> tuple[dict[str, np.ndarray], np.ndarray, Any]:
    """torch.onnx export of the transformer (token vectors out); returns check inputs and torch's outputs."""
    import inspect

    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars: the library never prints
    # Eager attention traces into the plain pattern ONNX Runtime's optimizer fuses into one Attention op.
    model = AutoModel.from_pretrained(str(transformer_dir), local_files_only=True, attn_implementation="eager").eval()
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]
    tok = Tokenizer.from_file(str(transformer_dir / "tokenizer.json"))
    inputs = _encode_batch(tok, list(_CHECK_TEXTS), 128, names)

    class TokenVectors(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, args, strict=True))).last_hidden_state

    wrapper = TokenVectors().eval()
    tensors = tuple(torch.from_numpy(inputs[n]) for n in names)
    with torch.no_grad():
        reference = wrapper(*tensors).numpy()
        torch.onnx.export(
            wrapper,
            tensors,
            str(target),
            input_names=names,
            output_names=["token_embeddings"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "token_embeddings"]},
            opset_version=17,
            dynamo=False,
        )
    return inputs, reference, model.config


def _fuse(raw: Path, target: Path, config: Any) -> dict[str, int]:
    """ONNX Runtime's transformer optimizer (attention, layer norm, GELU fusion) for BERT-like models."""
    if getattr(config, "model_type", "") not in ("bert", "roberta", "xlm-roberta", "camembert", "electra"):
        shutil.copyfile(raw, target)
        return {}
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(
        str(raw),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        opt_level=0,
        use_gpu=False,
    )
    model.save_model_to_file(str(target))
    return {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8: weights quantized per output channel, activations at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel keeps the vectors within cosine ~0.99 of fp32 (per-tensor: ~0.94).
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Attention"],
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _encode_batch(tokenizer: Any, texts: list[str], max_tokens: int, names: list[str]) -> dict[str, np.ndarray]:
    """Padded model inputs for texts (truncated to max_tokens)."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)
    encs = tokenizer.encode_batch(texts)
    padded = _pad(encs, range(len(encs)))
    return {n: padded[n] for n in names}


def _pad(encs: list[Any], rows: Any) -> dict[str, np.ndarray]:
    """input_ids, attention_mask and token_type_ids of the given encodings, padded to the longest."""
    rows = list(rows)
    width = max(len(encs[i].ids) for i in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64)
    for r, i in enumerate(rows):
        e = encs[i]
        n = len(e.ids)
        ids[r, :n] = e.ids
        mask[r, :n] = 1
        types[r, :n] = e.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


class _OrtRunner:
    """An ONNX Runtime session on the CPU."""

    def __init__(self, model_file: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        # Busy-waiting threads steal the CPU from the other thread when the machine is shared
        # (measured faster without it on a loaded 2-core machine, and kinder to laptop batteries).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Token vectors (batch, seq, dim)."""
        return self.session.run(None, {n: inputs[n] for n in self.names})[0]


class _OpenVinoRunner:
    """An OpenVINO compiled model on the CPU, at the plugin's default precision (bf16 where the CPU has it)."""

    def __init__(self, model_file: Path, threads: int | None, cache_dir: Path) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise ModelNotFound(f"openvino is not installed ({exc}); pip install openvino") from exc
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(cache_dir)})
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.model = core.compile_model(str(model_file), "CPU", config)
        self.names = [next(iter(i.get_names())) for i in self.model.inputs]
        self.request = self.model.create_infer_request()
        self.precision = str(self.model.get_property("INFERENCE_PRECISION_HINT"))

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Token vectors (batch, seq, dim)."""
        result = self.request.infer({n: inputs[n] for n in self.names})
        return np.asarray(result[self.model.outputs[0]])


RUNTIMES = ("onnx", "onnx-int8", "openvino", "auto")


class OnnxEmbedder:
    """A sentence-transformers model run through its ONNX export (see the module docstring).

    `runtime`: "onnx" (ONNX Runtime fp32), "onnx-int8" (ONNX Runtime, int8 weights), "openvino"
    (OpenVINO), or "auto" (OpenVINO for calls of AUTO_BULK texts or more, ONNX Runtime fp32 for
    fewer). fp32 ONNX and OpenVINO vectors match PyTorch's to float precision (bf16 on CPUs with
    it: cosine > 0.9999), so they keep the PyTorch fingerprint and a knowledge base built with
    one is searched with another. int8 vectors differ more (cosine ~0.99): they get their own
    fingerprint, so they are never mixed with fp32 vectors in one knowledge base.

    `reference` is the PyTorch embedder of the same folder: it supplies the name, dimension,
    token limit and chunking tokenizer, and in "auto" it embeds instead if the export fails.
    """

    def __init__(
        self,
        reference: Any,
        *,
        runtime: str = "auto",
        threads: int | None = None,
        cache_root: Path | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}")
        self.reference = reference
        self.path: Path = reference.path
        self.runtime = runtime
        self.pipeline = read_pipeline(self.path)
        self.name: str = reference.name
        self.dim: int = reference.dim
        self.max_tokens: int = reference.max_tokens
        self.tokenizer_file: str = reference.tokenizer_file
        self.fingerprint: str = reference.fingerprint + ("-int8" if runtime == "onnx-int8" else "")
        self._threads = threads
        self._cache_root = cache_root
        self._runners: dict[str, _OrtRunner | _OpenVinoRunner] = {}
        self._no_openvino = False
        self._encoder: Any = None
        self._use_reference = False

    def tokenizer(self) -> Any:
        """The model's own tokenizer, used to size chunks."""
        return self.reference.tokenizer()

    def export_folder(self) -> Path:
        """The folder of the ONNX files, exported on first use."""
        return ensure_export(self.path, self.reference.fingerprint, self._cache_root)

    def needs_export(self) -> bool:
        """Whether the first embedding will first export the model (15-30 s, once per model and machine)."""
        if self._use_reference:
            return False
        return not (export_dir(self.reference.fingerprint, self._cache_root) / META_FILE).is_file()

    def prepare(self) -> None:
        """Make the export now; a model the ONNX path cannot run falls back to PyTorch under `auto`, as in `embed`."""
        try:
            self.export_folder()
        except ExportError:
            if self.runtime != "auto":
                raise
            self._use_reference = True

    def runtime_for(self, n_texts: int) -> str:
        """Which runtime embeds a call of n_texts texts."""
        if self.runtime != "auto":
            return self.runtime
        if self._no_openvino:
            return "onnx"
        return "openvino" if "openvino" in self._runners or n_texts >= AUTO_BULK else "onnx"

    def _runner(self, n_texts: int) -> _OrtRunner | _OpenVinoRunner:
        kind = self.runtime_for(n_texts)
        if kind not in self._runners:
            folder = self.export_folder()
            if kind == "openvino":
                try:
                    self._runners[kind] = _OpenVinoRunner(folder / FP32_FILE, self._threads, folder / "openvino")
                except ModelNotFound:
                    if self.runtime != "auto":
                        raise
                    self._no_openvino = True  # auto without OpenVINO: ONNX Runtime does it all
                    return self._runner(n_texts)
            else:
                name = INT8_FILE if kind == "onnx-int8" else FP32_FILE
                self._runners[kind] = _OrtRunner(folder / name, self._threads)
        return self._runners[kind]

    def _token_encoder(self) -> Any:
        if self._encoder is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.pipeline.transformer_dir / "tokenizer.json"))
            tok.no_padding()
            tok.enable_truncation(self.max_tokens)
            self._encoder = tok
        return self._encoder

    def embed(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text; batches are formed from texts of similar length."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._use_reference:
            return self.reference.embed(texts, batch_size=batch_size)
        try:
            runner = self._runner(len(texts))
        except ExportError:
            if self.runtime != "auto":
                raise
            self._use_reference = True  # same vectors, slower: PyTorch
            return self.reference.embed(texts, batch_size=batch_size)
        # sentence-transformers strips (and optionally lowercases) texts before tokenizing.
        clean = [t.strip().lower() if self.pipeline.lowercase else t.strip() for t in texts]
        encs = self._token_encoder().encode_batch(clean)
        order = np.argsort([-len(e.ids) for e in encs], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = max(1, batch_size)
        for start in range(0, len(order), step):
            rows = order[start : start + step]
            inputs = _pad(encs, rows)
            out[rows] = pool(runner.run(inputs), inputs["attention_mask"], self.pipeline.pooling)
        return out
