"""Exercises for notebooks 03-05: the target function, gradients, Grad-CAM.

Usage in a notebook::

    from camtutor.exercises import gradients as ex
    ex.target.check(my_target)        # 03: one-hot masking, scores (B, C), classes (B,) -> (B,)
    ex.contrast.check(my_contrast)    # 03: evidence for A rather than B, (a, b) -> target (B, C) -> (B,)
    ex.weights.check(my_weights)      # 04: Grad-CAM channel weights, gradients (B, H, W, K) -> (B, K)
    ex.grad_cam.check(my_grad_cam)    # 05: Grad-CAM map, (A, dY/dA) (B, H, W, K) -> (B, H, W)

Each checker calls the student's function on small seeded random arrays
shaped like a real model's feature maps (ReLU activations, signed gradients)
and compares it with camtutor's own functions, naming the likely mistake.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from camtutor.exercises._framework import Exercise, Feedback

__all__ = ["target", "contrast", "weights", "grad_cam"]


# --------------------------------------------------------------------------- what the checkers compare with
# camtutor's own functions (the reference solutions are in the course repository's labs/solutions/gradients.py,
# not in the package).
def _expected_target(scores: np.ndarray, class_indices: np.ndarray) -> np.ndarray:
    from camtutor.targets import class_score

    return np.asarray(class_score(scores, class_indices))


def _expected_contrast(a: int, b: int) -> Callable:
    import tensorflow as tf

    from camtutor.targets import contrast as library_contrast

    return lambda scores: np.asarray(library_contrast(a, b)(tf.constant(scores)))


def _expected_weights(gradients: np.ndarray) -> np.ndarray:
    from camtutor.maths import mean_gradient_weights

    return mean_gradient_weights(gradients, gradients)[:, 0, 0, :]


def _expected_grad_cam(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    from camtutor.maths import mean_gradient_weights, relu, weighted_channel_sum

    return relu(weighted_channel_sum(activations, mean_gradient_weights(activations, gradients)))


# --------------------------------------------------------------------------- test arrays
def _scores(seed: int = 0, batch: int = 5, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 2.0, (batch, classes)).astype(np.float32)
    labels = np.array([1, 0, 3, 2, 1][:batch], dtype=np.int64)
    return scores, labels


def _feature_maps(seed: int = 0, batch: int = 2, size: int = 6, channels: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """ReLU-like activations (sparse, >= 0) and signed gradients, (B, H, W, K) float32 each."""
    rng = np.random.default_rng(seed)
    activations = np.maximum(rng.normal(0.0, 1.0, (batch, size, size, channels)), 0.0).astype(np.float32)
    channel_mean = rng.normal(0.0, 1.0, (batch, 1, 1, channels))
    gradients = (channel_mean + 0.5 * rng.normal(0.0, 1.0, (batch, size, size, channels))).astype(np.float32)
    return activations, gradients


@functools.lru_cache(maxsize=1)
def _real_feature_maps() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(A, dy/dA) of the bundled "shapes-flat" model at last_conv for 2 images, or () when its weights are missing.

    The non-GAP model, because its gradients vary over space (on a GAP model they are constant, and
    Grad-CAM and HiResCAM coincide).
    """
    from camtutor import data, models
    from camtutor.explain import gradients
    from camtutor.errors import ModelError

    try:
        model = models.load("shapes-flat")
    except ModelError:
        return ()
    images = data.shapes(2, seed=21)
    return (gradients(model, images.images, images.labels),)


def _result(function: Callable, *args) -> np.ndarray:
    """Call the student's function and turn its result into a float numpy array, with friendly errors."""
    out = function(*args)
    if out is None:
        raise Feedback("your function returned None: nothing to check yet. Replace `return None` with your code.")
    if hasattr(out, "numpy"):
        out = out.numpy()
    try:
        return np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise Feedback(f"return an array (numpy or a tensor), got {type(out).__name__} ({error})") from None


