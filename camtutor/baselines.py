"""Model-free saliency baselines: what a map must beat before it says anything about the model.

A class activation map that puts its peak on the object is only evidence about the *model* if
a map that never looked at the model does not do the same. Each baseline here maps a batch of
images to one map per image, without TensorFlow (numpy and OpenCV only):

=================  ====================================================  ======================
name               map                                                   values
=================  ====================================================  ======================
``"random"``       :func:`random_map`: i.i.d. uniform noise (seeded)     [0, 1)
``"centre"``       :func:`centre_prior`: a Gaussian at the image centre  (0, 1], 1 at the centre
``"brightness"``   :func:`brightness`: blurred luma                      [0, 1]
``"contrast"``     :func:`local_contrast`: local standard deviation      [0, 0.5]
``"edges"``        :func:`sobel_edges`: Sobel gradient magnitude / 4     [0, sqrt(2)]
``"deviation"``    :func:`colour_deviation`: blurred distance from the    [0, sqrt(3)]
                   image's median (background) colour
=================  ====================================================  ======================

All take images (B, H, W, C) float in [0, 1] with C = 3 (RGB) or 1 (grey), and return float32
maps (B, H, W) at the *image* resolution (``random_map`` can be asked for another size), so they can
be scored exactly like an upsampled CAM. Luma is ITU-R BT.601: ``0.299 R + 0.587 G + 0.114 B``.
Iterate :data:`BASELINES` to compare them all, e.g. ``{k: f(images) for k, f in BASELINES.items()}``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

from camtutor.errors import CamTutorError, ImageError
from camtutor.inputs import check_images

__all__ = [
    "BASELINES",
    "random_map",
    "centre_prior",
    "brightness",
    "local_contrast",
    "sobel_edges",
    "colour_deviation",
]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _images(images: object) -> np.ndarray:
    """Validate a batch (B, H, W, 1 or 3) of finite values; return float32."""
    arr = check_images(images, (None, None, None, None))
    if arr.shape[-1] not in (1, 3):
        raise ImageError(
            f"images must have 1 (grey) or 3 (RGB) channels, got {arr.shape[-1]}; shape (B, H, W, C), got {arr.shape}"
        )
    return arr


def _luma(arr: np.ndarray) -> np.ndarray:
    """(B, H, W, C) -> (B, H, W) float32 luma (the channel itself for grey images)."""
    if arr.shape[-1] == 1:
        return np.ascontiguousarray(arr[..., 0], dtype=np.float32)
    return np.ascontiguousarray(arr @ _LUMA, dtype=np.float32)


#: Largest image OpenCV may build while blurring, in pixels: the image padded by 4 sigma on every side.
MAX_BLUR_PIXELS = 64_000_000


def _check_sigma(name: str, value: object, *, zero_ok: bool, images: np.ndarray | None = None) -> float:
    """A finite number >= 0 (> 0 unless ``zero_ok``); with ``images``, a blur width in pixels whose padded image
    ``(H + 8 sigma) x (W + 8 sigma)`` stays within :data:`MAX_BLUR_PIXELS` (past the image's size the map is
    nearly flat anyway; an absurd width would otherwise make OpenCV fail to allocate)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise CamTutorError(f"{name} must be a number {bound}, got {value!r}.")
    if images is not None:
        h, w = images.shape[1:3]
        if (h + 8.0 * value) * (w + 8.0 * value) > MAX_BLUR_PIXELS:
            side = max(h, w)
            limit = max(0.0, (np.sqrt(MAX_BLUR_PIXELS) - side) / 8.0)
            raise CamTutorError(
                f"{name}={value!r} pixels is far wider than the images ({h} x {w}): blurring would pad each one "
                f"beyond {MAX_BLUR_PIXELS:,} pixels; pass {name} <= {limit:.0f} (a blur wider than the image "
                "gives a nearly flat map)"
            )
    return float(value)


