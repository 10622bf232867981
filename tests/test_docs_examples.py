"""The guide's examples are real: every ``python`` block in ``docs/`` is marked, and
each one marked runnable runs as printed (and prints what the page says it prints).

Markers, on the line before the opening fence (HTML comments: invisible on the page):

``<!-- example: run -->``
    the block is a whole program; it must exit 0. If the next fenced block is
    ``text`` and marked ``<!-- prints -->``, each of its lines must begin a line of
    the program's output.
``<!-- example: no-run (why) -->``
    the block is a fragment, needs root, or uses a feature not in the code yet.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

import trio_tcp6 as tcp6

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
MARK = re.compile(r"<!-- (example: run|example: no-run \(.+?\)|prints) -->\n*$")


@attrs.frozen
class Block:
    page: str
    line: int
    lang: str
    code: str
    mark: str | None

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def blocks() -> list[Block]:
    out = []
    for path in sorted(DOCS.rglob("*.md")):
        text = path.read_text()
        for m in FENCE.finditer(text):
            before = MARK.search(text[: m.start()].rstrip("\n") + "\n")
            out.append(
                Block(
                    page=str(path.relative_to(DOCS)),
                    line=text.count("\n", 0, m.start()) + 1,
                    lang=m.group(1),
                    code=m.group(2),
                    mark=before.group(1) if before else None,
                )
            )
    return out


def runnable() -> list[tuple[Block, Block | None]]:
    found = blocks()
    out = []
    for i, block in enumerate(found):
        if block.mark != "example: run":
            continue
        following = found[i + 1] if i + 1 < len(found) else None
        prints = (
            following
            if following is not None
            and following.page == block.page
            and following.lang == "text"
            and following.mark == "prints"
            else None
        )
        out.append((block, prints))
    return out


def test_every_python_example_is_marked() -> None:
    python = [b for b in blocks() if b.lang == "python"]
    assert len(python) >= 10
    unmarked = [b.name for b in python if b.mark is None or b.mark == "prints"]
    assert unmarked == [], "mark each python block: <!-- example: run --> or no-run (why)"


def test_the_guide_has_runnable_examples_on_each_topic() -> None:
    pages = {block.page for block, _ in runnable()}
    for page in ("first-connection", "serving", "mirage", "tls", "http", "testing", "options"):
        assert f"guide/{page}.md" in pages


@pytest.mark.parametrize(("block", "prints"), runnable(), ids=lambda b: getattr(b, "name", ""))
def test_runnable_example(block: Block, prints: Block | None, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", block.code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    if prints is not None:
        lines = proc.stdout.splitlines()
        for expected in prints.code.splitlines():
            assert any(line.startswith(expected) for line in lines), (expected, proc.stdout)


def test_options_page_names_every_tcpconfig_field() -> None:
    text = (DOCS / "guide" / "options.md").read_text()
    rows = set(re.findall(r"^\| `(\w+)` \|", text, re.M))
    assert rows == {f.name for f in attrs.fields(tcp6.TCPConfig)}


def test_docs_never_point_outside_the_repository() -> None:
    for path in [*DOCS.rglob("*.md"), *DOCS.rglob("*.rst"), DOCS / "conf.py"]:
        text = path.read_text()
        assert "shared/" not in text and "/work/" not in text, path
        for target in re.findall(r"\]\(([^)]+)\)", text):  # Markdown links
            if "://" in target or target.startswith("#"):
                continue
            resolved = (path.parent / target.split("#")[0]).resolve()
            assert resolved.is_relative_to(ROOT), (path, target)
