"""The build backend: setuptools', plus mypy as a build requirement only when the
compiled engine is asked for (``TRIO_TCP6_COMPILE=1``; see setup.py).

A pure install therefore never downloads mypy, and ``TRIO_TCP6_COMPILE=1 pip install .``
works with pip's build isolation as well as with ``--no-build-isolation``.
"""

from __future__ import annotations

import os

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403  (the rest of the backend interface)

#: What the compiled build needs besides setuptools: mypyc ships with mypy, and mypy
#: must see the typed runtime dependencies the engine imports (else their types are Any).
COMPILE_REQUIRES = ["mypy>=1.10", "attrs>=23.1", "trio>=0.30"]


def _compile_requires() -> list[str]:
    return [] if os.environ.get("TRIO_TCP6_COMPILE", "") in ("", "0") else COMPILE_REQUIRES


def get_requires_for_build_wheel(config_settings: dict[str, object] | None = None) -> list[str]:
    """setuptools' requirements, plus mypy for a compiled build."""
    return [*build_meta.get_requires_for_build_wheel(config_settings), *_compile_requires()]


def get_requires_for_build_editable(
    config_settings: dict[str, object] | None = None,
) -> list[str]:
    """As :func:`get_requires_for_build_wheel`, for ``pip install -e``."""
    return [*build_meta.get_requires_for_build_editable(config_settings), *_compile_requires()]
