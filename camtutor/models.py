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
  :func:`gap_head_on`, trained on :func:`camtutor.data.faces` -- the original CAM recipe;
* ``"shapes-vit"``: :func:`vit_classifier`, a small Vision Transformer (8-px patches, no class token,
  pre-norm blocks of self-attention within a 3x3 window of patches, a head on the tokens' channel-wise
  maximum) on shapes.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

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
    "vit_classifier",
    "ClassToken",
    "PositionEmbedding",
    "ImageCentring",
    "LocalAttentionMask",
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
    "shapes-vit": "small Vision Transformer (circle / square / triangle), 64x64 RGB input, 8-px patches: "
    "an 8x8 grid of 64 tokens (no class token), 2 blocks of 3x3-window self-attention, head on the tokens' "
    "channel maximum; Grad-CAM on token layers (default final_norm)",
}

_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "shapes": SHAPE_CLASSES,
    "shapes-flat": SHAPE_CLASSES,
    "shapes-random-labels": SHAPE_CLASSES,
    "shapes-200": SHAPE_CLASSES,
    "faces": FACE_CLASSES,
    "shapes-vit": SHAPE_CLASSES,
}


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in BUNDLED:
        raise ModelError(
            f"unknown bundled model {name!r}; available: {', '.join(repr(n) for n in BUNDLED)}."
        )
    return name


def available() -> list[str]:
    """Names of the bundled models, e.g. ``["shapes", "shapes-flat", "shapes-random-labels", "shapes-200", "faces",
    "shapes-vit"]``."""
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
        "shapes-vit": lambda: vit_classifier(len(SHAPE_CLASSES), magnitude=True, kernel=16, head="max", window=1),
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


# --------------------------------------------------------------------------------------------
# A small Vision Transformer
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="camtutor")
class ImageCentring(layers.Layer):
    """Subtract each image's mean colour: (B, H, W, C) -> (B, H, W, C), ``x - mean_(H, W) x`` per channel.

    No weights. The shapes data put objects brighter *or* darker than a background of random hue; with the
    background's colour removed, a patch embedding sees the object as a deviation from 0, and the small
    ViT learns in a few epochs where it stays near chance without it.
    """

    def __init__(self, magnitude: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.magnitude = bool(magnitude)

    def call(self, images):
        centred = images - ops.mean(images, axis=(1, 2), keepdims=True)
        return ops.concatenate([centred, ops.abs(centred)], axis=-1) if self.magnitude else centred

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2 * input_shape[-1] if self.magnitude else input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "magnitude": self.magnitude}


@keras.saving.register_keras_serializable(package="camtutor")
class ClassToken(layers.Layer):
    """Prepend one learned token to a sequence: (B, T, D) -> (B, 1 + T, D).

    The token (initialised to zeros, as in Dosovitskiy et al. 2021) is the same for every image; the
    head of :func:`vit_classifier` reads the class token's final state only.
    """

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, int(input_shape[-1])), initializer="zeros", name="token")

    def call(self, tokens):
        batch = ops.shape(tokens)[0]
        token = ops.broadcast_to(ops.cast(self.token, tokens.dtype), (batch, 1, ops.shape(tokens)[-1]))
        return ops.concatenate([token, tokens], axis=1)

    def compute_output_shape(self, input_shape):
        steps = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], steps, input_shape[2])


@keras.saving.register_keras_serializable(package="camtutor")
class PositionEmbedding(layers.Layer):
    """Add a learned position embedding (1, T, D) to tokens (B, T, D) (shape unchanged)."""

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=(1, int(input_shape[1]), int(input_shape[2])),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="embedding",
        )

    def call(self, tokens):
        return tokens + ops.cast(self.embedding, tokens.dtype)


