"""Sphinx configuration of the documentation site: ``sphinx-build -W -b html docs docs/_build/html``."""
import os
import sys

# The repository root: the library (ntm) and the examples' shared code (utils) are documented
# from their sources, without installing them.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

project = "NTM"
author = "the NTM authors"
copyright = "the NTM authors"
release = version = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown pages: $...$ math, heading anchors for links such as page.md#section.
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# API pages from the numpydoc docstrings; members in the order of the source.
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = "NTM: Neural Turing Machines on PyTensor"
