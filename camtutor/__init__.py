"""camtutor: learn CAM and Grad-CAM, then debug your own Keras classifiers with them.

The math is top level and batched (numpy in, numpy out)::

    import camtutor as ct
    model = ct.models.load("shapes")
    data = ct.data.shapes(8, seed=1)
    maps = ct.grad_cam(model, data.images, data.labels)   # (8, 16, 16), raw
    picture = ct.overlay(data.images[0], maps[0])           # RGB uint8
"""

from __future__ import annotations

import os as _os

# Quiet TensorFlow's C++ start-up logging before anything imports it (notebooks, tests, CLI).
# oneDNN's start-up notice ignores TF_CPP_MIN_LOG_LEVEL; turning its custom ops off also makes
# CPU results less dependent on the machine. Set either variable yourself, before importing, to override.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from camtutor.errors import CamTutorError, ImageError, LayerError, ModelError, TargetError  # noqa: E402
from camtutor.maths import (  # noqa: E402
    WEIGHTINGS,
    cam_weights,
    elementwise_weights,
    global_average_pooling,
    mean_gradient_weights,
    normalize,
    relu,
    upsample,
    weighted_channel_sum,
)
from camtutor.targets import class_score, contrast, one_hot  # noqa: E402
from camtutor.layers import conv_layers, find_layer, gap_dense_head, output_info  # noqa: E402
from camtutor.inputs import check_images, resize_images  # noqa: E402
from camtutor.explain import (  # noqa: E402
    METHODS,
    cam,
    cam_all_classes,
    class_probabilities,
    grad_cam,
    grad_cam_all_classes,
    gradients,
    heatmap,
)
from camtutor.draw import overlay, show_grid, show_overlays  # noqa: E402
from camtutor.localize import box_from_map, iou, peak  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CamTutorError", "ImageError", "LayerError", "ModelError", "TargetError",
    "WEIGHTINGS", "cam_weights", "elementwise_weights", "global_average_pooling", "mean_gradient_weights",
    "normalize", "relu", "upsample", "weighted_channel_sum",
    "class_score", "contrast", "one_hot",
    "conv_layers", "find_layer", "gap_dense_head", "output_info",
    "check_images", "resize_images",
    "METHODS", "cam", "cam_all_classes", "class_probabilities", "heatmap", "grad_cam", "grad_cam_all_classes",
    "gradients",
    "overlay", "show_grid", "show_overlays",
    "box_from_map", "iou", "peak",
    "load_model", "preprocess", "Explorer",
    "data", "models", "widgets", "figures", "environment", "exercises", "loading", "train",
]

_LAZY_MODULES = ("data", "models", "widgets", "figures", "environment", "exercises", "loading", "train")
_LAZY_NAMES = {"load_model": "loading", "preprocess": "loading", "Explorer": "widgets"}


def __getattr__(name: str):
    """Import submodules (``ct.data``, ``ct.widgets``...) and a few names from them on first use."""
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f"camtutor.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f"camtutor.{_LAZY_NAMES[name]}"), name)
    raise AttributeError(f"module 'camtutor' has no attribute {name!r}")
