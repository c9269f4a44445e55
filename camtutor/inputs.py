"""Check and prepare image batches before they reach TensorFlow.

:func:`check_images` is camtutor's one image-batch check (the explain functions and the
explorer use it); :func:`resize_images` the one batch resize.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import cv2
import numpy as np

from camtutor.errors import ImageError
from camtutor.images import parse_size

#: Float images with no negative value and a maximum above this look like 0..255 data (see check_images).
RANGE_WARNING_MAX = 2.0
#: How the range warning starts (callers that already warned filter repeats with it).
RANGE_WARNING_START = "the images hold"


def resize_images(images: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Resize a batch (B, H, W, C) or one image (H, W, C) to ``size`` = (h, w) or an int; float32 out.

    Uses area averaging to shrink and bilinear to enlarge.
    """
    arr = np.asarray(images, dtype=np.float32)
    hw = parse_size(size)
    if hw is None:
        raise ImageError("resize_images needs a size: an int S (-> S x S) or (height, width)")
    height, width = hw
    single = arr.ndim == 3
    batch = arr[None] if single else arr

    def one(img: np.ndarray) -> np.ndarray:
        shrink = height < img.shape[0] or width < img.shape[1]
        out = cv2.resize(img, (int(width), int(height)), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return out.reshape(int(height), int(width), img.shape[-1])

    out = np.stack([one(img) for img in batch]).astype(np.float32)
    return out[0] if single else out


def rescales_input(model: object, first: int = 4) -> bool:
    """True when one of the model's first ``first`` layers (nested models included) is a
    ``keras.layers.Rescaling`` or ``Normalization``: the model maps its own input range."""
    import keras

    seen = 0

    def walk(layers) -> bool:
        nonlocal seen
        for layer in layers:
            if seen >= first:
                return False
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization)):
                return True
            if isinstance(layer, keras.Model):
                if walk(layer.layers):
                    return True
                continue
            seen += 1
        return False

    return walk(getattr(model, "layers", []))


def _warn_range(original: np.ndarray, arr: np.ndarray, model: object) -> None:
    """A UserWarning when the batch looks like 0..255 data (uint8, or floats >= 0 with max > 2)."""
    integer = original.dtype.kind in "iu"
    looks_255 = integer or (arr.size > 0 and float(arr.min()) >= 0.0 and float(arr.max()) > RANGE_WARNING_MAX)
    if not looks_255 or (model is not None and rescales_input(model)):
        return
    what = f"{original.dtype} values" if integer else f"values up to {float(arr.max()):.4g}"
    warnings.warn(
        f"{RANGE_WARNING_START} {what}, which looks like 0..255 data, and the model does not rescale its input "
        "(no Rescaling/Normalization layer at the start): camtutor passes the values unchanged. Use images / 255 "
        "for a model trained on [0, 1], or ct.preprocess(images, NAME) for a keras.applications model.",
        UserWarning,
        stacklevel=3,
    )


def check_images(images: object, input_shape: Sequence[int | None], *, model: object = None) -> np.ndarray:
    """Validate a batch for a model with ``input_shape`` = (None, H, W, C); return it as float32 (B, H, W, C).

    Raises :class:`ImageError` naming the fix for: a non-numeric array, images of
    different sizes, a single image without a batch axis, channels-first arrays
    (B, C, H, W), an empty batch, the wrong number of channels, the wrong
    height/width, and NaN or inf values.

    Warns (``UserWarning``) when the values look like 0..255 data, uint8 or any integer
    array, or floats with no negative value and a maximum above
    :data:`RANGE_WARNING_MAX`, unless ``model`` is given and rescales its own input
    (a ``keras.layers.Rescaling`` or ``Normalization`` among its first layers).
    Preprocessed inputs with negative values ("caffe", [-1, 1]) never warn.
    """
    if isinstance(images, (list, tuple)) and len(images) > 1:
        shapes = {np.shape(image) for image in images}
        if len(shapes) > 1:
            raise ImageError(
                f"the images have different shapes {sorted(shapes, key=str)[:4]}; resize them to the model's input "
                f"({input_shape[1]}, {input_shape[2]}) with camtutor.resize_images(image, size) for each, or read "
                "files with camtutor.images.prepare_images(paths, model)"
            )
    try:
        original = np.asarray(images)
        arr = np.asarray(original, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"images must be a numeric array (B, H, W, C); could not convert: {exc}") from None
    _, height, width, channels = input_shape
    if arr.ndim == 3 and arr.shape[-1] == channels:
        raise ImageError(
            f"got one image of shape {arr.shape}; camtutor works on batches (B, H, W, C): pass images[None] "
            "(or np.stack of several images)"
        )
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[0] == (channels or arr.shape[0]):
        raise ImageError(
            f"got one channels-first image of shape {arr.shape}; camtutor wants channels last (B, H, W, C): "
            "pass np.transpose(image, (1, 2, 0))[None]"
        )
    if arr.ndim != 4:
        raise ImageError(f"images must have shape (B, H, W, C) = (B, {height}, {width}, {channels}), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ImageError("the batch is empty (0 images); pass at least one image")
    last, second = arr.shape[-1], arr.shape[1]
    channels_first = (second == channels and last != channels) if channels is not None else (
        second in (1, 3, 4) and last not in (1, 3, 4))
    if channels_first:
        raise ImageError(
            f"the images have shape {arr.shape}, channels first (B, C, H, W); camtutor and Keras want channels "
            "last (B, H, W, C): pass np.transpose(images, (0, 2, 3, 1)) (not a resize)"
        )
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
    _warn_range(original, arr, model)
    return arr
