"""Find the parts of a Keras model that CAM needs: feature-map layers, the output activation, the GAP -> Dense head.

These functions read a model; they never change it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterator

import keras
import numpy as np

from camtutor.errors import LayerError, ModelError

_SQUASHING = ("softmax", "sigmoid")


def check_model(model: object) -> keras.Model:
    """Return ``model`` if camtutor can explain it: one image input (B, H, W, C), one output (B, C).

    Raises :class:`ModelError` naming what is supported otherwise.
    """
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"expected a keras.Model, got {type(model).__name__}; load a saved model with "
            "keras.saving.load_model(path) or camtutor.models.load(name)"
        )
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ModelError(
            f"model {model.name!r} is not built, so its layers have no shapes; give it an input, e.g. "
            "keras.Sequential([keras.Input((64, 64, 3)), ...]), or call it once on a batch"
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"model {model.name!r} has {len(inputs)} inputs and {len(outputs)} outputs; camtutor explains "
            "classifiers with one image input (B, H, W, C) and one output (B, num_classes)"
        )
    if len(inputs[0].shape) != 4 or len(outputs[0].shape) != 2:
        raise ModelError(
            f"model {model.name!r} maps {tuple(inputs[0].shape)} to {tuple(outputs[0].shape)}; camtutor explains "
            "image classifiers that map (B, H, W, C) images to (B, num_classes) scores"
        )
    return model


def _leaf_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """All layers in order, descending into nested models (the containers themselves are skipped)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer


def _output_shape(layer: keras.layers.Layer) -> tuple | None:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError, RuntimeError):
        return None


def conv_layers(model: keras.Model) -> list[str]:
    """Names of the layers whose output is a 4-D (B, H, W, K) feature map, from input to output.

    Layers inside nested models (a keras.applications backbone, say) are listed by their own names.
    """
    check_model(model)
    return [layer.name for layer in _leaf_layers(model) if (shape := _output_shape(layer)) and len(shape) == 4]


def find_layer(model: keras.Model, name: str) -> keras.layers.Layer:
    """The feature-map layer called ``name``, searched in nested models too.

    Raises :class:`LayerError` with the candidates when the name is unknown or
    the layer's output is not a 4-D feature map.
    """
    candidates = conv_layers(model)
    if not isinstance(name, str):
        raise LayerError(f"layer must be a layer name (str), got {type(name).__name__}; choose one of {candidates}")
    for layer in _leaf_layers(model):
        if layer.name == name:
            shape = _output_shape(layer)
            if shape is None or len(shape) != 4:
                raise LayerError(
                    f"layer {name!r} outputs shape {shape}, not a (B, H, W, K) feature map; "
                    f"choose one of camtutor.conv_layers(model): {candidates}"
                )
            return layer
    close = difflib.get_close_matches(name, candidates, n=3)
    hint = f" Did you mean {close}?" if close else ""
    raise LayerError(f"model {model.name!r} has no layer {name!r}.{hint} Feature-map layers: {candidates}")


def default_layer(model: keras.Model) -> keras.layers.Layer:
    """The last feature-map layer, Grad-CAM's usual choice."""
    candidates = conv_layers(model)
    if not candidates:
        raise LayerError(f"model {model.name!r} has no layer with a 4-D (B, H, W, K) output; CAM needs a conv net")
    return find_layer(model, candidates[-1])


def _producer(tensor) -> keras.layers.Layer:
    return tensor._keras_history.operation


def _innermost_producer(tensor) -> keras.layers.Layer:
    """The leaf layer that computes ``tensor``, looking inside nested models."""
    layer = _producer(tensor)
    while isinstance(layer, keras.Model):
        layer = _producer(layer.outputs[0])
    return layer


@dataclass(frozen=True)
class OutputInfo:
    """How a model's output relates to class scores.

    ``activation`` is "softmax", "sigmoid" or "linear" (logits). ``layer`` is
    the layer that applies it (None for "linear"). ``num_classes`` counts a
    single sigmoid unit as two classes (0 = negative, 1 = positive).
    """

    activation: str
    layer: keras.layers.Layer | None
    num_units: int
    num_classes: int

    @property
    def binary(self) -> bool:
        return self.activation == "sigmoid" and self.num_units == 1


def _activation_name(layer: keras.layers.Layer) -> str:
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    try:
        name = keras.activations.serialize(activation)
    except (ValueError, TypeError):
        name = getattr(activation, "__name__", "")
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name", ""))
    return name if name in _SQUASHING else "linear"


def output_info(model: keras.Model) -> OutputInfo:
    """Read the model's final activation (softmax, sigmoid, or none) and its number of classes."""
    check_model(model)
    last = _innermost_producer(model.outputs[0])
    activation = _activation_name(last)
    units = int(model.outputs[0].shape[-1])
    classes = 2 if (activation == "sigmoid" and units == 1) else units
    return OutputInfo(activation, last if activation in _SQUASHING else None, units, classes)


@dataclass(frozen=True)
class GapHead:
    """The GlobalAveragePooling2D -> Dense head that CAM reads its weights from.

    ``feature_layer`` is the leaf layer whose (B, H, W, K) output feeds the
    pooling. ``binary`` is True for a single sigmoid unit.
    """

    pooling: keras.layers.Layer
    dense: keras.layers.Layer
    feature_layer: keras.layers.Layer
    binary: bool = False

    @property
    def kernel(self) -> np.ndarray:
        """The Dense kernel as (K, C) numpy, read now (so training or set_weights is seen).

        A single sigmoid unit is expanded to two columns (-w, w): class 0 and class 1.
        """
        kernel = np.asarray(self.dense.kernel.numpy(), dtype=np.float32)
        return np.concatenate([-kernel, kernel], axis=1) if self.binary else kernel


_PASS_THROUGH = (keras.layers.Dropout, keras.layers.Activation, keras.layers.Softmax, keras.layers.Identity)


def gap_dense_head(model: keras.Model) -> GapHead:
    """Find the GAP -> Dense head at the end of ``model``, or raise :class:`ModelError` suggesting Grad-CAM.

    Dropout and a separate softmax/sigmoid activation layer may stand between
    them; anything else (Flatten, a hidden Dense) makes CAM undefined.
    """
    info = output_info(model)
    chain = []
    layer = _innermost_producer(model.outputs[0])
    while isinstance(layer, _PASS_THROUGH):
        chain.append(layer)
        layer = _innermost_producer(layer.input)
    dense = layer
    pooling = _innermost_producer(dense.input) if isinstance(dense, keras.layers.Dense) else None
    while pooling is not None and isinstance(pooling, _PASS_THROUGH):
        pooling = _innermost_producer(pooling.input)
    ok = (
        isinstance(dense, keras.layers.Dense)
        and isinstance(pooling, keras.layers.GlobalAveragePooling2D)
        and not getattr(pooling, "keepdims", False)
    )
    if not ok:
        found = " -> ".join(type(x).__name__ for x in [pooling, dense, *reversed(chain)] if x is not None)
        raise ModelError(
            f"CAM needs a model that ends with GlobalAveragePooling2D -> Dense; model {model.name!r} ends with "
            f"{found}. Use camtutor.grad_cam(model, images, class_index), which works on any conv net"
        )
    return GapHead(pooling, dense, _innermost_producer(pooling.input), info.binary)
