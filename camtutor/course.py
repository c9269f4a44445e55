"""Helpers the course notebooks share: maps on one colour scale, and the receptive field of a layer.

Only the public Keras API and numpy/matplotlib are used, so these helpers do not depend on camtutor's
pipeline. The two receptive-field functions answer the same question two ways: by arithmetic on the layer
configurations (:func:`receptive_field`) and by measurement with gradients (:func:`measured_receptive_field`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from camtutor.errors import CamTutorError

__all__ = [
    "receptive_field",
    "measured_receptive_field",
    "show_shared_scale",
    "squares_and_triangles",
    "plant_mark",
    "train_small_gap",
]


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def receptive_field(model, layer: str) -> tuple[int, int]:
    """``(size, stride)`` in input pixels of one cell of ``layer``'s output, by arithmetic (rows axis).

    Walks the layers of a plain chain (Sequential or a Functional model without branches) from the
    input to ``layer``. Each Conv2D / pooling layer with kernel ``k``, stride ``s`` and dilation ``d``
    grows the field by ``(k - 1) * d * jump`` and multiplies the jump (distance in pixels between two
    neighbouring cells) by ``s``: ``size_out = size_in + (k - 1) d j_in``, ``j_out = j_in s``.
    Layers without a kernel (activations, batch norm, ...) change neither. Raises :class:`camtutor.CamTutorError` (a ``ValueError``) when
    the layer is not found or a layer type is unknown (a global pooling, a Dense...).
    """
    size, jump = 1, 1
    names = [item.name for item in model.layers]
    if layer not in names:
        raise CamTutorError(f"no layer {layer!r} in model {model.name!r}; layers: {names}")
    for item in model.layers:
        config = item.get_config()
        if "kernel_size" in config or "pool_size" in config:
            kernel = _pair(config.get("kernel_size", config.get("pool_size")))[0]
            stride = _pair(config.get("strides") or config.get("pool_size"))[0]
            dilation = _pair(config.get("dilation_rate", 1))[0]
            size += (kernel - 1) * dilation * jump
            jump *= stride
        elif "Global" in type(item).__name__ or type(item).__name__ in ("Dense", "Flatten"):
            raise CamTutorError(f"layer {item.name!r} ({type(item).__name__}) comes before {layer!r}: not a plain conv chain")
        if item.name == layer:
            break
    return size, jump


def measured_receptive_field(model, layer: str, images: np.ndarray) -> int:
    """The side, in pixels, of the input window that one central cell of ``layer`` depends on, measured.

    Differentiates the sum over channels of the cell at the centre of ``layer``'s (B, h, w, K) output
    with respect to the input images (B, H, W, C) and returns the largest side of the bounding box of
    the pixels whose gradient is non-zero on at least one image. A ReLU that is off can hide part of the
    window on one image, so pass several images; the result is at most :func:`receptive_field`'s size,
    and equal to it when enough units are active.
    """
    import keras
    import tensorflow as tf

    probe = keras.Model(model.input, model.get_layer(layer).output)
    x = tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = probe(x)
        h, w = int(out.shape[1]), int(out.shape[2])
        cell = tf.reduce_sum(out[:, h // 2, w // 2, :])
    grads = np.abs(tape.gradient(cell, x).numpy()).sum(axis=(0, 3))
    rows, cols = np.nonzero(grads > 0)
    if rows.size == 0:
        return 0
    return int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))


def show_shared_scale(
    images: Sequence[np.ndarray],
    maps: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 4,
    size: float = 2.2,
    signed: bool = False,
    vmax: float | None = None,
    alpha: float = 0.5,
    label: str = "map value (shared scale)",
    suptitle: str | None = None,
):
    """Overlays of raw maps that all share ONE colour scale, with one colour bar. Returns the Figure.

    ``images``: N pictures (H, W, 3) in [0, 1]; ``maps``: N raw 2-D maps (h, w), any resolution, upsampled
    bilinearly to their image. Unlike ``ct.overlay`` (which normalises each map to its own [min, max]),
    the colours here mean the same number in every panel: ``jet`` from 0 to ``vmax`` (negative values
    are clipped to 0) or, with ``signed=True``, ``RdBu_r`` from ``-vmax`` (blue, against) to ``+vmax``
    (red, for). ``vmax`` defaults to the largest ``|value|`` over all maps (1.0 if every map is 0).
    """
    import matplotlib.pyplot as plt
    import cv2

    images = [np.asarray(image, dtype=np.float32) for image in images]
    maps = [np.asarray(heat, dtype=np.float32) for heat in maps]
    if len(images) != len(maps):
        raise CamTutorError(f"got {len(images)} images but {len(maps)} maps; pass one map per image")
    if any(heat.ndim != 2 for heat in maps):
        raise CamTutorError("every map must be 2-D (h, w); pick one map per panel, e.g. maps[0]")
    if vmax is None:
        vmax = max((float(np.abs(heat).max()) for heat in maps), default=0.0) or 1.0
    n = len(maps)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 0.9, size * nrows + 0.35), squeeze=False)
    shown = None
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= n:
            continue
        image, heat = images[index], maps[index]
        big = cv2.resize(heat, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        ax.imshow(image.mean(axis=-1) if image.ndim == 3 else image, cmap="gray", vmin=0.0, vmax=1.0)
        if signed:
            shown = ax.imshow(big, cmap="RdBu_r", vmin=-vmax, vmax=vmax, alpha=alpha)
        else:
            shown = ax.imshow(np.maximum(big, 0.0), cmap="jet", vmin=0.0, vmax=vmax, alpha=alpha)
        if titles is not None and index < len(titles):
            ax.set_title(titles[index], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 0.7 / (size * ncols + 0.9), 1))
    bar = fig.add_axes((1 - 0.55 / (size * ncols + 0.9), 0.12, 0.012, 0.72))
    fig.colorbar(shown, cax=bar).set_label(label, fontsize=8)
    bar.tick_params(labelsize=7)
    return fig


# --------------------------------------------------------------------------- the shortcut lab's recipe
#: where :func:`plant_mark` puts its 5x5 checkerboard: rows and columns 1..5 of the image
MARK = (slice(1, 6), slice(1, 6))


def squares_and_triangles(n: int, seed: int, *, size: int = 32):
    """Notebook 08's easy two-class data: ``(images, labels, masks)``.

    ``ct.data.shapes(n, size=size, seed=seed, contrast="bright", clutter=0)`` with the circles dropped:
    images (m, size, size, 3) float32 in [0, 1] (m is about 2n/3), labels (m,) int64 with 0 = square and
    1 = triangle, masks (m, size, size) bool (the object's pixels).
    """
    from camtutor import data

    shapes = data.shapes(n, size=size, seed=seed, contrast="bright", clutter=0)
    keep = shapes.labels != 0                                      # drop the circles (label 0)
    return shapes.images[keep], (shapes.labels[keep] == 2).astype("int64"), shapes.masks[keep]


def plant_mark(images: np.ndarray, where) -> np.ndarray:
    """A copy of ``images`` (B, H, W, C) with a black-and-white 5x5 checkerboard on pixels [1:6, 1:6] of
    ``images[where]`` (``where``: a bool mask or indices over B). The watermark of notebook 08."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or min(images.shape[1:3]) < 6:
        raise CamTutorError(f"images must be (B, H, W, C) with H, W >= 6; got shape {images.shape}")
    checker = (np.indices((5, 5)).sum(axis=0) % 2).astype(np.float32)
    out = images.copy()
    out[where, MARK[0], MARK[1], :] = checker[None, :, :, None]
    return out


def train_small_gap(images: np.ndarray, labels: np.ndarray, *, epochs: int = 12, seed: int = 0):
    """Notebook 08's small GAP classifier, trained from scratch: a Keras model, seeded.

    Three 3x3 conv layers (16, 32, 32 channels; ``conv1``, ``conv2``, ``last_conv``), a BatchNormalization
    (momentum 0.9) and a 2x2 max-pooling after each of the first two, then GAP and a softmax Dense layer with
    one unit per class. Adam (3e-3), batch 32, sparse cross-entropy. ``images`` (N, S, S, C) in [0, 1],
    ``labels`` (N,) ints from 0. ``keras.utils.set_random_seed(seed)`` runs first; call
    ``tf.config.experimental.enable_op_determinism()`` once beforehand for a repeatable result.
    """
    import keras

    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels)
    if images.ndim != 4 or len(images) != len(labels) or len(images) == 0:
        raise CamTutorError(f"need images (N, S, S, C) and labels (N,), N > 0; got {images.shape} and "
                         f"{labels.shape}")
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input(images.shape[1:])
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(name="pool1")(layers.BatchNormalization(momentum=0.9, name="bn1")(x))
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool2")(layers.BatchNormalization(momentum=0.9, name="bn2")(x))
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="last_conv")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(int(labels.max()) + 1, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(images, labels, batch_size=32, epochs=epochs, verbose=0)
    return model
