"""The exercises of notebooks 03-05: references pass, typical mistakes get a helpful message."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import camtutor as ct
from camtutor.exercises import gradients as ex
from labs.solutions import gradients as ref


def passes(exercise, answer) -> tuple[bool, str]:
    return exercise.evaluate(answer)


@pytest.mark.parametrize(
    "exercise, reference",
    [
        (ex.target, ref.my_target),
        (ex.contrast, ref.my_contrast),
        (ex.weights, ref.my_weights),
        (ex.grad_cam, ref.my_grad_cam),
    ],
)
def test_reference_solutions_pass_and_none_is_not_yet(exercise, reference, capsys):
    assert exercise.evaluate(reference) == (True, f"{exercise.title}: correct! {exercise.success}")
    ok, message = exercise.evaluate(None)
    assert not ok and "nothing to check yet" in message
    exercise.solution()
    assert reference.__name__ in capsys.readouterr().out


@pytest.mark.parametrize("exercise", [ex.target, ex.weights, ex.grad_cam])
def test_the_notebook_stub_gets_not_yet_feedback(exercise):
    def stub(*args):
        # YOUR CODE HERE
        return None

    ok, message = exercise.evaluate(stub)
    assert not ok and "nothing to check yet" in message


def test_references_agree_with_the_package():
    scores = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    classes = np.array([2, 0, 1, 1])
    np.testing.assert_allclose(ref.my_target(scores, classes), ct.class_score(scores, classes).numpy(), atol=1e-6)
    np.testing.assert_allclose(ref.my_contrast(2, 1)(scores), ct.contrast(2, 1)(tf.constant(scores)).numpy(), atol=1e-6)
    activations, gradients = ex._feature_maps(3)
    np.testing.assert_allclose(
        ref.my_weights(gradients)[:, None, None, :], ct.mean_gradient_weights(activations, gradients), atol=1e-6
    )
    expected = ct.relu(ct.weighted_channel_sum(activations, ct.mean_gradient_weights(activations, gradients)))
    np.testing.assert_allclose(ref.my_grad_cam(activations, gradients), expected, atol=1e-5)


def test_target_accepts_tensorflow_answers():
    assert passes(ex.target, lambda s, c: tf.reduce_sum(s * tf.one_hot(c, s.shape[1]), axis=1))[0]


@pytest.mark.parametrize(
    "wrong, phrase",
    [
        (lambda s, c: s * np.eye(s.shape[1])[c], "sum over the class axis"),
        (lambda s, c: (s * np.eye(s.shape[1])[c]).sum(axis=0), "batch axis"),
        (lambda s, c: s[:, c[0]], "FIRST image"),
        (lambda s, c: s.max(axis=1), "top score"),
        (lambda s, c: s.sum(axis=1), "mask them"),
        (lambda s, c: s[np.arange(len(c)), (c + 1) % s.shape[1]], "differ"),
    ],
)
def test_wrong_targets(wrong, phrase):
    ok, message = passes(ex.target, wrong)
    assert not ok and phrase in message, message


@pytest.mark.parametrize(
    "wrong, phrase",
    [
        (lambda a, b: (lambda s: s[:, b] - s[:, a]), "sign is flipped"),
        (lambda a, b: (lambda s: s[:, a]), "subtract"),
        (lambda a, b: (lambda s: s[:, a] + s[:, b]), "differ"),
        (lambda a, b: 3.0, "should return a function"),
    ],
)
def test_wrong_contrasts(wrong, phrase):
    ok, message = passes(ex.contrast, wrong)
    assert not ok and phrase in message, message


def test_weights_accept_keepdims():
    assert passes(ex.weights, lambda g: np.mean(g, axis=(1, 2), keepdims=True))[0]


@pytest.mark.parametrize(
    "wrong, phrase",
    [
        (lambda g: g.mean(axis=-1), "channel axis"),
        (lambda g: g.mean(axis=0), "batch axis"),
        (lambda g: g.sum(axis=(1, 2)), "not the sum"),
        (lambda g: g.max(axis=(1, 2)), "maximum"),
        (lambda g: np.maximum(g, 0).mean(axis=(1, 2)), "negative gradients"),
        (lambda g: np.abs(g).mean(axis=(1, 2)), "|gradient|"),
        (lambda g: np.median(g, axis=(1, 2)), "differ"),
    ],
)
def test_wrong_weights(wrong, phrase):
    ok, message = passes(ex.weights, wrong)
    assert not ok and phrase in message, message


def _weighted(a, g, weights_of=lambda g: g.mean(axis=(1, 2))):
    return np.einsum("bhwk,bk->bhw", a, weights_of(g))


@pytest.mark.parametrize(
    "wrong, phrase",
    [
        (lambda a, g: _weighted(a, g), "apply the ReLU"),
        (lambda a, g: np.maximum((a * g).sum(-1), 0), "HiResCAM"),
        (lambda a, g: np.maximum(_weighted(a, g, lambda g: g.sum(axis=(1, 2))), 0), "not the sum"),
        (lambda a, g: ct.normalize(ref.my_grad_cam(a, g)), "do not normalise"),
        (lambda a, g: _weighted(a, g, lambda g: np.maximum(g.mean(axis=(1, 2)), 0)), "not on the weights"),
        (lambda a, g: np.maximum(a.mean(-1), 0), "differ"),
        (lambda a, g: a.mean(axis=(1, 2)), "shape"),
    ],
)
def test_wrong_grad_cams(wrong, phrase):
    ok, message = passes(ex.grad_cam, wrong)
    assert not ok and phrase in message, message


def test_checkers_also_use_a_real_models_feature_maps():
    (case,) = ex._real_feature_maps()
    activations, gradients = case
    assert activations.shape == gradients.shape and activations.shape[0] == 2
    assert (activations >= 0).all() and np.ptp(gradients, axis=(1, 2)).max() > 0  # ReLU maps, gradients vary in space
    assert len(list(ex._test_cases())) == 3
