"""The README is a user's guide that cannot drift from the code: its shell blocks marked
`<!-- runnable -->` are run as written on the samples (real models), its links and the links
of docs/ point at files and headings that exist, and it stays short."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.kbproc import NETGUARD

README = REPO / "README.md"
MARKER = "<!-- runnable -->"
_BLOCK = re.compile(r"^<!-- runnable -->\n```sh\n(.*?)^```", re.S | re.M)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def runnable_blocks(text: str) -> list[str]:
    """The bodies of the ```sh blocks that directly follow the runnable marker."""
    return [m.group(1) for m in _BLOCK.finditer(text)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading of a Markdown file (fenced blocks skipped)."""
    out, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            out.add(slug(line.lstrip("#")))
    return out


def test_readme_is_a_short_guide():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 500
    assert "session" not in text.lower()
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines()[0].startswith("make demo") and first_block.splitlines()[1].startswith("make test")


def test_the_marker_finds_the_quick_start():
    blocks = runnable_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "no runnable block"
    assert any("kb ingest samples" in b for b in blocks)
    assert runnable_blocks(f"{MARKER}\n```sh\necho one\n```\n\n```sh\necho two\n```\n") == ["echo one\n"]


PAGES = ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES)
def test_links_point_at_files_and_headings_that_exist(page):
    source = REPO / page
    broken = []
    for target in _LINK.findall(source.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # an external address: not followed (no network)
        file_part, _, anchor = target.partition("#")
        dest = (source.parent / file_part).resolve() if file_part else source
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, "\n".join(broken)


@pytest.mark.models
def test_runnable_blocks_run_as_written_on_the_samples(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(
        KB_HOME=str(tmp_path / "kb-home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join([str(NETGUARD), str(REPO)]),
        # The interpreter running the tests provides `kb`, whether or not it lives in .venv/.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    activate = REPO / ".venv" / "bin" / "activate"
    for block in runnable_blocks(README.read_text(encoding="utf-8")):
        script = block if activate.is_file() else block.replace(". .venv/bin/activate", "true")
        r = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600
        )
        assert r.returncode == 0, f"{block}\nexit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr and "error:" not in r.stderr, r.stderr[-3000:]
        if "kb ask" in block:
            assert "Sources:" in r.stdout, r.stdout[-2000:]
        if "kb ingest samples" in block:
            # Every sample document is read: "N files: N added, ..., 0 failed".
            summary = re.search(r"(\d+) files?: (\d+) added.*?, (\d+) failed", r.stderr)
            assert summary and summary[1] == summary[2] and summary[3] == "0", r.stderr[-2000:]
