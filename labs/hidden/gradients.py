"""Hidden tests of notebooks 03 (target, contrast), 04 (weights) and 05 (grad_cam)."""

import numpy as np

from ..solutions import gradients as ref
from . import assert_close, case


def _scores(seed, batch, classes):
    return np.random.default_rng(seed).normal(0.0, 2.0, (batch, classes)).astype(np.float32)


@case("target")
def target_mixed_classes(f):
    scores = _scores(201, 6, 5)
    classes = np.array([4, 0, 2, 2, 1, 3])
    assert_close(f(scores.copy(), classes.copy()), ref.my_target(scores, classes))


@case("target")
def target_one_image(f):
    scores = _scores(202, 1, 3)
    classes = np.array([2])
    assert_close(f(scores.copy(), classes.copy()), ref.my_target(scores, classes))


@case("target")
def target_same_class(f):
    scores = _scores(203, 4, 2)
    classes = np.array([1, 1, 1, 1])
    assert_close(f(scores.copy(), classes.copy()), ref.my_target(scores, classes))


def _target(f, a, b):
    target = f(a, b)
    assert callable(target), f"returned {type(target).__name__}, not a function"
    return target


@case("contrast")
def contrast_first_pair(f):
    scores = _scores(211, 5, 4)
    assert_close(_target(f, 1, 3)(scores.copy()), ref.my_contrast(1, 3)(scores))


@case("contrast")
def contrast_reversed_pair(f):
    scores = _scores(212, 3, 4)
    assert_close(_target(f, 3, 0)(scores.copy()), ref.my_contrast(3, 0)(scores))


@case("contrast")
def contrast_two_classes(f):
    scores = _scores(213, 7, 2)
    assert_close(_target(f, 0, 1)(scores.copy()), ref.my_contrast(0, 1)(scores))


def _pair(seed, shape):
    rng = np.random.default_rng(seed)
    activations = np.maximum(rng.normal(0.0, 1.0, shape), 0.0).astype(np.float32)
    gradients = (rng.normal(0.0, 1.0, (shape[0], 1, 1, shape[3])) + 0.5 * rng.normal(size=shape)).astype(np.float32)
    return activations, gradients


@case("weights")
def weights_square(f):
    _, gradients = _pair(221, (2, 6, 6, 5))
    assert_close(f(gradients.copy()), ref.my_weights(gradients))


@case("weights")
def weights_non_square(f):
    _, gradients = _pair(222, (3, 4, 7, 2))
    assert_close(f(gradients.copy()), ref.my_weights(gradients))


@case("weights")
def weights_small_gradients(f):
    _, gradients = _pair(223, (1, 8, 8, 16))
    gradients *= 1e-3
    assert_close(f(gradients.copy()), ref.my_weights(gradients), atol=1e-8)


@case("grad_cam")
def grad_cam_square(f):
    activations, gradients = _pair(231, (2, 6, 6, 5))
    assert_close(f(activations.copy(), gradients.copy()), ref.my_grad_cam(activations, gradients), atol=1e-4)


@case("grad_cam")
def grad_cam_non_square(f):
    activations, gradients = _pair(232, (3, 5, 8, 4))
    assert_close(f(activations.copy(), gradients.copy()), ref.my_grad_cam(activations, gradients), atol=1e-4)


@case("grad_cam")
def grad_cam_negative_evidence(f):
    activations, gradients = _pair(233, (2, 4, 4, 6))
    gradients = gradients - 1.0                          # mostly negative weights: the ReLU matters
    assert_close(f(activations.copy(), gradients.copy()), ref.my_grad_cam(activations, gradients), atol=1e-4)
