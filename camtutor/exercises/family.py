"""Exercise for notebook 11: write XGrad-CAM's channel weights, checked against ``camtutor.maths.xgrad_cam_weights``.

::

    from camtutor.exercises import family as ex
    ex.xgradcam.check(my_xgradcam_weights)
    # my_xgradcam_weights(A, G) -> (B, 1, 1, K)

``A`` are a layer's feature maps (B, h, w, K), ``G`` the gradients dS_c/dA of the class score, same shape.
XGrad-CAM (Fu et al. 2020, Eq. 9) weights channel k by the gradient averaged with the activations as weights::

    w_k = sum_ij (A_ij^k / sum_ab A_ab^k) * G_ij^k          (0 for a channel whose activations sum to 0)

The checker uses numpy arrays with all-zero channels (a ReLU that never fired) and names the usual mistakes:
Grad-CAM's plain mean, a sum over the whole batch, the wrong shape, NaN for the empty channels.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from camtutor.exercises._framework import Exercise, Feedback

__all__ = ["xgradcam"]


@functools.lru_cache(maxsize=1)
def _case():
    rng = np.random.default_rng(11)
    A = np.maximum(rng.normal(size=(3, 5, 4, 6)), 0.0)     # ReLU activations, a non-square 5x4 map
    A[0, :, :, 2] = 0.0                                     # a channel that never fired
    A[2, :, :, 5] = 0.0
    G = rng.normal(size=A.shape)
    from camtutor.maths import xgrad_cam_weights   # the reference solution is in the repository's labs/solutions

    return A, G, np.asarray(xgrad_cam_weights(A, G), dtype=np.float64)


def _mistakes(A, G):
    mean_gradient = G.mean(axis=(1, 2), keepdims=True)
    batch_total = A.sum(axis=(0, 1, 2), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        whole_batch = (A * G).sum(axis=(1, 2), keepdims=True) / batch_total
        no_guard = (A * G).sum(axis=(1, 2), keepdims=True) / A.sum(axis=(1, 2), keepdims=True)
    return (
        (mean_gradient, "these are Grad-CAM's weights, the plain mean of G over the cells. XGrad-CAM weights each "
                        "cell's gradient by that cell's share of the channel's activation."),
        (whole_batch, "you divided by a sum over the whole batch: sum over the cells of each image's channel only "
                      "(axis=(1, 2))."),
        (no_guard, "the channels whose activations are all 0 give 0 / 0 = NaN: their weight must be 0 "
                   "(np.divide(..., where=total != 0) or np.where)."),
    )


def _check(function: Callable) -> None:
    if not callable(function):
        raise Feedback("pass your function itself, e.g. check(my_xgradcam_weights), without calling it.")
    A, G, expected = _case()
    result = function(A.copy(), G.copy())
    if result is None:
        raise Feedback("your function returned None: replace `return None` with your code.")
    got = np.asarray(result, dtype=np.float64)
    if got.shape != expected.shape:
        if got.size == expected.size:
            raise Feedback(f"the numbers may be right but the shape is {got.shape}: keep the cell axes, "
                           f"shape {expected.shape} (keepdims=True), so the weights broadcast against A.")
        raise Feedback(f"expected one weight per image and channel, shape {expected.shape}; got {got.shape}.")
    if np.allclose(got, expected, atol=1e-6, equal_nan=False):
        return
    for typical, message in _mistakes(A, G):
        if np.allclose(got, typical, atol=1e-6, equal_nan=True):
            raise Feedback(message)
    if np.isnan(got).any():
        raise Feedback("some weights are NaN: which channels have activations that sum to 0?")
    raise Feedback("the weights differ from XGrad-CAM's. Per image and channel: sum over the cells of A * G, "
                   "divided by the sum over the cells of A.")


xgradcam = Exercise(
    "XGrad-CAM's channel weights",
    _check,
    hints=[
        "Two sums over the cells (axes 1 and 2) of each image and channel: one of A * G, one of A. "
        "keepdims=True keeps the shape (B, 1, 1, K).",
        "Divide the first sum by the second. What happens for a channel whose activations are all 0?",
        "np.divide(a, b, out=np.zeros_like(b), where=b != 0) divides only where b is not 0 and leaves 0 elsewhere.",
    ],
    solution="family.my_xgradcam_weights",
    success="Your weights match camtutor.maths.xgrad_cam_weights: XGrad-CAM is ct.heatmap(..., method='xgradcam').",
)
