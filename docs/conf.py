"""Sphinx configuration for trio_tcp6."""

from __future__ import annotations

project = "trio_tcp6"
author = "trio_tcp6 developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
intersphinx_mapping: dict[str, tuple[str, None]] = {}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpicky = False
html_theme = "alabaster"
# Headings down to ### get anchors, so guide pages can link to sections.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
