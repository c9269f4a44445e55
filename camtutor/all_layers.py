"""Every layer at once: feature maps and every class's gradient at many layers from one compiled call.

:func:`layer_pass` runs one forward pass that captures all the given layers and one backward pass per class
(:meth:`camtutor.compiled._Explainer.layers_function`); its :class:`LayerPass` turns them into any one-pass
method's maps at any of those layers without running the model again. The explorer
(:class:`camtutor.widgets.Explorer`) uses it so that every layer of every one-pass method is ready after one
computation. The Jacobians are bounded by :data:`LAYER_PASS_VALUES`.
"""

from __future__ import annotations

import keras
import numpy as np

from camtutor import calls, method_impl
from camtutor import methods as _methods
from camtutor.compiled import _Explainer
from camtutor.errors import CamTutorError, LayerError
from camtutor.layers import layer_name

__all__ = ["LAYER_PASS_VALUES", "LayerPass", "layer_pass"]

#: The largest all-layer Jacobian :func:`layer_pass` computes, in float32 values (images x classes x the sum
#: over layers of h*w*K): 2**25 values are 128 MB; 16 images of the bundled shapes model need 6.7 million.
LAYER_PASS_VALUES = 2**25


class LayerPass:
    """One forward pass and one backward pass per class at every layer of ``layers`` (:func:`layer_pass`).

    ``activations[name]`` (B, h, w, K) and ``jacobians[name]`` (B, C, h, w, K) are numpy float32,
    ``probabilities`` (B, C). :meth:`maps` turns them into any one-pass method's maps at any of the layers
    without running the model again.
    """

    def __init__(self, ex: _Explainer, activations: dict, jacobians: dict, probabilities: np.ndarray) -> None:
        self._explainer = ex
        self.activations, self.jacobians, self.probabilities = activations, jacobians, probabilities

    def maps(self, layer: str, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Raw maps (B, C, h, w) of every class, without ReLU, and probabilities (B, C): the numbers of
        :func:`camtutor.explain.heatmap_all_classes` for a "weighting" or "forward" method (not Score-CAM,
        Ablation-CAM or Guided Grad-CAM: they need more passes)."""
        entry = _methods.get(method)
        if layer not in self.activations:
            raise LayerError(f"layer {layer!r} is not in this pass; it has {list(self.activations)}")
        head = None
        if entry.gap_layer:
            ex = self._explainer
            head = ex.gap_head()
            if ex.layer(layer) is not head.feature_layer:
                raise LayerError(f"{entry.label} is defined only at {layer_name(ex.model, head.feature_layer)!r}, "
                                 f"not at {layer!r}")
        forward = method_impl.ForwardPass(self.activations[layer], None, self._explainer.info.num_classes, head,
                                          gradients=self.jacobians[layer] if entry.gradients else None)
        maps = method_impl.maps_from_pass(entry, forward)
        return np.asarray(maps, np.float32), self.probabilities


def layer_pass(model: keras.Model, images: np.ndarray, layers, *, score: str = "logit") -> LayerPass:
    """Feature maps and every class's gradient at every one of ``layers`` (names) in one compiled call.

    One forward pass captures all the layers, then one backward pass per class gives ``dy^c/dA`` at all
    of them (:meth:`camtutor.compiled._Explainer.layers_function`, traced once per model, layers and score).
    The explorer uses it so that every layer of every one-pass method is ready after one computation.

    Raises:
        camtutor.CamTutorError: the Jacobians would exceed :data:`LAYER_PASS_VALUES` values (too many
            images, classes or positions: use :func:`camtutor.explain.heatmap_all_classes` one layer at a
            time), or a layer's output size is unknown; LayerError for a layer used more than once.
    """
    ex, images = calls.prepare(model, images, score)
    found = tuple(calls.layer_of(model, name) for name in layers)
    shapes = [tuple(layer.output.shape[1:]) for layer in found]
    if any(None in shape for shape in shapes):
        raise CamTutorError("a layer's output size is unknown (a model of any input size): use "
                            "heatmap_all_classes one layer at a time")
    values = len(images) * ex.info.num_classes * sum(int(np.prod(shape)) for shape in shapes)
    if values > LAYER_PASS_VALUES:
        raise CamTutorError(
            f"the Jacobians of {len(images)} images x {ex.info.num_classes} classes at {len(found)} layers would "
            f"hold {values:,} values (limit {LAYER_PASS_VALUES:,}): use heatmap_all_classes one layer at a time")
    activations, jacobians, probabilities = calls.run_finite(ex.layers_function(found, score), images, None)
    names = list(layers)
    return LayerPass(ex, {n: a.numpy() for n, a in zip(names, activations)},
                     {n: j.numpy() for n, j in zip(names, jacobians)}, probabilities.numpy())
