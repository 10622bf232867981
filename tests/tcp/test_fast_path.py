"""Header prediction (:func:`trio_tcp6.tcp.arrival.predicted`) changes nothing but
speed: the scripts and the back-to-back scenarios run with the fast path forced off
and on emit the same segments (every field, payload bytes included) at the same
times and end with the same TCB."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path as FsPath
from typing import Any

import pytest

from trio_tcp6.tcp import arrival
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.wire.tcp import TCPSegment

from ..scripts.harness import Runner, ScriptFailure, iter_scripts, load_script, read_xfail
from .test_backtoback import Path, cfg, run_transfer

SCRIPT_DIR = FsPath(__file__).parent.parent / "scripts"
#: The fast path's own counter is the one difference allowed.
FAST_COUNTER = "rcv_header_predicted"


def snapshot(obj: object, seen: set[int] | None = None) -> Any:
    """A comparable image of ``obj``'s state, following slots and attributes."""
    if obj is None or isinstance(obj, (int, float, str, bytes, bool)):
        return obj
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    if callable(obj) and not hasattr(obj, "__slots__") and not hasattr(obj, "__dict__"):
        return repr(type(obj))
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return "<cycle>"
    seen = seen | {id(obj)}
    if isinstance(obj, Counter):
        return sorted((k, v) for k, v in obj.items() if k != FAST_COUNTER and v)
    if isinstance(obj, dict):
        return sorted((repr(k), snapshot(v, seen)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) or type(obj).__name__ == "deque":
        return [snapshot(v, seen) for v in obj]  # type: ignore[attr-defined]
    if isinstance(obj, (set, frozenset)):
        return sorted(repr(v) for v in obj)
    names: list[str] = []
    for klass in type(obj).__mro__:
        names.extend(getattr(klass, "__slots__", ()))
    names.extend(getattr(obj, "__dict__", {}))
    out = {}
    for name in names:
        if name in ("__dict__", "__weakref__") or not hasattr(obj, name):
            continue
        value = getattr(obj, name)
        if callable(value) and not hasattr(value, "__slots__") and not hasattr(value, "__dict__"):
            continue  # a hook (trace) or a bound method
        out[name] = snapshot(value, seen)
    return (type(obj).__name__, sorted(out.items()))


class Recorder:
    """Records every segment any connection emits, and keeps the connections."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.emitted: list[TCPSegment] = []
        self.conns: list[Connection] = []
        take = Connection.take_segments
        init = Connection.__init__

        def take_segments(conn: Connection) -> list[TCPSegment]:
            segs = take(conn)
            self.emitted.extend(segs)
            return segs

        def record_init(conn: Connection, *args: Any, **kwargs: Any) -> None:
            init(conn, *args, **kwargs)
            self.conns.append(conn)

        monkeypatch.setattr(Connection, "take_segments", take_segments)
        monkeypatch.setattr(Connection, "__init__", record_init)


def run_toggled(
    monkeypatch: pytest.MonkeyPatch,
    module: object,
    flag: str,
    scenario: Callable[[], object],
    after_run: Callable[[bool, Recorder], None] | None = None,
) -> list[Any]:
    """Run ``scenario`` with ``module.flag`` off, then on, and require the same
    emitted segments, final TCBs and failure from both; return the off-run's record
    (segments, TCBs, failure). ``after_run(on, recorder)`` inspects each run."""
    results = []
    for on in (False, True):
        with monkeypatch.context() as m:
            m.setattr(module, flag, on)
            rec = Recorder(m)
            failure: str | None = None
            try:
                scenario()
            except ScriptFailure as exc:
                failure = str(exc).split("\n", 1)[0]
            results.append(
                [[snapshot(s) for s in rec.emitted], [snapshot(c) for c in rec.conns], failure]
            )
            if after_run is not None:
                after_run(on, rec)
    off, on_ = results
    assert len(off[0]) == len(on_[0])
    for i, (a, b) in enumerate(zip(off[0], on_[0], strict=True)):
        assert a == b, f"segment {i} differs"
    assert off[1] == on_[1], "final TCB differs"
    assert off[2] == on_[2]
    return off


def run_both(
    monkeypatch: pytest.MonkeyPatch, scenario: Callable[[], object]
) -> tuple[list[Any], int]:
    """Run ``scenario`` with the fast path off, then on; compare. Returns the
    off-run's record and how many segments took the fast path."""
    predicted = 0

    def count(on: bool, rec: Recorder) -> None:
        nonlocal predicted
        if on:
            predicted = sum(c.stats[FAST_COUNTER] for c in rec.conns)
        else:
            assert all(c.stats[FAST_COUNTER] == 0 for c in rec.conns)

    off = run_toggled(monkeypatch, arrival, "FAST_PATH", scenario, count)
    return off, predicted


def _scripts() -> Iterator[object]:
    for path in iter_scripts(SCRIPT_DIR):
        yield pytest.param(path, id=path.relative_to(SCRIPT_DIR).as_posix())


@pytest.mark.parametrize("path", list(_scripts()))
def test_script_identical(monkeypatch: pytest.MonkeyPatch, path: FsPath) -> None:
    script = load_script(path)
    expect_fail = read_xfail(path) is not None

    def scenario() -> None:
        Runner(script).run()

    off, _ = run_both(monkeypatch, scenario)
    assert (off[2] is not None) == expect_fail


SCENARIOS: dict[str, Callable[[], object]] = {
    "bulk_clean": lambda: run_transfer(300_000, 0),
    "both_ways": lambda: run_transfer(200_000, 150_000, path=Path(delay=0.005)),
    "lossy_reorder": lambda: run_transfer(
        300_000, 100_000, seed=7, path=Path(delay=0.02, loss=0.02, reorder=0.02)
    ),
    "no_sack_lossy": lambda: run_transfer(
        200_000, 50_000, seed=3, cfg_a=cfg(sack=False), cfg_b=cfg(sack=False),
        path=Path(delay=0.01, loss=0.03),
    ),
    "no_timestamps": lambda: run_transfer(
        200_000, 50_000, seed=5, cfg_a=cfg(timestamps=False), cfg_b=cfg(timestamps=False),
        path=Path(delay=0.01, loss=0.01, duplicate=0.02),
    ),
    "newreno_rate_limited": lambda: run_transfer(
        300_000, 0, cfg_a=cfg(congestion="newreno"), cfg_b=cfg(congestion="newreno"),
        path=Path(delay=0.01, rate=2e6, queue=30_000),
    ),
    "slow_reader": lambda: run_transfer(
        200_000, 0, cfg_b=cfg(receive_buffer=16384), read_rate_b=100_000.0
    ),
    "wraparound": lambda: run_transfer(200_000, 50_000, iss_a=0xFFFFF000, iss_b=0xFFFFFF00),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_backtoback_identical(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    off, predicted = run_both(monkeypatch, SCENARIOS[name])
    assert off[2] is None
    # The fast path was exercised: most of a clean transfer is predicted.
    share = 10 if name in ("lossy_reorder", "no_sack_lossy", "no_timestamps") else 4
    assert predicted > len(off[0]) // share, (predicted, len(off[0]))


def test_unknown_segment_fields_are_not_predicted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field a later layer adds to TCPSegment (named in coalesce.EXTRA_FIELDS)
    with a value other than its default sends the segment down the full path."""
    sim = run_transfer(100_000, 0)
    assert sim.stats_b[FAST_COUNTER] > 0
    # Stand-in for such a field: one every segment has at a non-default value.
    monkeypatch.setattr(arrival, "EXTRA_FIELDS", (("src_port", 0),))
    sim = run_transfer(100_000, 0)
    assert sim.stats_a[FAST_COUNTER] == sim.stats_b[FAST_COUNTER] == 0
