"""camtutor: learn CAM and Grad-CAM, then debug your own Keras classifiers with them.

The math is top level and batched (numpy in, numpy out)::

    import camtutor as ct
    model = ct.models.load("shapes")
    data = ct.data.shapes(8, seed=1)
    maps = ct.grad_cam(model, data.images, data.labels)   # (8, 16, 16), raw
    picture = ct.overlay(data.images[0], maps[0])           # RGB uint8

``import camtutor`` itself is light: it imports no TensorFlow. Every top-level name
(``ct.grad_cam``, ``ct.overlay``, ``ct.data``...) is imported from its module on first use,
so the ``camtutor`` command starts, prints ``--help`` and checks its arguments in well under a second.
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

#: public name -> the module that defines it (imported on first use by ``__getattr__``).
_LAZY_NAMES: dict[str, str] = {
    **dict.fromkeys(
        ("WEIGHTINGS", "cam_weights", "elementwise_weights", "global_average_pooling", "mean_gradient_weights",
         "normalize", "relu", "upsample", "weighted_channel_sum"),
        "maths",
    ),
    **dict.fromkeys(("class_score", "contrast", "one_hot"), "targets"),
    **dict.fromkeys(("conv_layers", "find_layer", "gap_dense_head", "output_info"), "layers"),
    **dict.fromkeys(("check_images", "resize_images"), "inputs"),
    **dict.fromkeys(
        ("cam", "cam_all_classes", "class_probabilities", "heatmap", "heatmap_all_classes", "grad_cam",
         "grad_cam_all_classes", "gradients", "guided_backprop", "guided_gradcam"),
        "explain",
    ),
    "METHODS": "methods",
    **dict.fromkeys(("overlay", "show_grid", "show_overlays"), "draw"),
    **dict.fromkeys(("box_from_map", "iou", "peak"), "localize"),
    **dict.fromkeys(("load_model", "preprocess"), "loading"),
    "Explorer": "widgets",
}
_LAZY_MODULES = (
    "data", "models", "widgets", "figures", "environment", "exercises", "loading", "train",
    "images", "baselines", "metrics", "course",
)
#: Submodules reachable as attributes too (``ct.draw.colorize``), as when they were imported eagerly.
_SUBMODULES = _LAZY_MODULES + (
    "maths", "targets", "layers", "inputs", "explain", "draw", "localize", "methods", "cli",
)

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
