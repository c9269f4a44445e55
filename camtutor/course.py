"""Helpers the course notebooks share: maps on one colour scale, and the receptive field of a layer.

Only the public Keras API and numpy/matplotlib are used, so these helpers do not depend on camtutor's
pipeline. The two receptive-field functions answer the same question two ways: by arithmetic on the layer
configurations (:func:`receptive_field`) and by measurement with gradients (:func:`measured_receptive_field`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["receptive_field", "measured_receptive_field", "show_shared_scale"]


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
    Layers without a kernel (activations, batch norm, ...) change neither. Raises ``ValueError`` when
    the layer is not found or a layer type is unknown (a global pooling, a Dense...).
    """
    size, jump = 1, 1
    names = [item.name for item in model.layers]
    if layer not in names:
        raise ValueError(f"no layer {layer!r} in model {model.name!r}; layers: {names}")
    for item in model.layers:
        config = item.get_config()
        if "kernel_size" in config or "pool_size" in config:
            kernel = _pair(config.get("kernel_size", config.get("pool_size")))[0]
            stride = _pair(config.get("strides") or config.get("pool_size"))[0]
            dilation = _pair(config.get("dilation_rate", 1))[0]
            size += (kernel - 1) * dilation * jump
            jump *= stride
        elif "Global" in type(item).__name__ or type(item).__name__ in ("Dense", "Flatten"):
            raise ValueError(f"layer {item.name!r} ({type(item).__name__}) comes before {layer!r}: not a plain conv chain")
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
        raise ValueError(f"got {len(images)} images but {len(maps)} maps; pass one map per image")
    if any(heat.ndim != 2 for heat in maps):
        raise ValueError("every map must be 2-D (h, w); pick one map per panel, e.g. maps[0]")
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
