"""Notebook 11: XGrad-CAM's channel weights (Fu et al. 2020, Eq. 9)."""

import numpy as np


def my_xgradcam_weights(A, g):
    """XGrad-CAM weights: (B, h, w, K) activations and gradients -> (B, 1, 1, K); 0 where sum_ij A = 0."""
    A, g = np.asarray(A, dtype=np.float64), np.asarray(g, dtype=np.float64)
    total = A.sum(axis=(1, 2), keepdims=True)                         # (B, 1, 1, K): sum over cells
    weighted = (A * g).sum(axis=(1, 2), keepdims=True)                # sum_ij A_ij g_ij
    return np.divide(weighted, total, out=np.zeros_like(total), where=total != 0)
