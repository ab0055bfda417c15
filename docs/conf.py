"""Sphinx configuration: pydata theme, autodoc/autosummary + numpydoc, sphinx-gallery.

Pages that must never drift from the code are generated here, at build time:
the SageMaker migration table comes straight from
:mod:`skobject2vec.hyperparameters`.
"""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # examples and plot directives draw off-screen

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # docs/_ext

import skobject2vec  # noqa: E402
from _ext.migration import write_migration_tables  # noqa: E402

project = "skobject2vec"
author = "skobject2vec developers"
copyright = "skobject2vec developers"
release = version = skobject2vec.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "sphinx_gallery.gen_gallery",
]

templates_path = [str(HERE / "_templates")]  # absolute: autosummary resolves it from the CWD
exclude_patterns = ["_build", "_generated", "_templates", "_ext", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5", "sg_execution_times.rst"]
suppress_warnings = []

# --- API reference
autosummary_generate = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- links to Python, NumPy, scikit-learn and PyTorch. The build has no network (CI),
# so the inventories are local files: docs/_inv/*.inv, written by docs/_ext/inventories.py.
intersphinx_mapping = {
    name: (url, str(HERE / "_inv" / f"{name}.inv"))
    for name, url in {
        "python": "https://docs.python.org/3/",
        "numpy": "https://numpy.org/doc/stable/",
        "sklearn": "https://scikit-learn.org/stable/",
        "torch": "https://docs.pytorch.org/docs/stable/",
    }.items()
}
intersphinx_timeout = 1
nitpicky = True  # `make docs` also passes -n -W: every cross-reference must resolve

# --- plots in pages (the concepts diagram)
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]

# --- examples gallery
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # examples/demo.py is `make demo`, not a gallery page
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(demo|__init__)\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "plot_gallery": "True",
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "image_scrapers": ("matplotlib",),
}

# --- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"skobject2vec {release}"
html_static_path = ["_static"]
html_css_files = ["skobject2vec.css"]  # wide tables, wrapped headings and next/previous titles
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    # Pages with wide tables give the on-page table of contents' width to them.
    "secondary_sidebar_items": {"**": ["page-toc"], "sagemaker": []},
}
# Every page sits in a section (user guide, examples, results, API), so the left
# "Section Navigation" lists its neighbours; the landing page has no section.
html_sidebars = {"**": ["sidebar-nav-bs"], "index": []}


def setup(app):
    write_migration_tables(HERE / "_generated")
