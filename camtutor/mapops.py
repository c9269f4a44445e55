"""Map post-processing on numpy arrays: per-map min-max normalisation and bilinear resizing. No TensorFlow.

A map is 2-D, (h, w); a batch of maps is (B, h, w). Both functions work on the last two axes and keep
every leading axis, so (B, C, h, w) works too. They take numpy arrays (or anything ``np.asarray``
accepts) and return float32 numpy arrays; drawing (:mod:`camtutor.draw`, :mod:`camtutor.figures`),
localisation (:mod:`camtutor.localize`) and the metrics use them, so none of those imports TensorFlow.

:func:`camtutor.maths.normalize` and :func:`camtutor.maths.upsample` are the same operations for
TensorFlow tensors inside camtutor's compiled functions; given numpy they call the functions here.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from camtutor.errors import CamTutorError
from camtutor.images import parse_size

__all__ = ["normalize", "upsample"]


def check_shape(shape: tuple[int | None, ...] | None, what: str) -> None:
    """Refuse a shape that is not (H, W) / (B, H, W) or has no cell; ``None`` (unknown rank) passes.

    ``what`` names the function in the message. Unknown dimensions (None, from a traced tensor) pass.

    Raises:
        camtutor.CamTutorError: fewer than 2 dimensions, or a dimension of 0.
    """
    if shape is None:
        return
    if len(shape) < 2:
        raise CamTutorError(f"{what} takes maps (H, W) or (B, H, W), got shape {shape}; pass at least one 2-D map")
    if any(dim == 0 for dim in shape):
        raise CamTutorError(f"{what} got an empty array of shape {shape}; pass maps with at least one cell")


def map_size(size: int | Sequence[int], what: str = "upsample") -> tuple[int, int]:
    """:func:`camtutor.images.parse_size`, refusing None: the (H, W) to resize maps to."""
    hw = parse_size(size)
    if hw is None:
        raise CamTutorError(f"{what} needs a size: an int S (-> S x S) or (height, width)")
    return hw


def normalize(maps: np.ndarray) -> np.ndarray:
    """Scale each map to [0, 1] by its own min and max: (B, H, W) -> (B, H, W), or (H, W) -> (H, W).

    ``m' = (m - min m) / (max m - min m)`` per map, over the last two axes. A constant map
    (``max - min`` at most 1e-7 of ``max(|min|, |max|)``, all zeros included) becomes all 0, never NaN,
    so an empty explanation looks empty instead of all red. float32 in and out (any input is converted
    to float32 first).

    Raises:
        camtutor.CamTutorError: an empty array, fewer than 2 dimensions, or NaN / inf in a map (a map
            that cannot be scaled is refused, never drawn blank).
    """
    check_shape(tuple(np.shape(maps)), "normalize")
    m = np.asarray(maps, dtype=np.float32)
    finite = np.isfinite(m)
    if not finite.all():
        flat = finite.reshape(-1, *m.shape[-2:]).all(axis=(-2, -1))
        which = np.argwhere(~flat.reshape(m.shape[:-2])).tolist() if m.ndim > 2 else []
        raise CamTutorError(
            f"normalize got NaN or inf values{f' in maps {which[:10]}' if which else ''}; such a map cannot be "
            "scaled or drawn: it comes from non-finite model scores or activations (check the model's weights "
            "and the images' scaling)"
        )
    low = m.min(axis=(-2, -1), keepdims=True)
    high = m.max(axis=(-2, -1), keepdims=True)
    spread = high - low
    informative = spread > np.float32(1e-7) * np.maximum(np.abs(low), np.abs(high))
    safe_spread = np.where(informative, spread, np.float32(1.0))
    return np.where(informative, (m - low) / safe_spread, np.float32(0.0)).astype(np.float32, copy=False)


def upsample(maps: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Bilinear resize of maps to ``size`` = (H, W) or an int: (B, h, w) -> (B, H, W), or (h, w) -> (H, W).

    Values keep their range (no normalisation); apply :func:`normalize` before or after. Pixel centres
    are at half-integers (``x_src = (x + 0.5) * w / W - 0.5``, clamped at the borders), OpenCV's
    ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)``: the same numbers as
    ``tf.image.resize(..., method="bilinear")`` to float32 rounding (at most 5e-6 of the maps' largest
    value over 300 random sizes, 2e-7 for 16 -> 64 or 7 -> 224; OpenCV is the closer of the two to exact
    float64 interpolation). Shrinking is plain bilinear sampling too (no area averaging, no
    antialiasing), as in TensorFlow: equal for integer factors, within 2e-6 otherwise. Each map is one OpenCV call (OpenCV 5 takes at most 128 channels per call, and one
    call per map was faster than stacking maps as channels). float32 out; any leading axes are kept.

    Raises:
        camtutor.CamTutorError: a size that is not a positive int or (height, width) pair, or empty maps.
    """
    height, width = map_size(size)
    check_shape(tuple(np.shape(maps)), "upsample")
    m = np.asarray(maps, dtype=np.float32)
    flat = np.ascontiguousarray(m.reshape(-1, *m.shape[-2:]))
    out = np.empty((len(flat), height, width), dtype=np.float32)
    for index, one in enumerate(flat):
        out[index] = cv2.resize(one, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width)
    return out.reshape(*m.shape[:-2], height, width)