@keras.saving.register_keras_serializable(package="camtutor")
class LocalAttentionMask(layers.Layer):
    """The attention mask of neighbourhood attention: tokens (B, T, D) -> a bool mask (B, T, T).

    ``mask[b, i, j]`` is True where token i may attend to token j: both are patches of the ``grid`` (rows, cols)
    at most ``radius`` patches apart in row and in column (a (2 radius + 1)^2 window), or either is one of
    the ``prefix`` leading non-spatial tokens (a class token sees and is seen by every token). No weights;
    passed as ``attention_mask`` to ``MultiHeadAttention``.
    """

    def __init__(self, grid: tuple[int, int], radius: int, prefix: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.grid, self.radius, self.prefix = (int(grid[0]), int(grid[1])), int(radius), int(prefix)
        rows, cols = np.divmod(np.arange(self.grid[0] * self.grid[1]), self.grid[1])
        near = (np.abs(rows[:, None] - rows[None]) <= self.radius) & (np.abs(cols[:, None] - cols[None]) <= self.radius)
        allowed = np.ones((self.prefix + near.shape[0],) * 2, bool)
        allowed[self.prefix:, self.prefix:] = near
        self._allowed = allowed

    def call(self, tokens):
        allowed = ops.convert_to_tensor(self._allowed)
        return ops.broadcast_to(allowed[None], (ops.shape(tokens)[0], *self._allowed.shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._allowed.shape)

    def compute_output_spec(self, tokens):
        return keras.KerasTensor(self.compute_output_shape(tokens.shape), dtype="bool")  # what call returns

    def get_config(self):
        return {**super().get_config(), "grid": self.grid, "radius": self.radius, "prefix": self.prefix}


def vit_classifier(
    num_classes: int = 3,
    *,
    input_shape: tuple[int, int, int] = (64, 64, 3),
    patch: int = 8,
    dim: int = 32,
    depth: int = 2,
    heads: int = 2,
    mlp: int = 64,
    centre: bool = True,
    magnitude: bool = False,
    kernel: int | None = None,
    head: str = "class",
    window: int | None = None,
) -> keras.Model:
    """A small Vision Transformer (Dosovitskiy et al. 2021) in plain Keras; the head reads the class token
    (``head="class"``, the default), the mean of the patch tokens (``"mean"``) or their per-channel maximum
    (``"max"``).

    Layers (64x64x3 input, 8-px patches, dim D=32, 2 heads, depth 2, ``head="class"``: an 8x8 grid,
    T = 1 + 64 tokens; about 25k parameters)::

        image          (B, 64, 64, 3)   RGB in [0, 1]
        centre         (B, 64, 64, 3)   ImageCentring: minus the image's mean colour (if ``centre``;
                                        6 channels with their magnitude if ``magnitude``)
        patch_embed    (B, 8, 8, D)     Conv2D(D, 8, strides=8): one D-vector per 8x8 patch (``kernel`` > 8:
                                        overlapping kernel x kernel windows, same 8x8 grid)
        patch_tokens   (B, 64, D)       Reshape: row-major over the grid (token i = row i // 8, col i % 8)
        class_token    (B, 65, D)       ClassToken: token 0 is the class token, tokens 1..64 the patches
        position       (B, 65, D)       PositionEmbedding (learned)
        attention_window (B, 65, 65)    LocalAttentionMask, only if ``window`` is set (see below)
        blockN_norm1   (B, 65, D)       LayerNormalization            } N = 1..depth, pre-norm:
        blockN_attention (B, 65, D)     MultiHeadAttention (self)     } x = x + attention(norm1(x))
        blockN_add     (B, 65, D)       Add                           }
        blockN_norm2   (B, 65, D)       LayerNormalization            } x = x + mlp(norm2(x))
        blockN_mlp1    (B, 65, mlp)     Dense + GELU                  }
        blockN_mlp2    (B, 65, D)       Dense                         }
        blockN_out     (B, 65, D)       Add: the block's output       }
        final_norm     (B, 65, D)       LayerNormalization
        class_state    (B, 1, D)        Cropping1D: the class token only
        class_vector   (B, D)           Reshape
        predictions    (B, K)           Dense + softmax

    ``head="class"``: the head reads the class token only, so the patch tokens after the last attention
    (``blockN_add``, ``blockN_norm2``, ``blockN_mlp*``, ``blockN_out`` of the last N, and ``final_norm``) do
    not reach the output: their gradient is exactly zero (the class-token pitfall). The last layer whose
    patch tokens reach it is the last block's ``norm1`` (the keys and values of the last attention).

    ``head="mean"`` / ``"max"``: no class token (T = 64); ``final_norm`` -> ``token_mean``
    (GlobalAveragePooling1D, then Grad-CAM at ``final_norm`` equals CAM) or ``token_max``
    (GlobalMaxPooling1D) (B, D) -> ``predictions``. Every token reaches the score at every layer.

    ``window``: None (default) is global self-attention; an int r restricts each patch token's attention to
    the patches at most r rows and r columns away (a (2r + 1)^2 neighbourhood, as in local-window ViTs);
    a class token still sees and is seen by every token. Returned uncompiled.
    """
    input_shape = _check_input_shape(input_shape)
    rows, cols = input_shape[0] // patch, input_shape[1] // patch
    if rows * patch != input_shape[0] or cols * patch != input_shape[1]:
        raise ModelError(f"input_shape {input_shape[:2]} is not a multiple of the patch size {patch}.")
    if dim % heads:
        raise ModelError(f"dim ({dim}) must be a multiple of heads ({heads}).")
    if head not in ("class", "mean", "max"):
        raise ModelError(f"head must be 'class' (read the class token) or 'mean' (average the patch tokens), "
                         f"got {head!r}.")
    inputs = keras.Input(shape=input_shape, name="image")
    x = ImageCentring(magnitude, name="centre")(inputs) if centre else inputs
    size = patch if kernel is None else int(kernel)  # > patch: overlapping patches, same grid ("same" padding)
    x = layers.Conv2D(dim, size, strides=patch, padding="valid" if size == patch else "same", name="patch_embed")(x)
    x = layers.Reshape((rows * cols, dim), name="patch_tokens")(x)
    if head == "class":
        x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="position")(x)
    mask = None if window is None else LocalAttentionMask(
        (rows, cols), window, prefix=int(head == "class"), name="attention_window")(x)
    for n in range(1, depth + 1):
        h = layers.LayerNormalization(epsilon=1e-6, name=f"block{n}_norm1")(x)
        h = layers.MultiHeadAttention(heads, dim // heads, name=f"block{n}_attention")(h, h, attention_mask=mask)
        x = layers.Add(name=f"block{n}_add")([x, h])
        h = layers.LayerNormalization(epsilon=1e-6, name=f"block{n}_norm2")(x)
        h = layers.Dense(mlp, activation="gelu", name=f"block{n}_mlp1")(h)
        h = layers.Dense(dim, name=f"block{n}_mlp2")(h)
        x = layers.Add(name=f"block{n}_out")([x, h])
    x = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    if head == "class":
        x = layers.Cropping1D((0, rows * cols), name="class_state")(x)
        x = layers.Reshape((dim,), name="class_vector")(x)
    elif head == "max":
        x = layers.GlobalMaxPooling1D(name="token_max")(x)
    else:
        x = layers.GlobalAveragePooling1D(name="token_mean")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="vit_classifier")
