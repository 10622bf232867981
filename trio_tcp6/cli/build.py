"""Which build of the engine is running: pure Python, or compiled with mypyc.

The compiled build (``TRIO_TCP6_COMPILE=1 pip install .``, see the guide's "compiled
engine" page) puts a C extension next to each compiled module's ``.py``; the import
system prefers the extension, so a module is compiled exactly when it was loaded
from one.
"""

from __future__ import annotations

import importlib.machinery
import sys
from importlib.metadata import PackageNotFoundError, version

import trio_tcp6

__all__ = ["build_description", "compiled_modules", "package_version"]


def compiled_modules() -> list[str]:
    """Names of the loaded modules of the package that come from compiled extensions
    (the engine, ``trio_tcp6.wire``, ``trio_tcp6.tcp`` and below, and the runtime's
    per-packet path), sorted."""
    prefix = trio_tcp6.__name__ + "."
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith(prefix)
        and str(getattr(module, "__file__", None) or "").endswith(suffixes)
    )


def package_version() -> str:
    """The installed distribution's version (``unknown`` when run from a bare checkout)."""
    try:
        return version("trio-tcp6")
    except PackageNotFoundError:
        return "unknown"


def build_description() -> str:
    """``pure Python`` or ``compiled (mypyc): N modules``."""
    compiled = compiled_modules()
    return f"compiled (mypyc): {len(compiled)} modules" if compiled else "pure Python"
