"""Running one registry entry over a batch: one class per image or every class, in bounded compiled calls.

The public functions of :mod:`camtutor.explain` check their arguments, pick the registry entry and call one of
these drivers, which run the compiled functions of :mod:`camtutor.compiled` through :func:`camtutor.calls.run_finite`
and hand each pass to :func:`camtutor.method_impl.maps_from_pass`:

* :func:`weighting_maps` -- a gradient weighting (Grad-CAM, HiResCAM, Grad-CAM++, XGrad-CAM, LayerCAM), one
  class per image, in one compiled forward and backward pass (SmoothGrad: over noisy copies,
  :mod:`camtutor.smoothing`);
* :func:`weighting_maps_all_classes` -- the same for every class, the classes in chunks whose Jacobian holds at
  most :data:`ALL_CLASS_VALUES` values;
* :func:`class_maps` -- a gradient-free entry (CAM, Eigen-CAM, Score-CAM, Ablation-CAM): one forward pass, and
  for a method that declares extra passes the :class:`~camtutor.method_impl.Passes` it calls.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from camtutor import calls, feature_maps, method_impl, surgery
from camtutor.compiled import _Explainer
from camtutor.errors import TargetError
from camtutor.smoothing import smooth_spec, smoothed

__all__ = ["ALL_CLASS_VALUES", "weighting_maps", "weighting_maps_all_classes", "class_maps"]

#: The largest all-class Jacobian one call computes, in float32 values (images x classes x h x w x K): 2**25
#: values are 128 MB. More classes run in several calls of one forward and backward pass each.
ALL_CLASS_VALUES = 2**25


def weighting_maps(entry, model, images, class_index, layer, relu: bool, score: str, smooth) -> np.ndarray:
    """Maps (B, h, w) of a weighting ``entry``: one compiled forward and backward pass (SmoothGrad: over noisy
    copies)."""
    smooth = smooth_spec(smooth)
    ex, images = calls.prepare(model, images, score, entry=entry)
    target_fn, classes = calls.targets(ex, images, class_index)
    function = ex.grad_cam_function(calls.layer_of(model, layer), score, entry, relu, target_fn)
    return smoothed(smooth, images, classes, lambda x, c: calls.run_finite(function, x, c)[0].numpy())


def weighting_maps_all_classes(entry, model, images, layer, relu: bool, score: str) -> tuple[np.ndarray, np.ndarray]:
    """Every class's maps (B, C, h, w) of a weighting ``entry`` and probabilities (B, C), the classes in chunks
    whose Jacobian holds at most :data:`ALL_CLASS_VALUES` values (one chunk, one call, for the bundled models)."""
    ex, images = calls.prepare(model, images, score, entry=entry)
    target_layer = calls.layer_of(model, layer)
    function = ex.grad_cam_all_classes_function(target_layer, score, entry, relu)
    h, w, k = feature_maps.maps_shape(target_layer)
    cells = (h or images.shape[1]) * (w or images.shape[2]) * (k or 1)  # a free size is bounded by the input's
    per_call = max(1, ALL_CLASS_VALUES // max(1, len(images) * cells))
    maps, probabilities = [], None
    for start in range(0, ex.info.num_classes, per_call):
        ids = np.arange(start, min(start + per_call, ex.info.num_classes), dtype=np.int32)
        chunk, probabilities = calls.run_finite(function, images, ids)
        maps.append(chunk.numpy())
    return np.concatenate(maps, axis=1), probabilities.numpy()


def _pick(ex: _Explainer, classes: np.ndarray | None, target: Callable | None, all_classes: bool) -> Callable:
    """scores (N, C), image of each row (N,) -> (N, T): the target score(s) for extra-pass methods."""

    def pick(scores, rows):
        if all_classes:
            return np.asarray(scores, np.float32)
        if target is not None:
            return np.asarray(surgery.target_scores(target, tf.constant(scores)))[:, None]
        scores = np.asarray(scores, np.float32)
        return scores[np.arange(len(rows)), classes[rows]][:, None]

    return pick


def class_maps(entry, model, images, class_index, layer, score, all_classes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Raw maps (B, T, h, w) and probabilities (B, C) of a gradient-free entry (T = 1, or C classes): one forward
    pass, then :func:`camtutor.method_impl.maps_from_pass` (with :class:`~camtutor.method_impl.Passes` for a method
    that declares extra passes). The entry reads the score its declaration says."""
    if entry.gap_layer:
        ex, head, images = calls.prepare_cam(model, images, layer)
        target_layer = head.feature_layer
    else:
        ex, images = calls.prepare(model, images, score, entry=entry)
        head, target_layer = None, calls.layer_of(model, layer)
    if callable(class_index) and not all_classes and entry.class_specific and not entry.extra_passes:
        raise TargetError(f"{entry.label} reads one class per image (CAM: the Dense weights of that class); "
                          "pass class indices, not a function")
    score = entry.score(score) or "logit"
    target, classes = (None, None) if all_classes else calls.targets(ex, images, class_index)
    activations, probabilities = calls.run_finite(ex.forward_function(target_layer), images, None)
    activations, probabilities = activations.numpy(), probabilities.numpy()
    passes = None
    if entry.extra_passes:
        images_t, activations_t = tf.constant(images), tf.constant(activations)  # converted once, gathered by row

        def score_inputs(make_inputs, *arrays):
            function = ex.inputs_scores_function(make_inputs, score, len(arrays))
            return surgery.run(function, images_t, activations_t, *(np.asarray(a, np.int32) for a in arrays)).numpy()

        passes = method_impl.Passes(
            images=images,
            activations=activations,
            pick=_pick(ex, classes, target, all_classes),
            score_inputs=score_inputs,
            score_replaced=lambda rows, a: surgery.run(ex.replaced_function(target_layer, score), images_t,
                                                       np.asarray(rows, np.int32), a).numpy(),
        )
    forward = method_impl.ForwardPass(activations, classes, ex.info.num_classes, head, passes=passes)
    return np.asarray(method_impl.maps_from_pass(entry, forward)), probabilities