def _check_shape(result: np.ndarray, expected: tuple, what: str) -> None:
    if result.shape != expected:
        raise Feedback(f"{what} should have shape {expected}, but yours has shape {result.shape}.")


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to float32 rounding, relative to the scale of ``b`` (real gradients are ~1e-3)."""
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.max(np.abs(b), initial=0.0)) + 1e-12))


def _test_cases():
    """Two seeded random cases first (fast feedback), then a real model's feature maps and gradients."""
    yield _feature_maps(0)
    yield _feature_maps(1)
    yield from _real_feature_maps()


# --------------------------------------------------------------------------- checkers
def _check_target(my_target: Callable) -> None:
    for seed in (0, 1):
        scores, labels = _scores(seed)
        got = _result(my_target, scores, labels)
        expected = _expected_target(scores, labels)
        batch, classes = scores.shape
        if got.shape == scores.shape:
            raise Feedback(
                f"your target returns shape {got.shape}, one value per class: multiply by the one-hot rows, "
                "then sum over the class axis (axis=1) to get one score per image."
            )
        if got.shape == (classes,):
            raise Feedback("you summed over the batch axis (axis=0); sum over the class axis (axis=1) instead.")
        _check_shape(got, (batch,), "the target (one score per image)")
        if _close(got, expected):
            continue
        if _close(got, scores[:, labels[0]]):
            raise Feedback("every image got the score of the FIRST image's class; use each image's own class.")
        if _close(got, scores.max(axis=1)):
            raise Feedback("that is the top score of each image, not the score of the requested class.")
        if _close(got, scores.sum(axis=1)):
            raise Feedback("you summed all class scores; mask them with the one-hot vector of the class first.")
        raise Feedback("the values differ from scores[b, class_indices[b]] for some image b.")


def _check_contrast(my_contrast: Callable) -> None:
    scores, _ = _scores(2)
    for a, b in ((0, 1), (2, 3), (3, 0)):
        target = my_contrast(a, b)
        if target is None:
            raise Feedback("my_contrast(a, b) returned None: nothing to check yet. It should return a function.")
        if not callable(target):
            raise Feedback(f"my_contrast(a, b) should return a function scores -> (B,), got {type(target).__name__}.")
        got = _result(target, scores)
        _check_shape(got, (scores.shape[0],), "the target (one score per image)")
        expected = _expected_contrast(a, b)(scores)
        if _close(got, expected):
            continue
        if _close(got, -expected):
            raise Feedback("the sign is flipped: evidence for A rather than B is s_a - s_b, not s_b - s_a.")
        if _close(got, scores[:, a]):
            raise Feedback("that is the score of A alone; subtract the score of B.")
        raise Feedback(f"for a={a}, b={b} the values differ from scores[:, a] - scores[:, b].")


def _check_weights(my_weights: Callable) -> None:
    for activations_and_gradients in _test_cases():
        _, gradients = activations_and_gradients
        batch, height, width, channels = gradients.shape
        got = _result(my_weights, gradients)
        expected = _expected_weights(gradients)
        if got.shape == (batch, height, width):
            raise Feedback(
                "your weights have shape (B, H, W): you averaged over the channel axis. "
                "Grad-CAM averages over the SPATIAL axes (1, 2), one weight per channel."
            )
        if got.shape == (batch, 1, 1, channels):
            got = got.reshape(batch, channels)  # keepdims=True is fine
        if got.shape == (height, width, channels):
            raise Feedback("you averaged over the batch axis (0); each image needs its own weights: use axes (1, 2).")
        _check_shape(got, (batch, channels), "the weights (one per image and channel)")
        if _close(got, expected):
            continue
        if _close(got, expected * height * width):
            raise Feedback("your weights are H*W times too large: take the mean over the cells, not the sum.")
        if _close(got, gradients.max(axis=(1, 2))):
            raise Feedback("that is the maximum gradient of each channel; Grad-CAM uses the mean.")
        if _close(got, np.maximum(gradients, 0).mean(axis=(1, 2))):
            raise Feedback("you dropped the negative gradients before averaging; Grad-CAM averages the raw gradients.")
        if _close(got, np.abs(gradients).mean(axis=(1, 2))):
            raise Feedback("you averaged |gradient|; keep the sign, it says whether a channel helps or hurts.")
        raise Feedback("the values differ from the spatial mean of the gradients.")


