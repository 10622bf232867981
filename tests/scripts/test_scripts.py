"""Every ``*.pkt`` script under tests/scripts/ is one test case.

A script with an ``--xfail <reason>`` header is a strict xfail: it must fail with a
:class:`ScriptFailure` (an engine mismatch), and turns red once the engine is fixed.
"""

from __future__ import annotations

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
