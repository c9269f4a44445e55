"""camtutor: learn CAM and Grad-CAM, then debug your own Keras classifiers with them.

The course's functions are top level and batched (numpy in, numpy out)::

    import camtutor as ct
    model = ct.models.load("shapes")
    data = ct.data.shapes(8, seed=1)
    maps = ct.grad_cam(model, data.images, data.labels)   # (8, 16, 16), raw
    picture = ct.overlay(data.images[0], maps[0])           # RGB uint8

The top level is what the notebooks and the README use: the CAM methods (``cam``, ``grad_cam``,
``heatmap``, ``guided_backprop``...) and the names of the methods (``METHODS``), the steps the course builds them from (``global_average_pooling``,
``relu``, ``mean_gradient_weights``, ``weighted_channel_sum``, ``gradients``, ``class_score``), map
post-processing (``normalize``, ``upsample``), drawing (``overlay``, ``show_grid``), localisation
(``box_from_map``, ``peak``), model helpers (``conv_layers``, ``load_model``, ``preprocess``...), the error
classes and the submodules. Everything else stays in its module: the other primitives and the weighting
rules in ``ct.maths`` (``ct.maths.WEIGHTINGS``), the registry ``ct.methods.REGISTRY``, ``ct.localize.iou``,
``ct.widgets.Explorer``...

``import camtutor`` itself is light: it imports no TensorFlow. Every top-level name
(``ct.grad_cam``, ``ct.overlay``, ``ct.data``...) is imported from its module on first use,
so the ``camtutor`` command starts, prints ``--help`` and checks its arguments in well under a second.
Drawing, localisation and map post-processing (``ct.overlay``, ``ct.box_from_map``, ``ct.normalize``,
``ct.upsample``; :mod:`camtutor.draw`, :mod:`camtutor.localize`, :mod:`camtutor.mapops`,
:mod:`camtutor.baselines`) are numpy and OpenCV only and never import TensorFlow.
"""

from __future__ import annotations

import os as _os
import sys as _sys

# Quiet TensorFlow's C++ start-up logging before anything imports it (notebooks, tests, CLI).
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# oneDNN's custom CPU kernels are TensorFlow's fast default (MobileNetV2's forward pass on 16 images was 1.4x faster with
# them here), so scripts and the command keep them. In a Jupyter kernel (the course) they are turned off: their
# start-up notice ignores TF_CPP_MIN_LOG_LEVEL and would show in the first cell, and without them results depend
# a little less on the CPU, which keeps the committed notebook outputs stable. Set the variable yourself, before
# importing camtutor, to choose either way.
if "ipykernel" in _sys.modules:
    _os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from camtutor.errors import CamTutorError, ImageError, LayerError, ModelError, TargetError  # noqa: E402

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first use by ``__getattr__``). The top level holds
#: what the notebooks and the README use; every other function stays under its module (``ct.maths.WEIGHTINGS``,
#: ``ct.localize.iou``, ``ct.methods.REGISTRY``, ``ct.widgets.Explorer``...).
_LAZY_NAMES: dict[str, str] = {
    **dict.fromkeys(("global_average_pooling", "mean_gradient_weights", "relu", "weighted_channel_sum"), "maths"),
    **dict.fromkeys(("normalize", "upsample"), "mapops"),  # the numpy versions: ct.normalize imports no TensorFlow
    **dict.fromkeys(("class_score", "contrast"), "targets"),
    **dict.fromkeys(("conv_layers", "gap_dense_head", "output_info"), "layers"),
    **dict.fromkeys(("TokenLayer", "ChannelsFirst", "ChannelsLast"), "feature_maps"),
    "resize_images": "inputs",
    **dict.fromkeys(
        ("cam", "cam_all_classes", "class_probabilities", "heatmap", "grad_cam", "grad_cam_all_classes", "gradients",
         "guided_backprop", "guided_gradcam"),
        "explain",
    ),
    "METHODS": "methods",  # the registry's method names, in order
    **dict.fromkeys(("overlay", "show_grid", "show_overlays"), "draw"),
    **dict.fromkeys(("box_from_map", "peak"), "localize"),
    **dict.fromkeys(("load_model", "preprocess"), "loading"),
}
#: The public submodules, imported on first use (``ct.data``, ``ct.maths.WEIGHTINGS``, ``ct.draw.colorize``).
_LAZY_MODULES = (
    "data", "models", "widgets", "figures", "environment", "exercises", "loading", "train",
    "images", "baselines", "metrics", "course",
    "maths", "mapops", "targets", "layers", "inputs", "explain", "methods", "draw", "localize", "feature_maps",
)
#: Submodules reachable as attributes: the public ones and the command's.
_SUBMODULES = _LAZY_MODULES + ("cli",)

__all__ = [
    "CamTutorError", "ImageError", "LayerError", "ModelError", "TargetError",
    *_LAZY_NAMES,
    *_LAZY_MODULES,
]


def __getattr__(name: str):
    """Import submodules (``ct.data``, ``ct.widgets``...) and the top-level names on first use."""
    import importlib

    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f"camtutor.{_LAZY_NAMES[name]}"), name)
        globals()[name] = value  # later look-ups are plain attribute reads
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"camtutor.{name}")
    raise AttributeError(f"module 'camtutor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
