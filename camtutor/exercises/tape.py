"""Exercise for notebook 05: write the whole of Grad-CAM from a ``tf.GradientTape``, checked against ``ct.grad_cam``.

::

    from camtutor.exercises import tape as ex_tape
    ex_tape.grad_cam_tape.check(my_grad_cam_tape)
    # my_grad_cam_tape(logit_model, images, class_indices, layer_name) -> (B, h, w) Grad-CAM with ReLU

``logit_model`` outputs the class **logits** (a copy of a classifier whose last layer is linear, as built in
notebook 04), ``images`` is (B, H, W, 3) float32, ``class_indices`` a (B,) int array, one class per image, and
``layer_name`` the feature-map layer. The checker runs the student's function on the bundled ``shapes`` model at
``last_conv`` and at ``conv3`` (where the gradient is not constant over space, so CAM's weights would not do) and
on ``shapes-flat`` (no GAP), and compares with ``ct.grad_cam`` of the original softmax model, naming the likely
mistake.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from camtutor.exercises._framework import Exercise, Feedback

__all__ = ["grad_cam_tape", "logit_copy"]


def logit_copy(model):
    """A copy of ``model`` with the same weights whose last layer's activation is linear: it outputs logits."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.layers[-1].activation = keras.activations.linear
    return copy


@functools.lru_cache(maxsize=1)
def _cases():
    import camtutor as ct

    cases = []
    data = ct.data.shapes(6, seed=21)
    classes = np.array([0, 1, 2, 2, 1, 0])
    for name, layers in (("shapes", ("last_conv", "conv3")), ("shapes-flat", ("last_conv",))):
        model = ct.models.load(name)
        copy = logit_copy(model)
        for layer in layers:
            expected = ct.grad_cam(model, data.images, classes, layer=layer)
            raw = ct.grad_cam(model, data.images, classes, layer=layer, relu=False)
            hires = ct.grad_cam(model, data.images, classes, layer=layer, weighting="elementwise")
            cases.append((f"{name} at {layer}", copy, data.images, classes, layer, expected, raw, hires))
    return tuple(cases)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(float(np.abs(b).max()), 1e-12)
    return a.shape == b.shape and bool(np.allclose(a / scale, b / scale, atol=2e-4))


def _check(function: Callable) -> None:
    if not callable(function):
        raise Feedback("pass your function itself, e.g. check(my_grad_cam_tape), without calling it.")
    for where, copy, images, classes, layer, expected, raw, hires in _cases():
        result = function(copy, images.copy(), classes.copy(), layer)
        if result is None:
            raise Feedback("your function returned None: nothing to check yet. Replace `return None` with your code, "
                           "which returns the (B, h, w) maps.")
        got = np.asarray(result, dtype=np.float64)
        if got.shape != expected.shape:
            hint = ""
            if got.ndim == 4:
                hint = " You returned 4-D maps: sum the weighted activations over the channel axis (the last one)."
            raise Feedback(f"on {where}: expected shape {expected.shape} (B, h, w), got {got.shape}.{hint}")
        if _close(got, expected):
            continue
        if _close(got, raw):
            raise Feedback(f"on {where}: your map has negative values; apply the ReLU to the weighted sum.")
        if _close(got, hires):
            raise Feedback(f"on {where}: you multiplied gradients and activations cell by cell (HiResCAM). Grad-CAM "
                           "first averages each channel's gradient over space into one weight.")
        peak = expected.max(axis=(1, 2), keepdims=True)
        if np.all(peak > 0) and _close(got, expected / peak):
            raise Feedback(f"on {where}: return the raw map, not normalised.")
        if _close(got, expected * expected.shape[1] * expected.shape[2]):
            raise Feedback(f"on {where}: the map is h*w times too large; the weights are the MEAN of the gradients.")
        raise Feedback(f"on {where}: the maps differ from ct.grad_cam. Check that you differentiate each image's own "
                       "class logit (not the sum of all logits, not class 0 for every image) with respect to the "
                       "layer's activations, and that the layer is the one named.")


grad_cam_tape = Exercise(
    "Grad-CAM from a GradientTape",
    _check,
    hints=[
        "Four steps, in order: capture the layer's activations together with the logits; pick one logit per image; "
        "differentiate; turn gradients and activations into a map. Which of them must run inside the tape?",
        "`keras.Model(logit_model.input, [logit_model.get_layer(layer_name).output, logit_model.output])` returns "
        "both tensors from one forward pass. Notebook 03's one-hot mask (or `ct.class_score`) picks each image's logit.",
        "`tape.gradient(target, activations)` has the activations' shape (B, h, w, K). Notebook 04 turned such a "
        "gradient into one weight per image and channel, and notebook 05's first exercise turned weights and "
        "activations into a map: over which axes does each step reduce, and where does the ReLU go?",
    ],
    solution="tape.my_grad_cam_tape",
    success="You have written Grad-CAM: the same maps as ct.grad_cam, at any layer, on a model with or without GAP.",
)
