"""One call of a compiled function, checked: its options and batch before TensorFlow sees them, NaN/inf after.

* :func:`prepare` (and :func:`prepare_cam` for CAM's GAP -> Dense head) checks ``score``, ``weighting`` and the
  image batch, and refuses ``score="logit"`` only when the method reads the logit and it cannot be reached;
* :func:`layer_of` finds a layer by name (cached per model), :func:`targets` turns a class argument into class
  indices or a target function;
* :func:`run_finite` calls a compiled function of :mod:`camtutor.compiled` and refuses non-finite outputs, naming the
  images (:func:`nonfinite_rows`).

Callers look :func:`run_finite` up through this module (``calls.run_finite(...)``), so a test can wrap it in one place.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from camtutor import maths, surgery
from camtutor import methods as _methods
from camtutor.compiled import _Explainer, explainer
from camtutor.errors import CamTutorError, LayerError, ModelError
from camtutor.inputs import check_images
from camtutor.layers import GapHead, find_layer, layer_name
from camtutor.scores import SCORES
from camtutor.targets import ClassIndex, resolve_class_indices

__all__ = ["prepare", "prepare_cam", "layer_of", "targets", "run_finite", "nonfinite_rows"]


def layer_of(model: keras.Model, name: str | None) -> keras.layers.Layer:
    """The layer called ``name`` (None: the default feature map), cached per model."""
    return explainer(model).layer(name)


def prepare(model: keras.Model, images: object, score: str, weighting: str = "mean",
            entry: _methods.Method | None = None) -> tuple[_Explainer, np.ndarray]:
    """Check the options and the batch before anything reaches TensorFlow: -> (explainer, float32 images).

    The logits must be reachable only when the method reads them (``entry``'s declaration; without an
    entry, the gradient of ``score``)."""
    if score not in SCORES:
        raise CamTutorError(f"score must be one of {SCORES}, got {score!r}")
    if weighting not in maths.WEIGHTINGS:
        raise CamTutorError(f"weighting must be one of {sorted(maths.WEIGHTINGS)}, got {weighting!r}")
    ex = explainer(model)
    reads = score if entry is None else entry.score(score)
    if reads == "logit" and not ex.info.logits_reachable:
        note = ""
        if entry is not None and entry.class_blind_on_probability:
            readers = [e.name for e in _methods.REGISTRY.values() if e.reads != "score"]
            note = (f". {entry.label} with score='probability' is class-blind (see camtutor.maths.score_cam_weights); "
                    f"{readers} read probabilities or no score")
        raise ModelError(ex.no_logits_message() + note)
    return ex, check_images(images, ex.input_shape, model=ex.model)


def prepare_cam(model: keras.Model, images: object, layer: str | None) -> tuple[_Explainer, GapHead, np.ndarray]:
    """Check the GAP -> Dense head, the layer and the batch for CAM: -> (explainer, head, float32 images)."""
    ex = explainer(model)
    head = ex.gap_head()
    if layer is not None and find_layer(model, layer) is not head.feature_layer:
        raise LayerError(
            f"CAM is defined only at the feature map that feeds GlobalAveragePooling2D "
            f"({layer_name(model, head.feature_layer)!r}); for layer {layer!r} use "
            f"camtutor.grad_cam(..., layer={layer!r})"
        )
    return ex, head, check_images(images, ex.input_shape, model=ex.model)


def targets(ex: _Explainer, images: np.ndarray, class_index: ClassIndex, class_names=None):
    """-> (target function or None, class indices (B,) int32 or None)."""
    if callable(class_index):
        return class_index, None
    return None, resolve_class_indices(class_index, len(images), ex.info.num_classes, class_names)


def run_finite(function: Callable, images: np.ndarray, classes: np.ndarray | None):
    """``function(images[, classes])`` through :func:`camtutor.surgery.run`, its outputs checked to be finite."""
    args = (images,) if classes is None else (images, classes)
    return _finite(surgery.run(function, *args), len(images))


def nonfinite_rows(outputs, batch: int) -> list[int] | None:
    """Indices of the images whose outputs hold NaN or inf ([] for a problem not tied to a row); None if all finite."""
    rows: set[int] = set()
    found = False
    for tensor in tf.nest.flatten(outputs):
        if not tensor.dtype.is_floating or bool(tf.reduce_all(tf.math.is_finite(tensor))):
            continue
        found = True
        values = np.asarray(tensor)
        if values.ndim and values.shape[0] == batch:
            rows |= set(np.flatnonzero(~np.isfinite(values.reshape(batch, -1)).all(axis=1)).tolist())
    return sorted(rows) if found else None


def _finite(outputs, batch: int):
    """``outputs`` unchanged when every float value is finite; a ModelError naming the images otherwise.

    NaN or inf in a map, a gradient or a score is never drawn or returned: it comes from the model (NaN
    weights, a diverged training run, an input far outside its range), never from the CAM arithmetic.
    """
    rows = nonfinite_rows(outputs, batch)
    if rows is not None:
        where = f" for image(s) {rows[:10]}" if rows else ""
        raise ModelError(
            f"the model's scores, activations or gradients are NaN or inf{where}, so no map can be drawn; "
            "check the model's weights (a diverged training run?) and that the images are scaled as the model "
            "expects (camtutor.class_probabilities(model, images) shows which scores are not finite)"
        )
    return outputs
