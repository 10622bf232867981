"""The README's usage example runs and prints what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    proc = subprocess.run(
        [sys.executable, "-c", blocks[0]], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "got b'hello'" in proc.stdout
    assert "state=<State.ESTABLISHED" in proc.stdout and "sack=True" in proc.stdout


def test_readme_quick_start_has_the_two_commands() -> None:
    text = README.read_text()
    assert "python3 -m trio_tcp6 demo" in text
    assert "python3 -m pytest" in text


def _snippet_with(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"expected one README python block with {marker!r}"
    return found[0]


def test_readme_app_test_under_loss_is_ten_lines() -> None:
    snippet = _snippet_with("def test_echo_under_loss")
    test = snippet[snippet.index("async def test_echo_under_loss") :].strip().splitlines()
    assert len(test) == 10
    assert "loss=0.05" in test[1]


def test_readme_app_test_under_loss_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The snippet as a user's test file, run by pytest with the plugin loaded (through
    # its entry point once installed; from this checkout otherwise).
    monkeypatch.setenv("PYTHONPATH", str(README.parent))
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_app=_snippet_with("def test_echo_under_loss"))
    plugin = "trio_tcp6.testing.plugin"
    installed = any(ep.value == plugin for ep in entry_points(group="pytest11"))
    args = ["-p", "no:cacheprovider"] + ([] if installed else ["-p", plugin])
    result = pytester.runpytest_subprocess(*args, timeout=120)
    result.assert_outcomes(passed=1)
