"""The notebook 05 exercise grad_cam_tape: the reference passes against ct.grad_cam; typical mistakes are named."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from camtutor.exercises import tape as ex
from labs.solutions import tape as ref


def _evaluate(function):
    return ex.grad_cam_tape.evaluate(function)


def test_reference_passes():
    passed, message = _evaluate(ref.my_grad_cam_tape)
    assert passed, message


def test_none_is_not_checked():
    passed, message = _evaluate(lambda m, i, c, l: None)
    assert not passed and "returned None" in message


def _variant(relu=True, elementwise=False, normalise=False, same_class=False):
    def student(model, images, classes, layer):
        import keras

        probe = keras.Model(model.input, [model.get_layer(layer).output, model.output])
        chosen = np.zeros_like(classes) if same_class else classes
        with tf.GradientTape() as tape:
            a, z = probe(images)
            y = tf.reduce_sum(z * tf.one_hot(chosen, z.shape[-1]), axis=-1)
        g = tape.gradient(y, a)
        w = g if elementwise else tf.reduce_mean(g, axis=(1, 2), keepdims=True)
        m = tf.reduce_sum(w * a, axis=-1).numpy()
        if relu:
            m = np.maximum(m, 0)
        if normalise:
            m = m / np.maximum(m.max(axis=(1, 2), keepdims=True), 1e-12)
        return m
    return student


def test_a_correct_student_version_passes():
    passed, message = _evaluate(_variant())
    assert passed, message


def test_mistakes_get_specific_feedback():
    assert "ReLU" in _evaluate(_variant(relu=False))[1]
    assert "HiResCAM" in _evaluate(_variant(elementwise=True))[1]
    assert "normalised" in _evaluate(_variant(normalise=True))[1]
    assert "own\nclass" in _evaluate(_variant(same_class=True))[1].replace("own class", "own\nclass")


def test_last_hint_is_not_the_answer():
    last = ex.grad_cam_tape.hints[-1]
    assert "reduce_mean" not in last and "relu(" not in last.lower() and "axis=(1, 2)" not in last
