"""Check and prepare image batches before they reach TensorFlow."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from camtutor.errors import ImageError


def resize_images(images: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Resize a batch (B, H, W, C) or one image (H, W, C) to ``size`` = (h, w) or an int; float32 out.

    Uses area averaging to shrink and bilinear to enlarge.
    """
    arr = np.asarray(images, dtype=np.float32)
    height, width = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    single = arr.ndim == 3
    batch = arr[None] if single else arr

    def one(img: np.ndarray) -> np.ndarray:
        shrink = height < img.shape[0] or width < img.shape[1]
        out = cv2.resize(img, (int(width), int(height)), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return out.reshape(int(height), int(width), img.shape[-1])

    out = np.stack([one(img) for img in batch]).astype(np.float32)
    return out[0] if single else out


def check_images(images: object, input_shape: Sequence[int | None]) -> np.ndarray:
    """Validate a batch for a model with ``input_shape`` = (None, H, W, C); return it as float32 (B, H, W, C).

    Raises :class:`ImageError` naming the fix for: a non-numeric array, a
    single image without a batch axis, an empty batch, the wrong number of
    channels, the wrong height/width, and NaN or inf values.
    """
    try:
        arr = np.asarray(images, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"images must be a numeric array (B, H, W, C); could not convert: {exc}") from None
    _, height, width, channels = input_shape
    if arr.ndim == 3 and arr.shape[-1] == channels:
        raise ImageError(
            f"got one image of shape {arr.shape}; camtutor works on batches (B, H, W, C): pass images[None] "
            "(or np.stack of several images)"
        )
    if arr.ndim != 4:
        raise ImageError(f"images must have shape (B, H, W, C) = (B, {height}, {width}, {channels}), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ImageError("the batch is empty (0 images); pass at least one image")
    if channels is not None and arr.shape[-1] != channels:
        fix = "np.repeat(images, 3, axis=-1)" if arr.shape[-1] == 1 and channels == 3 else "convert them"
        raise ImageError(
            f"the model expects {channels} channels but the images have {arr.shape[-1]}; {fix} "
            "(camtutor.data.load_image always returns RGB)"
        )
    if (height is not None and arr.shape[1] != height) or (width is not None and arr.shape[2] != width):
        raise ImageError(
            f"the model expects {height}x{width} images but got {arr.shape[1]}x{arr.shape[2]}; "
            f"resize them with camtutor.resize_images(images, ({height}, {width}))"
        )
    if not np.isfinite(arr).all():
        bad = np.unique(np.nonzero(~np.isfinite(arr))[0]).tolist()
        raise ImageError(f"images {bad[:10]} contain NaN or inf values; fix or drop them before explaining")
    return arr
