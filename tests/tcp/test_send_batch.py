"""Send-side batching (:data:`trio_tcp6.tcp.output.SEND_BATCH`) changes nothing but
speed: the scripts and the back-to-back scenarios run with it forced off and on emit
the same segments (every field, payload bytes included) at the same times and end
with the same TCB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any

import pytest

from trio_tcp6.tcp import output

from ..scripts.harness import Runner, load_script, read_xfail
from .test_backtoback import Path, cfg, run_transfer
from .test_fast_path import SCENARIOS, _scripts, run_toggled

EXTRA_SCENARIOS: dict[str, Callable[[], object]] = {
    # ECN-capable transport (ECT on new data) and a small window: the segments the
    # short path leaves to xmit(), and sends cut by the peer's window.
    "ecn_lossy": lambda: run_transfer(
        200_000, 50_000, seed=11, cfg_a=cfg(ecn=True), cfg_b=cfg(ecn=True),
        path=Path(delay=0.01, loss=0.02),
    ),
    "small_receive_window": lambda: run_transfer(
        100_000, 100_000, cfg_a=cfg(receive_buffer=8192), cfg_b=cfg(receive_buffer=8192)
    ),
}  # fmt: skip


def run_both(monkeypatch: pytest.MonkeyPatch, scenario: Callable[[], object]) -> list[Any]:
    """Run ``scenario`` with batching off, then on; compare; return the off-run's
    record (segments, final TCBs, failure)."""
    return run_toggled(monkeypatch, output, "SEND_BATCH", scenario)


@pytest.mark.parametrize("path", list(_scripts()))
def test_script_identical(monkeypatch: pytest.MonkeyPatch, path: FsPath) -> None:
    script = load_script(path)
    expect_fail = read_xfail(path) is not None

    def scenario() -> None:
        Runner(script).run()

    off = run_both(monkeypatch, scenario)
    assert (off[2] is not None) == expect_fail


@pytest.mark.parametrize("name", [*SCENARIOS, *EXTRA_SCENARIOS])
def test_backtoback_identical(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    off = run_both(monkeypatch, {**SCENARIOS, **EXTRA_SCENARIOS}[name])
    assert off[2] is None
    assert len(off[0]) > 50
