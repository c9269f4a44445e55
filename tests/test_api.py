"""The top-level API: what the notebooks and the README use, and nothing else (camtutor issue 11).

The primitives the course does not call by their top-level name stay in their modules
(``ct.maths.WEIGHTINGS``, ``ct.localize.iou``, ``ct.methods.REGISTRY``...).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import camtutor as ct

ROOT = Path(__file__).resolve().parents[1]

ERRORS = {"CamTutorError", "ImageError", "LayerError", "ModelError", "TargetError"}
FUNCTIONS = {
    "global_average_pooling", "mean_gradient_weights", "relu", "weighted_channel_sum",  # ct.maths
    "normalize", "upsample",  # ct.mapops
    "class_score", "contrast",  # ct.targets
    "conv_layers", "gap_dense_head", "output_info",  # ct.layers
    "TokenLayer", "ChannelsFirst", "ChannelsLast",  # ct.feature_maps: stating a layer's layout
    "resize_images",  # ct.inputs
    "cam", "cam_all_classes", "class_probabilities", "heatmap", "grad_cam", "grad_cam_all_classes", "gradients",
    "guided_backprop", "guided_gradcam",  # ct.explain
    "METHODS",  # ct.methods: the registry's names (notebook 11)
    "overlay", "show_grid", "show_overlays",  # ct.draw
    "box_from_map", "peak",  # ct.localize
    "load_model", "preprocess",  # ct.loading
}
MODULES = {
    "data", "models", "widgets", "figures", "environment", "exercises", "loading", "train", "images", "baselines",
    "metrics", "course", "maths", "mapops", "targets", "layers", "inputs", "explain", "methods", "draw", "localize",
    "feature_maps",
}
#: top-level names before the trim, now only in their module
MOVED = {
    "WEIGHTINGS": "maths", "cam_weights": "maths", "elementwise_weights": "maths", "one_hot": "targets",
    "find_layer": "layers", "check_images": "inputs", "heatmap_all_classes": "explain",
    "iou": "localize", "Explorer": "widgets",
}


def _texts() -> dict[str, str]:
    """The sources that define the public API: notebooks (code and markdown), README, docs, exercises, course, benchmarks."""
    files = sorted(ROOT.glob("notebooks/*.ipynb"))
    files += [ROOT / "README.md", ROOT / "camtutor" / "course.py"]
    files += sorted(ROOT.glob("docs/*.md")) + sorted(ROOT.glob("camtutor/exercises/*.py")) + sorted(ROOT.glob("benchmarks/*.py"))
    texts = {}
    for path in files:
        if path.suffix == ".ipynb":
            texts[path.name] = "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])
        else:
            texts[path.name] = path.read_text()
    return texts


def _used_names() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for name, text in _texts().items():
        for match in re.finditer(r"\bct\.([A-Za-z_]\w*)", text):
            used.setdefault(match.group(1), set()).add(name)
    return used


def test_all_is_exactly_the_public_set_and_every_name_resolves():
    assert len(ct.__all__) == len(set(ct.__all__))
    assert set(ct.__all__) == ERRORS | FUNCTIONS | MODULES
    for name in ct.__all__:
        assert getattr(ct, name) is not None, name
    namespace: dict = {}
    exec("from camtutor import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(ct.__all__)
    assert isinstance(ct.__version__, str) and ct.cli.main  # not in __all__, still there
    assert ct.methods.METHODS == ct.explain.METHODS  # one registry of names


def test_moved_names_live_in_their_module_only():
    for name, module in MOVED.items():
        assert getattr(getattr(ct, module), name) is not None, (module, name)
        with pytest.raises(AttributeError, match=name):
            getattr(ct, name)
        assert name not in dir(ct)


def test_the_top_level_is_what_the_notebooks_readme_and_docs_use():
    used = _used_names()
    assert {"grad_cam", "overlay", "normalize", "data"} <= set(used)  # the scan finds the sources
    # every ct.NAME the sources use exists (nbval re-runs the notebooks: none may break)
    missing = {name: sorted(where) for name, where in used.items() if not hasattr(ct, name)}
    assert not missing
    # and every top-level function is used by one of them, else it belongs in its module
    unused = sorted(FUNCTIONS - set(used))
    assert not unused, f"top-level names no notebook, README, doc, exercise or benchmark uses: {unused}"
