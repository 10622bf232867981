"""What the compiled build needs to know about the congestion controllers.

mypyc compiles :mod:`.base`, :mod:`.newreno` and :mod:`.cubic` into native classes,
which interpreted code may subclass only if the class says so:
``mypyc_attr(allow_interpreted_subclasses=True)``, mypy_extensions' decorator, which
mypyc reads at compile time. The pure package must not need mypy_extensions (it
comes with mypy, not with this package), so without it the decorator is one that
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["mypyc_attr"]

T = TypeVar("T")

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # pure install: only mypyc reads the decorator's arguments

    def mypyc_attr(*attrs: str, **kwattrs: object) -> Callable[[T], T]:
        """The identity decorator (mypy_extensions' own does nothing at run time)."""
        return lambda cls: cls
