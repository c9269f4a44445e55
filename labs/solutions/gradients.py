"""Notebooks 03 (the target function), 04 (Grad-CAM weights) and 05 (Grad-CAM from A and dY/dA)."""

import numpy as np


def my_target(scores, class_indices):
    """One-hot masking: scores (B, C), class_indices (B,) -> (B,) with y[b] = scores[b, class_indices[b]]."""
    scores = np.asarray(scores, dtype=np.float32)
    one_hot = np.eye(scores.shape[1], dtype=np.float32)[np.asarray(class_indices)]  # (B, C)
    return np.sum(scores * one_hot, axis=1)


def my_contrast(a, b):
    """A target "evidence for class a rather than class b": returns scores (B, C) -> (B,) = s_a - s_b."""

    def target(scores):
        return scores[:, a] - scores[:, b]

    return target


def my_weights(gradients):
    """Grad-CAM weights: the spatial mean of the gradients, (B, H, W, K) -> (B, K) (Selvaraju et al. Eq. 1)."""
    return np.mean(np.asarray(gradients, dtype=np.float32), axis=(1, 2))


def my_grad_cam(activations, gradients):
    """Grad-CAM: ReLU(sum_k alpha_k A_k) with alpha_k the gradients' spatial mean: (B, H, W, K) -> (B, H, W)."""
    activations = np.asarray(activations, dtype=np.float32)
    alpha = np.mean(np.asarray(gradients, dtype=np.float32), axis=(1, 2))  # (B, K)
    maps = np.einsum("bhwk,bk->bhw", activations, alpha)
    return np.maximum(maps, 0.0)
