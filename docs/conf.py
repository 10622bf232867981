"""Sphinx configuration for trio_tcp6."""

from __future__ import annotations

project = "trio_tcp6"
author = "trio_tcp6 developers"
# No napoleon: the docstrings are reStructuredText, and napoleon reads a "#:" comment
# such as "SND.UNA: oldest unacknowledged offset" as "type: description".
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
intersphinx_mapping: dict[str, tuple[str, None]] = {}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Types go beside the parameters a docstring describes; a bare list of every attrs
# field's type (without a word about it) says nothing the attributes below do not.
autodoc_typehints_description_target = "documented"
nitpicky = False
html_theme = "alabaster"
# Headings down to ### get anchors, so guide pages can link to sections.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
