"""Which build runs: ``--version`` and the demo banner tell the truth, and CI's
compiled run really imports the compiled modules (not the checkout's ``.py``)."""

from __future__ import annotations

import ast
import importlib.machinery
import os
import pkgutil
import types
from pathlib import Path

import pytest

import trio_tcp6.runtime.flow
import trio_tcp6.tcp
import trio_tcp6.tcp.cc
import trio_tcp6.tcp.connection
import trio_tcp6.wire
import trio_tcp6.wire.tcp
from trio_tcp6.cli import main
from trio_tcp6.cli.build import build_description, compiled_modules
from trio_tcp6.tcp.cc import CongestionControlBase, NewReno
from trio_tcp6.tcp.cc.cubic import Cubic
from trio_tcp6.tcp.cc.hystart import HyStartPlusPlus
from trio_tcp6.wire.tcp import TCPSegment

EXTENSION = tuple(importlib.machinery.EXTENSION_SUFFIXES)
# Interpreted in the compiled build too (setup.py says why).
INTERPRETED = ("trio_tcp6.wire.icmpv6", "trio_tcp6.tcp.cc.interface")


def _engine_modules() -> list[str]:
    names = []
    for package in (trio_tcp6.wire, trio_tcp6.tcp, trio_tcp6.tcp.cc):
        names.append(package.__name__)
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if not info.ispkg:
                names.append(info.name)
    return names


def test_version_names_the_build(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("trio_tcp6 ")
    n = len(compiled_modules())
    expected = f"compiled (mypyc): {n} modules" if n else "pure Python"
    assert out.endswith(", " + expected), out
    assert build_description() == expected


def test_compiled_modules_are_those_loaded_from_extensions() -> None:
    compiled = set(compiled_modules())
    for module in (trio_tcp6.tcp.connection, trio_tcp6.wire.tcp):
        assert (module.__name__ in compiled) == str(module.__file__).endswith(EXTENSION)


def test_the_build_ci_asked_for_is_the_one_loaded() -> None:
    """.ci/run sets TRIO_TCP6_EXPECT_COMPILED: 0 for the pure run, 1 for the compiled."""
    expect = os.environ.get("TRIO_TCP6_EXPECT_COMPILED")
    if expect is None:
        pytest.skip("TRIO_TCP6_EXPECT_COMPILED is set by .ci/run only")
    if expect == "0":
        assert compiled_modules() == []
        assert trio_tcp6.tcp.connection.__file__.endswith(".py")
        return
    assert expect == "1"
    assert trio_tcp6.tcp.connection.__file__.endswith(EXTENSION)
    # Every engine module compiles except the ones setup.py leaves interpreted.
    for name in _engine_modules():
        module = __import__(name, fromlist=["_"])
        compiled = str(module.__file__).endswith(EXTENSION)
        assert compiled != (name in INTERPRETED), name


def _runtime_compiled() -> list[str]:
    """The module names of setup.py's RUNTIME_COMPILED (the runtime's per-packet
    path), read from its source: importing setup.py would run setuptools."""
    tree = ast.parse((Path(__file__).resolve().parents[1] / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "RUNTIME_COMPILED":
            paths: tuple[str, ...] = ast.literal_eval(node.value)
            return [p.removesuffix(".py").replace("/", ".") for p in paths]
    raise AssertionError("setup.py has no RUNTIME_COMPILED")


def test_the_runtime_per_packet_path_is_compiled_with_the_engine() -> None:
    """setup.py's runtime modules are compiled in the compiled build, interpreted in
    the pure one: never one without the other."""
    runtime = _runtime_compiled()
    assert "trio_tcp6.runtime.ipinput" in runtime  # (the list was found and read)
    engine_compiled = str(trio_tcp6.tcp.connection.__file__).endswith(EXTENSION)
    for name in runtime:
        module = __import__(name, fromlist=["_"])
        assert str(module.__file__).endswith(EXTENSION) == engine_compiled, name
        assert (name in compiled_modules()) == engine_compiled, name
    # The flow stays interpreted in both builds (setup.py says why).
    assert trio_tcp6.runtime.flow.__file__.endswith(".py")


def test_hot_classes_are_native_in_the_compiled_build() -> None:
    """The classes the compiled engine builds per segment and per connection are
    native there, constructed by native code: attrs would generate a Python
    ``__init__`` (one interpreted call per segment), and an interpreted congestion
    controller is an interpreted call per ACK."""
    if not trio_tcp6.wire.tcp.__file__.endswith(EXTENSION):
        pytest.skip("the pure build")
    for cls in (TCPSegment, CongestionControlBase, NewReno, Cubic, HyStartPlusPlus):
        assert cls.__dictoffset__ == 0, cls  # no __dict__: a native class
        assert not isinstance(cls.__init__, types.FunctionType), cls
