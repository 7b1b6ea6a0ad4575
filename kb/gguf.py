"""Read a GGUF file's metadata (its key-value header) without loading the model.

The header is a list of typed key-value pairs before the tensor data (the GGUF format,
versions 2 and 3: every length is a little-endian uint64). Arrays such as the tokenizer's
vocabulary are skipped, not kept, so reading the few scalars kb needs costs milliseconds.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from kb.errors import ModelNotFound

# Value types: code -> struct format of one scalar (strings and arrays are read separately).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_STRING = 1 << 24  # a longer string kept in memory means a damaged file, not a real header
MetaValue = int | float | bool | str


class _Truncated(Exception):
    """The file ended inside the header."""


def _read(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise _Truncated
    return data


def _u32(fh: BinaryIO) -> int:
    return int(struct.unpack("<I", _read(fh, 4))[0])


def _u64(fh: BinaryIO) -> int:
    return int(struct.unpack("<Q", _read(fh, 8))[0])


def _string(fh: BinaryIO) -> str:
    n = _u64(fh)
    if n > _MAX_STRING:
        raise ValueError(f"a string of {n:,} bytes at offset {fh.tell() - 8}")
    return _read(fh, n).decode("utf-8", "replace")


def _skip_string(fh: BinaryIO) -> None:
    fh.seek(_u64(fh), 1)


def _value(fh: BinaryIO, kind: int) -> MetaValue | None:
    """One value; arrays are skipped and read as None."""
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, _read(fh, struct.calcsize(fmt)))[0]  # type: ignore[no-any-return]
    if kind == _STRING:
        return _string(fh)
    if kind == _ARRAY:
        item, count = _u32(fh), _u64(fh)
        if item in _SCALARS:
            fh.seek(struct.calcsize(_SCALARS[item]) * count, 1)
        elif item == _STRING:
            for _ in range(count):
                _skip_string(fh)
        else:  # nested arrays: no model kb knows uses them in its header
            for _ in range(count):
                _value(fh, item)
        return None
    raise ValueError(f"unknown GGUF value type {kind}")


def read_metadata(path: Path, keys: Iterable[str] | None = None) -> dict[str, MetaValue]:
    """The scalar metadata of a GGUF file (all of it, or only `keys`, stopping once they are read).

    A file that ends inside the header (for example the first part of a split model) yields what
    was read before its end. Raises ModelNotFound for a file that is not GGUF v2/v3.
    """
    wanted = set(keys) if keys is not None else None
    out: dict[str, MetaValue] = {}
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ModelNotFound(f"{path}: not a GGUF file")
            version = _u32(fh)
            if version not in (2, 3):
                raise ModelNotFound(f"{path}: GGUF version {version} is not supported (2 and 3 are)")
            _u64(fh)  # tensor count
            for _ in range(_u64(fh)):
                key = _string(fh)
                value = _value(fh, _u32(fh))
                if value is not None and (wanted is None or key in wanted):
                    out[key] = value
                    if wanted is not None and wanted <= out.keys():
                        break
    except _Truncated:
        pass
    except (OSError, ValueError, struct.error) as exc:
        raise ModelNotFound(f"{path}: cannot read the GGUF header ({exc})") from exc
    return out


def context_length(path: Path) -> int | None:
    """The context window the model was trained for (`<arch>.context_length`), or None if absent."""
    arch = read_metadata(path, ["general.architecture"]).get("general.architecture")
    if not isinstance(arch, str):
        return None
    value = read_metadata(path, [f"{arch}.context_length"]).get(f"{arch}.context_length")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
