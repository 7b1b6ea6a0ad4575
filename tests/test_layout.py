"""The arrows point one way: cli -> kb -> ingest. The library never imports the CLI, parsing never
imports the library, and the CLI reaches parsing only through kb."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# For each package, the packages of this repository it must never import.
FORBIDDEN = {"cli": {"ingest"}, "kb": {"cli"}, "ingest": {"cli", "kb"}}


def imported_packages(path: Path) -> set[str]:
    """The top-level names a Python file imports, wherever the import sits (lazy imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_imported_packages_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef f():\n    from cli.common import err\n    import ingest.discover\n")
    assert imported_packages(f) == {"os", "cli", "ingest"}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_backwards(package):
    wrong = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted((REPO / package).rglob("*.py"))
        for name in sorted(imported_packages(path) & FORBIDDEN[package])
    ]
    assert not wrong, "\n".join(wrong)