def _check_grad_cam(my_grad_cam: Callable) -> None:
    for activations, gradients in _test_cases():
        batch, height, width, _ = activations.shape
        got = _result(my_grad_cam, activations, gradients)
        expected = _expected_grad_cam(activations, gradients)
        raw = np.einsum("bhwk,bk->bhw", activations, gradients.mean(axis=(1, 2)))
        _check_shape(got, (batch, height, width), "the map")
        if _close(got, expected):
            continue
        if _close(got, raw):
            raise Feedback("your map has negative values: apply the ReLU after the weighted sum.")
        if _close(got, np.maximum(np.sum(activations * gradients, axis=-1), 0)):
            raise Feedback(
                "you multiplied gradient and activation cell by cell (that is HiResCAM). Grad-CAM first "
                "averages the gradients over space into one weight per channel."
            )
        if _close(got, expected * height * width):
            raise Feedback("your map is H*W times too large: the weights are the MEAN of the gradients, not the sum.")
        scaled = expected.max(axis=(1, 2), keepdims=True)
        if np.all(scaled > 0) and _close(got, expected / scaled):
            raise Feedback("return the raw map; do not normalise it (camtutor.normalize does that for drawing).")
        relu_weights = np.einsum("bhwk,bk->bhw", activations, np.maximum(gradients.mean(axis=(1, 2)), 0))
        if _close(got, relu_weights):
            raise Feedback("the ReLU goes on the final map, not on the weights.")
        raise Feedback("the values differ from ReLU(sum_k alpha_k * A_k) with alpha_k the gradients' spatial mean.")


# --------------------------------------------------------------------------- the exercises
target = Exercise(
    "One-hot target",
    _check_target,
    hints=[
        "Build the one-hot rows with np.eye(C)[class_indices] (or tf.one_hot): shape (B, C).",
        "Multiply scores by the one-hot rows (elementwise), then sum over axis=1.",
    ],
    solution="gradients.my_target",
    success="This is ct.class_score: the scalar per image whose gradient Grad-CAM follows.",
)

contrast = Exercise(
    "Contrast target",
    _check_contrast,
    hints=[
        "my_contrast(a, b) returns a new function; define it inside with `def target(scores): ...`.",
        "Inside, return scores[:, a] - scores[:, b] (one value per image).",
    ],
    solution="gradients.my_contrast",
    success="This is ct.contrast(a, b).",
)

weights = Exercise(
    "Grad-CAM weights",
    _check_weights,
    hints=[
        "The gradients have shape (B, H, W, K); you want one number per image and channel, (B, K).",
        "Average over the two spatial axes: np.mean(gradients, axis=(1, 2)).",
    ],
    solution="gradients.my_weights",
    success="These alpha_k^c are Selvaraju et al.'s Eq. 1, ct.mean_gradient_weights.",
)

grad_cam = Exercise(
    "Grad-CAM from activations and gradients",
    _check_grad_cam,
    hints=[
        "First the weights: alpha = gradients averaged over axes (1, 2), shape (B, K).",
        "Then the weighted sum over channels: np.einsum('bhwk,bk->bhw', activations, alpha).",
        "Finally keep only the positive evidence: np.maximum(map, 0).",
    ],
    solution="gradients.my_grad_cam",
    success="That is Selvaraju et al.'s Eq. 2, what ct.grad_cam computes in one compiled pass.",
)