def _gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of one (H, W) float32 map, sigma in pixels (0 = unchanged), mirrored borders."""
    if sigma == 0:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def random_map(images: object, *, seed: int = 0, size: int | Sequence[int] | None = None) -> np.ndarray:
    """Uniform random maps: the chance level of every localisation score.

    Args:
        images: (B, H, W, C) float in [0, 1]; only B (and H, W when ``size`` is None) are used.
        seed: seed of :func:`numpy.random.default_rng`; the same seed and shape give the same maps.
        size: map size, an int ``s`` (s x s) or ``(h, w)``; default the image size (H, W).

    Returns:
        (B, h, w) float32, i.i.d. uniform in [0, 1).
    """
    arr = _images(images)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise CamTutorError(f"seed must be an integer, got {seed!r}.")
    if size is None:
        h, w = arr.shape[1:3]
    else:
        hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if len(hw) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in hw):
            raise CamTutorError(f"size must be an int >= 1 or a pair (h, w) of them, got {size!r}.")
        h, w = (int(v) for v in hw)
    rng = np.random.default_rng(int(seed))
    return rng.random((arr.shape[0], h, w), dtype=np.float32)


def centre_prior(images: object, *, sigma: float = 0.25) -> np.ndarray:
    """A Gaussian bump at the image centre, the same for every image ("objects tend to be central").

    ``exp(-((x - xc)^2 + (y - yc)^2) / (2 (sigma * S)^2))`` with the centre ``xc = (W - 1) / 2``,
    ``yc = (H - 1) / 2`` and S = min(H, W).

    Args:
        images: (B, H, W, C); only the shape is used.
        sigma: the standard deviation as a fraction of the shorter image side, > 0.

    Returns:
        (B, H, W) float32 in (0, 1]; 1 at the centre pixel (odd sides) or the 4 central pixels (even sides).
    """
    arr = _images(images)
    sigma = _check_sigma("sigma", sigma, zero_ok=False)
    b, h, w = arr.shape[:3]
    s = sigma * min(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    d2 = (xx - (w - 1) / 2.0) ** 2 + (yy - (h - 1) / 2.0) ** 2
    bump = np.exp(-d2 / (2.0 * s * s)).astype(np.float32)
    return np.broadcast_to(bump, (b, h, w)).copy()


def brightness(images: object, *, blur: float = 2.0) -> np.ndarray:
    """Blurred brightness: "the object is the bright part of the image".

    Args:
        images: (B, H, W, C) float in [0, 1].
        blur: Gaussian sigma in pixels, >= 0 (0 = no blur).

    Returns:
        (B, H, W) float32 luma (BT.601) in [0, 1], Gaussian-blurred.
    """
    arr = _images(images)
    blur = _check_sigma("blur", blur, zero_ok=True, images=arr)
    return np.stack([_gaussian(y, blur) for y in _luma(arr)]).astype(np.float32)


def local_contrast(images: object, *, radius: float = 2.0) -> np.ndarray:
    """Local standard deviation of the luma: high wherever the image changes, dark or bright.

    ``sqrt(G * L^2 - (G * L)^2)`` where ``G *`` is a Gaussian blur of sigma ``radius`` and L the luma.
    It does not care about polarity: a dark object on a light background scores like a light one.

    Args:
        images: (B, H, W, C) float in [0, 1].
        radius: sigma of the Gaussian window in pixels, > 0.

    Returns:
        (B, H, W) float32 in [0, 0.5] (0 on flat regions).
    """
    arr = _images(images)
    radius = _check_sigma("radius", radius, zero_ok=False, images=arr)
    out = []
    for y in _luma(arr).astype(np.float64):  # float64: E[L^2] - E[L]^2 cancels badly in float32
        mean = _gaussian(y, radius)
        var = _gaussian(y * y, radius) - mean * mean
        out.append(np.sqrt(np.clip(var, 0.0, None)))
    return np.stack(out).astype(np.float32)


def sobel_edges(images: object, *, blur: float = 0.0) -> np.ndarray:
    """Sobel edge magnitude of the luma: ``sqrt(Gx^2 + Gy^2) / 4``.

    Gx, Gy are the 3x3 Sobel derivatives (``[1, 2, 1]`` smoothing, central difference), mirrored
    borders; dividing by 4 makes a unit step edge (0 -> 1) score 1 on both pixels next to the step.

    Args:
        images: (B, H, W, C) float in [0, 1].
        blur: Gaussian sigma in pixels applied to the luma first, >= 0 (0 = none).

    Returns:
        (B, H, W) float32 in [0, sqrt(2)].
    """
    arr = _images(images)
    blur = _check_sigma("blur", blur, zero_ok=True, images=arr)
    out = []
    for y in _luma(arr):
        y = _gaussian(y, blur)
        gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101)
        gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101)
        out.append(np.sqrt(gx * gx + gy * gy) / 4.0)
    return np.stack(out).astype(np.float32)


def colour_deviation(images: object, *, blur: float = 6.0) -> np.ndarray:
    """Blurred colour deviation: "the object is whatever differs from the background colour".

    ``G * ||x(p) - m||_2``: the Euclidean distance of each pixel's colour from the image's median
    colour ``m`` (per channel, over all pixels: the background's colour whenever the background
    covers more than half the image), then a Gaussian blur ``G`` of sigma ``blur`` pixels. It knows
    nothing about classes, yet on images with one object on a plain or noisy background it finds
    the object far more often than brightness, contrast or edges: the strongest model-free map to
    hold a CAM against on such data.

    Args:
        images: (B, H, W, C) float in [0, 1].
        blur: Gaussian sigma in pixels, >= 0 (0 = no blur); the default 6 px smooths noise on 64 px images.

    Returns:
        (B, H, W) float32 in [0, sqrt(C)] (0 where the colour equals the median).
    """
    arr = _images(images)
    blur = _check_sigma("blur", blur, zero_ok=True, images=arr)
    out = []
    for img in arr:
        median = np.median(img.reshape(-1, img.shape[-1]), axis=0)
        distance = np.sqrt(np.sum((img - median) ** 2, axis=-1, dtype=np.float32)).astype(np.float32)
        out.append(_gaussian(distance, blur))
    return np.stack(out).astype(np.float32)


#: Baseline name -> function ``images (B, H, W, C) -> maps (B, H, W)`` (default settings).
BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "random": random_map,
    "centre": centre_prior,
    "brightness": brightness,
    "contrast": local_contrast,
    "edges": sobel_edges,
    "deviation": colour_deviation,
}
