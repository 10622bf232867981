"""Build script: the pure-Python package by default, or a compiled engine on request.

``TRIO_TCP6_COMPILE=1 pip install .`` compiles the modules of ``trio_tcp6/wire/``,
``trio_tcp6/tcp/`` and ``trio_tcp6/tcp/cc/``, and the runtime's per-packet path
(:data:`RUNTIME_COMPILED`), with mypyc (each becomes a C extension next to its
``.py``, which the import system then prefers); every other module stays
interpreted. Without the
variable, or when mypyc or a C compiler is missing, the build is pure Python and says
why. The metadata lives in pyproject.toml; this file only adds the extensions.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
COMPILE_VARIABLE = "TRIO_TCP6_COMPILE"

# Modules that stay interpreted in the compiled build, and why.
NOT_COMPILED = {
    # Its attrs message classes derive from small plain base classes: mypyc would make
    # those native, and an attrs class (always interpreted) cannot derive from a native
    # class. ICMPv6 is not on the per-segment path.
    "trio_tcp6/wire/icmpv6.py",
    # The congestion-control Protocol is runtime-checkable, which mypyc cannot compile.
    # The algorithms themselves (tcp/cc/base.py, newreno.py, cubic.py) are compiled:
    # the engine calls them on every ACK and builds one per connection, and their
    # classes allow interpreted subclasses, so CongestionControlBase stays the
    # extension point for algorithms written in plain Python.
    "trio_tcp6/tcp/cc/interface.py",
}


# Outside the engine, the modules every packet between a connection and a
# VirtualNetwork passes through: the stack's IPv6 input and output, a virtual link,
# the network's forwarding and a host's inbound queue. With the engine compiled,
# their interpreted code was most of what is left per packet. The flow (a trio
# stream, derived from trio's ABCs, with __slots__), the alarms (subclassed by
# interpreted code) and the VirtualNetwork object (weakly referenced) stay
# interpreted: mypyc cannot make those native classes.
RUNTIME_COMPILED = (
    "trio_tcp6/links/delivery.py",
    "trio_tcp6/links/forwarding.py",
    "trio_tcp6/links/host.py",
    "trio_tcp6/links/inbound.py",
    "trio_tcp6/runtime/ipinput.py",
    "trio_tcp6/runtime/ipoutput.py",
)


def compiled_sources() -> list[str]:
    """The ``.py`` files the compiled build turns into extensions."""
    paths = sorted(
        str(p.relative_to(ROOT).as_posix())
        for pattern in ("trio_tcp6/wire/*.py", "trio_tcp6/tcp/*.py", "trio_tcp6/tcp/cc/*.py")
        for p in ROOT.glob(pattern)
    ) + list(RUNTIME_COMPILED)
    return [p for p in paths if p not in NOT_COMPILED]


def _warn(message: str) -> None:
    print(f"trio_tcp6 build: {message}; building the pure-Python package", file=sys.stderr)


def _compiler_missing() -> str | None:
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc!r} is not on PATH)"
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").exists():
        return f"no Python headers (Python.h is not in {include})"
    return None


def extensions() -> list[object]:
    """The mypyc extensions when compiling was asked for and is possible, else none."""
    if os.environ.get(COMPILE_VARIABLE, "") in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn(f"{COMPILE_VARIABLE} is set but mypyc is not installed (pip install mypy)")
        return []
    missing = _compiler_missing()
    if missing is not None:
        _warn(f"{COMPILE_VARIABLE} is set but there is {missing}")
        return []
    sources = compiled_sources()
    print(f"trio_tcp6 build: compiling {len(sources)} modules with mypyc", file=sys.stderr)
    # group_name: the shared support library is named after the package, not a hash.
    return list(
        mypycify(sources, opt_level="3", group_name="trio_tcp6", target_dir=f"{BUILD_BASE}/c")
    )


# The compiled build keeps its own build tree, so that a later pure build never
# picks up an extension left over in build/lib (and the other way round).
BUILD_BASE = "build/mypyc"
ext_modules = extensions()
setup(
    ext_modules=ext_modules,
    options={"build": {"build_base": BUILD_BASE}} if ext_modules else {},
)
