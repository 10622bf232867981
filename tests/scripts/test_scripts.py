"""Every ``*.pkt`` script under tests/scripts/ is one test case.

A script with an ``--xfail <reason>`` header is a strict xfail: it must fail with a
:class:`ScriptFailure` (an engine mismatch), and turns red once the engine is fixed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .harness import ScriptFailure, iter_scripts, read_xfail, run_script

SCRIPT_DIR = Path(__file__).parent


def _params() -> list[object]:
    params: list[object] = []
    for path in iter_scripts(SCRIPT_DIR):
        reason = read_xfail(path)
        marks = (
            [pytest.mark.xfail(strict=True, raises=ScriptFailure, reason=reason)] if reason else []
        )
        params.append(pytest.param(path, id=path.relative_to(SCRIPT_DIR).as_posix(), marks=marks))
    return params


@pytest.mark.parametrize("path", _params())
def test_script(path: Path) -> None:
    run_script(path)


def _readme_table(heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table after ``heading`` in README.md."""
    text = (SCRIPT_DIR / "README.md").read_text()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]  # past the header rows


def test_readme_topics_table_counts_every_folder() -> None:
    counted = {row[0]: int(row[1]) for row in _readme_table("## Topics")}
    on_disk = {
        folder.name: len(list(folder.glob("*.pkt")))
        for folder in SCRIPT_DIR.iterdir()
        if folder.is_dir() and any(folder.glob("*.pkt"))
    }
    assert counted == on_disk
    assert sum(on_disk.values()) == len(list(iter_scripts(SCRIPT_DIR)))


def test_readme_must_table_names_existing_scripts() -> None:
    """Every script the MUST table cites exists where it says: ``folder/name`` (a
    lowercase folder, not a longer path such as tests/tcp/x.py), and a name after a
    comma without a folder is in the folder named last (``time_wait/a, b``)."""
    missing, cited = [], 0
    for row in _readme_table("## RFC 9293 Appendix B"):
        cell, folder = row[2], None
        for match in re.finditer(r"(?:(\w+)/)?(\w+|\*)", cell):
            prefix, name = match.groups()
            if (
                prefix is not None
                and prefix.islower()
                and cell[match.end() : match.end() + 1] not in ("/", ".")
            ):
                folder = prefix
            elif not (
                prefix is None and folder and "_" in name and cell[: match.start()].endswith(", ")
            ):
                continue
            cited += 1
            assert folder is not None
            found = list((SCRIPT_DIR / folder).glob("*.pkt" if name == "*" else f"{name}.pkt"))
            if not found:
                missing.append(f"{folder}/{name}")
    assert missing == []
    assert cited > 80  # the parser still reads the table
