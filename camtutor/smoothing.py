"""SmoothGrad (Smilkov et al. 2017): a gradient method's map averaged over noisy copies of each image.

:func:`smooth_spec` checks the ``smooth=(n, sigma[, seed])`` argument of :func:`camtutor.grad_cam`,
:func:`camtutor.heatmap`, :func:`camtutor.guided_backprop` and :func:`camtutor.guided_gradcam`;
:func:`smoothed` runs a compiled call on the noisy copies in bounded chunks (:data:`SMOOTH_CHUNK_VALUES`)
and averages. numpy only: the call it is given does the TensorFlow work.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from camtutor.errors import CamTutorError

__all__ = ["SMOOTH_CHUNK_VALUES", "smooth_spec", "smoothed"]

#: The most input values (images x H x W x C) of noisy copies that one SmoothGrad call runs: 2**22 float32 values
#: are 16 MB of input, 27 copies of a 224 x 224 x 3 image; a call always holds at least one copy of the batch.
SMOOTH_CHUNK_VALUES = 2**22


def smooth_spec(smooth) -> tuple[int, float, int] | None:
    """``smooth=(n, sigma)`` or ``(n, sigma, seed)`` checked: -> (n, sigma, seed) or None."""
    if smooth is None:
        return None
    message = ("smooth must be (n, sigma) or (n, sigma, seed): n >= 1 noisy copies, noise sigma >= 0 as a fraction "
               f"of each image's value range (Smilkov et al. use 0.1-0.2), e.g. smooth=(16, 0.15); got {smooth!r}")
    if not isinstance(smooth, (tuple, list)) or len(smooth) not in (2, 3):
        raise CamTutorError(message)
    n, sigma, seed = (*smooth, 0) if len(smooth) == 2 else smooth
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 or isinstance(sigma, bool):
        raise CamTutorError(message)
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise CamTutorError(message) from None
    if not np.isfinite(sigma) or sigma < 0 or not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise CamTutorError(message)
    return int(n), sigma, int(seed)


def smoothed(smooth, images: np.ndarray, classes: np.ndarray | None, call: Callable) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017): ``(1/n) sum_i M(x + N(0, sigma^2 (x_max - x_min)^2))``.

    ``smooth`` is :func:`smooth_spec`'s (n, sigma, seed), or None for the plain ``call(images, classes)``.
    The n noise fields are drawn once with numpy from ``seed`` for one image (n, 1, H, W, C) and added to every
    image of the batch, so an image's map depends only on the image, the class and the seed, never on its
    batch-mates. The noisy copies run in calls of at most :data:`SMOOTH_CHUNK_VALUES` input values (at least
    one copy of the batch per call; no re-tracing: the batch size is dynamic). ``call(images, classes) ->
    (N, ...)``, or a tuple of such arrays (each is averaged on its own).
    """
    if smooth is None:
        return call(images, classes)
    n, sigma, seed = smooth
    spread = images.max(axis=(1, 2, 3), keepdims=True) - images.min(axis=(1, 2, 3), keepdims=True)
    noise = np.random.default_rng(seed).standard_normal((n, 1, *images.shape[1:]), dtype=np.float32)
    draws_per_call = max(1, SMOOTH_CHUNK_VALUES // max(1, images.size))
    total = None
    for start in range(0, n, draws_per_call):
        fields = noise[start:start + draws_per_call]
        noisy = (images[None] + fields * (sigma * spread)[None]).reshape(-1, *images.shape[1:]).astype(np.float32)
        out = call(noisy, None if classes is None else np.tile(classes, len(fields)))
        parts = out if isinstance(out, tuple) else (out,)
        sums = [part.reshape(len(fields), len(images), *part.shape[1:]).sum(axis=0, dtype=np.float64)
                for part in parts]
        total = sums if total is None else [t + s for t, s in zip(total, sums)]
    means = tuple((t / n).astype(np.float32) for t in total)
    return means if isinstance(out, tuple) else means[0]
