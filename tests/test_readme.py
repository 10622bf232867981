"""The README's usage example runs and prints what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
