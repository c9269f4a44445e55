"""The exercises of notebooks 01-02: reference solutions pass, typical mistakes get a message naming them."""

from __future__ import annotations

import numpy as np
import pytest

from camtutor.exercises import gap_cam as ex


def test_reference_solutions_pass():
    for exercise in (ex.peak, ex.gap, ex.cam, ex.box):
        passed, message = exercise.evaluate(exercise.reference)
        assert passed, message
        assert "correct" in message


def test_reference_gap_matches_keras_layer():
    import keras

    maps = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype(np.float32)
    keras_gap = np.asarray(keras.layers.GlobalAveragePooling2D()(maps))
    np.testing.assert_allclose(ex.reference_gap(maps), keras_gap, atol=1e-6)


@pytest.mark.parametrize("exercise", [ex.peak, ex.gap, ex.cam, ex.box])
def test_nothing_yet(exercise):
    passed, message = exercise.evaluate(None)
    assert not passed and "nothing to check yet" in message


@pytest.mark.parametrize(
    "answer, expected_words",
    [
        (lambda a: np.asarray(a).max(axis=(1, 2)), "MAX pooling"),
        (lambda a: np.asarray(a).sum(axis=(1, 2)), "H * W"),
        (lambda a: np.asarray(a).mean(axis=1), "one of the two spatial axes"),
        (lambda a: np.asarray(a).mean(axis=(1, 2, 3)), "channel axis"),
        (lambda a: np.asarray(a).mean(axis=(0, 1, 2)), "batch axis"),
        (lambda a: None, "forget `return`"),
        (lambda a: np.asarray(a).mean(axis=(1, 2)) + 0.01, "differ"),
    ],
)
def test_gap_mistakes(answer, expected_words):
    passed, message = ex.gap.evaluate(answer)
    assert not passed
    assert expected_words in message


@pytest.mark.parametrize(
    "answer, expected_words",
    [
        (lambda a, w, c: np.maximum(ex.reference_cam(a, w, c), 0), "no ReLU"),
        (lambda a, w, c: ex.reference_cam(a, w, c) / a.shape[-1], "weighted *sum*"),
        (lambda a, w, c: np.asarray(a) @ np.asarray(w), "shape"),
        (lambda a, w, c: np.asarray(a).mean(-1) * np.asarray(w)[:, c].sum(), "own feature map"),
        (
            lambda a, w, c: (lambda m: (m - m.min((1, 2), keepdims=True)) / np.ptp(m, (1, 2), keepdims=True))(
                ex.reference_cam(a, w, c)
            ),
            "normalised",
        ),
        (lambda a, w, c: ex.reference_cam(a, w, 0), "for class 1"),
    ],
)
def test_cam_mistakes(answer, expected_words):
    passed, message = ex.cam.evaluate(answer)
    assert not passed
    assert expected_words in message


def test_cam_student_crash_is_reported_not_raised():
    passed, message = ex.cam.evaluate(lambda a, w, c: np.asarray(w)[c] @ a)
    assert not passed and "your code raised" in message


@pytest.mark.parametrize(
    "answer, expected_words",
    [
        (lambda h: (lambda b: (b[1], b[0], b[3], b[2]))(ex.reference_box(h)), "swapped"),
        (lambda h: (lambda b: (b[0], b[1], b[2] - 1, b[3] - 1))(ex.reference_box(h)), "exclusive"),
        (lambda h: ex.reference_box(h, 0.5), "0.5 x max"),
        (lambda h: (0, 0, 1), "four integers"),
    ],
)
def test_box_mistakes(answer, expected_words):
    passed, message = ex.box.evaluate(answer)
    assert not passed
    assert expected_words in message


def test_check_prints_without_the_answer(capsys):
    ex.gap.check(lambda a: np.asarray(a).max(axis=(1, 2)))
    out = capsys.readouterr().out
    assert "not yet" in out and "mean(axis=(1, 2))" not in out


def test_reference_peak_agrees_with_camtutor_peak():
    import camtutor as ct

    heat = np.random.default_rng(1).normal(size=(4, 8))
    assert ex.reference_peak(heat, 64) == ct.peak(heat, 64)


@pytest.mark.parametrize(
    "answer, expected_words",
    [
        (lambda h, s: ex.reference_peak(h, s)[::-1], "swapped"),
        (lambda h, s: tuple(int(v) for v in np.unravel_index(np.argmax(h), h.shape))[::-1], "image pixels"),
        (lambda h, s: (lambda r, c: (int(c * s / h.shape[1]), int(r * s / h.shape[0])))(*np.unravel_index(np.argmax(h), h.shape)), "centre"),
        (lambda h, s: (0,), "two integers"),
    ],
)
def test_peak_mistakes(answer, expected_words):
    passed, message = ex.peak.evaluate(answer)
    assert not passed
    assert expected_words in message


@pytest.mark.parametrize(
    "exercise, stub",
    [
        (ex.peak, lambda heatmap, image_size: None),
        (ex.gap, lambda feature_maps: None),
        (ex.cam, lambda feature_maps, dense_kernel, class_index: None),
        (ex.box, lambda heatmap: None),
    ],
)
def test_notebook_stub_gets_nothing_yet_without_the_answer(exercise, stub):
    passed, message = exercise.evaluate(stub)
    assert not passed and "nothing to check yet" in message.lower()
    assert "axis=(1, 2)" not in message and "@" not in message
