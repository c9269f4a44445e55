"""Sphinx configuration of camtutor's website: the course (notebooks), the library's API, the command, benchmarks.

Build from the repository root (``pip install -e ".[docs]"`` first)::

    python -m sphinx -W -b html docs docs/_build/html

Nothing is executed: the notebooks are rendered from their committed outputs. Everything the site shows is
found at build time, so new notebooks, modules or an instructor guide appear without editing a list here:

* ``notebooks/*.ipynb`` are mirrored into ``docs/notebooks/`` (generated, git-ignored) and listed by a glob
  toctree in ``index.md``; links between them (``[next](03_target_function.ipynb)``) resolve as page links;
* ``api.md`` gets one section per public ``camtutor`` module found in the package (:data:`API_MODULES` gives
  the order; a module not yet written is simply absent);
* ``cli.md`` runs the command's argparse parser (``camtutor --help`` and each subcommand's);
* ``benchmarks.md`` includes ``benchmarks/results/benchmark.md`` and its ``.png``;
* ``instructor-guide.md`` joins the table of contents when the file exists.

Math renders with MathJax 3 served from the site itself (``sphinx-mathjax-offline``), so pages work offline.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import importlib
import json
import os
import pkgutil
import re
import shutil
import sys
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document this checkout's camtutor, not another installed copy
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import camtutor  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
MIRROR = DOCS / "notebooks"  # generated copy of ../notebooks (Sphinx reads sources only below docs/)
INSTRUCTOR_GUIDE = DOCS / "instructor-guide.md"
REPOSITORY = "https://github.com/camtutor/camtutor"
BINDER = "https://mybinder.org/v2/gh/camtutor/camtutor/HEAD?labpath=notebooks%2F{name}"
COLAB = "https://colab.research.google.com/github/camtutor/camtutor/blob/main/notebooks/{name}"
# the README badges are remote pictures; the site serves its own copies so that it works offline
BADGES = {
    "https://mybinder.org/badge_logo.svg": "/_static/badge-binder.svg",
    "https://colab.research.google.com/assets/colab-badge.svg": "/_static/badge-colab.svg",
}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# The API page: these modules first, in this order (the optional ones only once they exist), then any other
# public module of the package, except the tooling below (documented by its own page or not user-facing).
API_MODULES = (
    "explain", "methods", "maths", "mapops", "targets", "layers", "inputs", "draw", "localize", "metrics", "baselines", "images",
    "data", "models", "loading", "figures", "widgets", "exercises", "environment", "errors",
)
NOT_API = {"cli", "notebooks", "train"}

# this file's hooks change pages (source-read): when it changes, Sphinx must read every page again
camtutor_conf_digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()

project = "camtutor"
author = "the camtutor authors"
copyright = "the camtutor authors"
release = version = camtutor.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3.2 copied into _static/mathjax: no CDN
]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "make_figure.py"]
html_theme = "sphinx_book_theme"
html_title = "camtutor"
html_favicon = "_static/favicon.svg"
html_context = {"default_mode": "light"}  # the theme logs a console error when no mode is set
html_static_path = ["_static"]
html_theme_options = {
    "repository_url": REPOSITORY,
    "use_repository_button": True,
    "show_toc_level": 2,
}

nb_execution_mode = "off"  # rendered from the committed outputs; nothing runs at build time
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False


# --------------------------------------------------------------------------- the course: notebooks/ mirrored
def mirror_notebooks() -> list[str]:
    """Copy ../notebooks/*.ipynb into docs/notebooks/ (only changed files, so rebuilds stay incremental)."""
    MIRROR.mkdir(exist_ok=True)
    names = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
    for stale in MIRROR.iterdir():
        if stale.name not in names:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    for name in names:
        source, copy = NOTEBOOKS / name, MIRROR / name
        if not copy.exists() or not filecmp.cmp(source, copy, shallow=False):
            shutil.copyfile(source, copy)
    return names


COURSE = mirror_notebooks()


def _live_note(name: str) -> dict:
    """A markdown cell for a notebook whose widgets need a kernel: say what the page shows, and where to run it."""
    text = (
        ":::{note}\n"
        "**This page is a static copy.** The interactive parts of this notebook (the explorer) are ipywidgets, "
        "which need a running Python kernel: on this website the widgets do not appear, and what you see are "
        "the pictures the notebook saved when it was last run. "
        f"To use them live, open this notebook on [Binder]({BINDER.format(name=name)}) or in "
        f"[Colab]({COLAB.format(name=name)}), or run it in JupyterLab on your computer "
        "(`jupyter lab notebooks/`).\n"
        ":::\n"
    )
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _has_widgets(notebook: dict) -> bool:
    return any(
        WIDGET_MIME in output.get("data", {})
        for cell in notebook["cells"] if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
    )


def _is_kernel_note(cell: dict) -> bool:
    """A notebook's own note for readers without a kernel (markdown cell tagged ``kernel-note``)."""
    return cell["cell_type"] == "markdown" and "kernel-note" in cell.get("metadata", {}).get("tags", [])


def prepare_notebook(app, docname: str, source: list[str]) -> None:
    """source-read: local badge pictures, and the 'static copy' note on pages whose notebook has widgets.

    The site's note replaces the notebook's own ``kernel-note`` cell when there is one (both say the same
    thing; the page shows it once), and is inserted after the title cell otherwise."""
    if not docname.startswith("notebooks/"):
        return
    text = source[0]
    for remote, local in BADGES.items():
        text = text.replace(remote, local)
    notebook = json.loads(text)
    if _has_widgets(notebook):
        note = _live_note(Path(docname).name + ".ipynb")
        if any("id" in cell for cell in notebook["cells"]):  # nbformat >= 4.5: every cell has an id
            note["id"] = "camtutor-site-live-note"
        own = [i for i, cell in enumerate(notebook["cells"]) if _is_kernel_note(cell)]
        for i in reversed(own):
            del notebook["cells"][i]
        notebook["cells"].insert(own[0] if own else 1, note)
    source[0] = json.dumps(notebook)


# --------------------------------------------------------------------------- index and API page, filled in
def api_modules() -> list[str]:
    found = {info.name for info in pkgutil.iter_modules(camtutor.__path__) if not info.name.startswith("_")}
    ordered = [name for name in API_MODULES if name in found]
    return ordered + sorted(found - set(ordered) - NOT_API)


def _api_section(name: str) -> str:
    module = f"camtutor.{name}"
    return f"\n## `{module}`\n\n```{{eval-rst}}\n.. automodule:: {module}\n```\n"


def repository_links(text: str) -> str:
    """Links written for GitHub in a docs/*.md page (``../notebooks/02_cam_weights.ipynb``, ``../README.md``):
    notebooks go to their page on this site, other files of the repository to GitHub."""

    def replace(match: re.Match) -> str:
        path = match.group(2)
        if path.startswith("notebooks/") and path.split("#")[0].endswith(".ipynb"):
            return f"{match.group(1)}({path})"
        return f"{match.group(1)}({REPOSITORY}/blob/main/{path})"

    return re.sub(r"(\]|\]:\s*)\(\.\./([^)\s]+)\)", replace, text)


def fill_pages(app, docname: str, source: list[str]) -> None:
    """source-read: the API page's module sections; the instructor guide in the index when it exists;
    in every page of docs/ (not the notebooks), links to ../ files of the repository."""
    if not docname.startswith("notebooks/"):
        source[0] = repository_links(source[0])
    if docname == "api":
        source[0] = source[0].replace("<!-- modules -->", "".join(_api_section(name) for name in api_modules()))
    elif docname == "index":
        guide = "```{toctree}\n:caption: Teaching\n:maxdepth: 1\n\ninstructor-guide\n```\n"
        source[0] = source[0].replace("<!-- instructor-guide -->\n", guide if INSTRUCTOR_GUIDE.exists() else "")


# --------------------------------------------------------------------------- the command's --help
class CommandHelp(Directive):
    """``camtutor --help`` and every subcommand's ``--help``, from the parser itself at build time."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from camtutor.cli import build_parser

        columns = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "80"  # argparse wraps at the terminal's width: make it the same everywhere
        try:
            parser = build_parser()
            blocks = [("camtutor --help", parser.format_help())]
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for name, sub in action.choices.items():
                        blocks.append((f"camtutor {name} --help", sub.format_help()))
        finally:
            if columns is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = columns
        result: list[nodes.Node] = []
        for command, text in blocks:
            section = nodes.section(ids=[nodes.make_id(command)], names=[nodes.fully_normalize_name(command)])
            section += nodes.title("", "", nodes.literal(command, command))
            section += nodes.literal_block(text, text, language="text")
            result.append(section)
        return result


# --------------------------------------------------------------------------- ct.NAME -> its defining module
def resolve_top_level(app, env, node, contnode):
    """missing-reference: ``camtutor.upsample`` (the lazy top-level API) links to ``camtutor.maths.upsample``."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("camtutor.") or target.count(".") != 1:
        return None
    try:
        obj = getattr(camtutor, target.split(".", 1)[1])
    except AttributeError:
        return None
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(name, str):  # a module (ct.data) or a constant
        return None
    domain = env.get_domain("py")
    node["reftarget"] = f"{module}.{name}"
    found = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], node["reftarget"], node, contnode)
    node["reftarget"] = target
    return found


def always_reread(app, env, added, changed, removed) -> list[str]:
    """env-get-outdated: the generated pages depend on more than their .md file (the package, the parser,
    whether the instructor guide exists), so an incremental build reads them again every time."""
    return [name for name in ("index", "api", "cli") if name in env.found_docs]


def setup(app):
    app.add_config_value("camtutor_conf_digest", "", "env")
    app.connect("env-get-outdated", always_reread)
    app.connect("missing-reference", resolve_top_level)
    app.connect("source-read", prepare_notebook)
    app.connect("source-read", fill_pages)
    app.add_directive("camtutor-help", CommandHelp)
    return {"parallel_read_safe": True}
