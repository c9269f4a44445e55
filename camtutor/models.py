"""Small Keras models for the lessons, and the bundled pre-trained weights.

All models take RGB float32 images in [0, 1] shaped (B, H, W, 3) -- exactly what
:mod:`camtutor.data` produces -- and output class probabilities (B, K) from a softmax.
There is no preprocessing layer to remember.

Bundled models (``load(name)``; re-create them with ``python -m camtutor.train NAME``):

* ``"shapes"``: :func:`gap_classifier` on :func:`camtutor.data.shapes` (CAM and Grad-CAM work);
* ``"shapes-flat"``: :func:`flat_classifier` on shapes (Flatten head: CAM impossible, Grad-CAM works);
* ``"shapes-random-labels"``: :func:`gap_classifier` trained to memorise 200 shapes images with *shuffled*
  labels (Adebayo et al. 2018's label randomisation test): it fits them, and is at chance on fresh images;
* ``"shapes-200"``: its same-data control, :func:`gap_classifier` trained the same way on the same 200 images
  with their *true* labels;
* ``"faces"``: a frozen :func:`small_backbone` (a *nested* model) plus a GAP -> Dense head from
  :func:`gap_head_on`, trained on :func:`camtutor.data.faces` -- the original CAM recipe.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from camtutor.data import FACE_CLASSES, SHAPE_CLASSES
from camtutor.errors import ModelError

__all__ = [
    "BUNDLED",
    "WEIGHTS_DIR",
    "available",
    "class_names",
    "load",
    "weights_path",
    "build",
    "gap_classifier",
    "flat_classifier",
    "small_backbone",
    "gap_head_on",
]

#: Folder holding the bundled ``NAME.weights.h5`` files.
WEIGHTS_DIR: Path = Path(__file__).resolve().parent / "weights"

#: Bundled model name -> one-line description.
BUNDLED: dict[str, str] = {
    "shapes": "GAP classifier (circle / square / triangle), 64x64 RGB input, last_conv 16x16x32; CAM + Grad-CAM",
    "shapes-flat": "Flatten classifier (circle / square / triangle), 64x64 RGB input, last_conv 8x8x8; Grad-CAM only",
    "shapes-random-labels": "the shapes GAP classifier trained on shuffled labels (memorised, chance on new images); "
    "sanity check",
    "shapes-200": "the shapes GAP classifier trained like shapes-random-labels on the same 200 images, true "
    "labels; the label randomisation test's same-data control",
    "faces": "frozen nested conv backbone + GAP -> Dense head, face / not face, 64x64 RGB input; CAM + Grad-CAM; "
    "a teaching model from 25-px grey LFW crops: it calls many non-face photos 'face'",
}

_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "shapes": SHAPE_CLASSES,
    "shapes-flat": SHAPE_CLASSES,
    "shapes-random-labels": SHAPE_CLASSES,
    "shapes-200": SHAPE_CLASSES,
    "faces": FACE_CLASSES,
}


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in BUNDLED:
        raise ModelError(
            f"unknown bundled model {name!r}; available: {', '.join(repr(n) for n in BUNDLED)}."
        )
    return name


def available() -> list[str]:
    """Names of the bundled models, e.g. ``["shapes", "shapes-flat", "shapes-random-labels", "shapes-200", "faces"]``."""
    return list(BUNDLED)


def class_names(name: str) -> tuple[str, ...]:
    """Class names of a bundled model, in output order (index i of the softmax is name i)."""
    return _CLASS_NAMES[_check_name(name)]


def weights_path(name: str) -> Path:
    """Path of the bundled ``NAME.weights.h5`` file (weights only; the architecture is built by code)."""
    return WEIGHTS_DIR / f"{_check_name(name)}.weights.h5"


def build(name: str) -> keras.Model:
    """The untrained architecture of a bundled model (what :func:`load` fills with the bundled weights)."""
    builders = {
        "shapes": lambda: gap_classifier(len(SHAPE_CLASSES)),
        "shapes-flat": lambda: flat_classifier(len(SHAPE_CLASSES)),
        "shapes-random-labels": lambda: gap_classifier(len(SHAPE_CLASSES)),
        "shapes-200": lambda: gap_classifier(len(SHAPE_CLASSES)),
        "faces": lambda: gap_head_on(small_backbone(), len(FACE_CLASSES), freeze=True, name="faces_cam"),
    }
    return builders[_check_name(name)]()


def load(name: str) -> keras.Model:
    """Load a bundled, trained model. Each call returns a *fresh* model (safe to modify).

    Args:
        name: one of :func:`available`.

    Returns:
        An uncompiled ``keras.Model``: input (B, 64, 64, 3) float32 RGB in [0, 1],
        output (B, K) softmax probabilities over :func:`class_names` ``(name)``.

    Raises:
        camtutor.errors.ModelError: unknown name, or the weight file is missing
            (re-create it with ``python -m camtutor.train NAME``).
    """
    path = weights_path(name)
    if not path.is_file():
        raise ModelError(
            f"the bundled weights for {name!r} are missing ({path}); "
            f"re-create them with: python -m camtutor.train {name}"
        )
    # Weights only, into an architecture built by code: loads with every Keras 3 release (a saved
    # .keras config carries version-specific fields), and nothing is deserialised from the file.
    model = build(name)
    model.load_weights(path)
    return model


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def _conv(x, filters: int, name: str):
    return layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)


def _conv_stack(x, width: int):
    """conv1 (S) -> pool1 -> conv2 (S/2) -> pool2 -> conv3 (S/4) -> last_conv (S/4)."""
    x = _conv(x, width, "conv1")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = _conv(x, 2 * width, "conv2")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = _conv(x, 2 * width, "conv3")
    x = _conv(x, 2 * width, "last_conv")
    return x


def _check_input_shape(input_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] not in (1, 3):
        raise ModelError(f"input_shape must be (height, width, channels) with 1 or 3 channels, got {input_shape!r}.")
    return shape  # type: ignore[return-value]


def gap_classifier(
    num_classes: int = 3, *, input_shape: tuple[int, int, int] = (64, 64, 3), width: int = 16
) -> keras.Model:
    """A small CAM-ready classifier: conv blocks -> ``last_conv`` -> GAP -> Dense(softmax).

    Layers (for the default 64x64x3 input, width=16; about 24k parameters)::

        input         (B, 64, 64, 3)   RGB in [0, 1]
        conv1         (B, 64, 64, 16)  3x3 conv + ReLU
        pool1         (B, 32, 32, 16)  2x2 max-pool
        conv2         (B, 32, 32, 32)
        pool2         (B, 16, 16, 32)
        conv3         (B, 16, 16, 32)
        last_conv     (B, 16, 16, 32)  ReLU feature maps A_k used by CAM / Grad-CAM
        gap           (B, 32)          global average pooling
        predictions   (B, K)           Dense + softmax

    No BatchNorm, so ``CAM_c = sum_k w_kc A_k`` is exactly what the head computes before pooling.
    Returned uncompiled.
    """
    input_shape = _check_input_shape(input_shape)
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_stack(inputs, width)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="gap_classifier")


def flat_classifier(num_classes: int = 3, *, input_shape: tuple[int, int, int] = (64, 64, 3)) -> keras.Model:
    """A classifier *without* GAP: conv blocks -> Flatten -> Dense(softmax). CAM is impossible.

    Layers (64x64x3 input; about 18k parameters)::

        input         (B, 64, 64, 3)
        conv1         (B, 64, 64, 16)
        pool1         (B, 32, 32, 16)
        conv2         (B, 32, 32, 32)
        pool2         (B, 16, 16, 32)
        conv3         (B, 16, 16, 32)
        pool3         (B, 8, 8, 32)
        last_conv     (B, 8, 8, 8)     ReLU; Grad-CAM's target layer
        flatten       (B, 512)
        predictions   (B, K)           Dense + softmax

    Returned uncompiled.
    """
    input_shape = _check_input_shape(input_shape)
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv(inputs, 16, "conv1")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = _conv(x, 32, "conv2")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = _conv(x, 32, "conv3")
    x = layers.MaxPooling2D(2, name="pool3")(x)
    x = _conv(x, 8, "last_conv")
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="flat_classifier")


def small_backbone(
    input_shape: tuple[int, int, int] = (64, 64, 3), *, width: int = 16, name: str = "backbone"
) -> keras.Model:
    """A conv feature extractor: (B, 64, 64, 3) -> (B, 16, 16, 2*width) ReLU feature maps.

    Same layers as :func:`gap_classifier` up to ``last_conv`` (conv1, pool1, conv2, pool2,
    conv3, last_conv), as a standalone Functional model, to be trained with some head and
    then frozen and reused with :func:`gap_head_on`.
    """
    input_shape = _check_input_shape(input_shape)
    inputs = keras.Input(shape=input_shape, name="image")
    return keras.Model(inputs, _conv_stack(inputs, width), name=name)


def gap_head_on(
    backbone: keras.Model, num_classes: int, *, freeze: bool = True, name: str | None = None
) -> keras.Model:
    """The original CAM conversion: backbone -> GlobalAveragePooling2D -> Dense(softmax).

    The backbone stays a *nested* model inside the result (its feature map is the CAM layer).
    With ``freeze=True`` it is made non-trainable, so training the result only fits the head
    (``gap`` has no weights; ``predictions`` has (C*K + K) weights).

    Args:
        backbone: a ``keras.Model`` with one input and one 4-D output (B, h, w, C).
        num_classes: K, the number of classes.
        freeze: set ``backbone.trainable = False``.
        name: name of the new model (default ``"<backbone>_gap"``).

    Returns:
        An uncompiled Functional model (B, H, W, 3) -> (B, K).
    """
    if not isinstance(backbone, keras.Model):
        raise ModelError(f"backbone must be a keras.Model, got {type(backbone).__name__}.")
    if len(backbone.inputs) != 1 or len(backbone.outputs) != 1:
        raise ModelError("backbone must have exactly one input and one output.")
    if len(backbone.outputs[0].shape) != 4:
        raise ModelError(
            f"backbone output must be a 4-D feature map (B, h, w, C), got shape {tuple(backbone.outputs[0].shape)}; "
            "cut the model at its last conv layer first."
        )
    if freeze:
        backbone.trainable = False
    inputs = keras.Input(shape=tuple(backbone.inputs[0].shape[1:]), name="image")
    x = backbone(inputs, training=False) if freeze else backbone(inputs)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name or f"{backbone.name}_gap")
