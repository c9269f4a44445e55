"""The exercises of notebooks 00-02: reference solutions pass, typical mistakes get a message naming them."""

from __future__ import annotations

import numpy as np
import pytest

import camtutor as ct
from camtutor.exercises import gap_cam as ex
from labs.solutions import gap_cam as ref


def _normalised_cam(a, w, c):
    m = ref.my_cam(a, w, c)
    low = m.min(axis=(1, 2), keepdims=True)
    return (m - low) / (m.max(axis=(1, 2), keepdims=True) - low)


def _cell_of_peak(h):
    row, col = np.unravel_index(np.argmax(h), h.shape)
    return int(row), int(col)


MISTAKES = [
    # peak (00)
    (ex.peak, lambda h, s: ref.my_peak(h, s)[::-1], "swapped"),
    (ex.peak, lambda h, s: _cell_of_peak(h)[::-1], "image pixels"),
    (ex.peak, lambda h, s: (int(_cell_of_peak(h)[1] * s / h.shape[1]), int(_cell_of_peak(h)[0] * s / h.shape[0])), "centre"),
    (ex.peak, lambda h, s: (0,), "2 integers"),
    # GAP (01)
    (ex.gap, lambda a: np.asarray(a).max(axis=(1, 2)), "MAX pooling"),
    (ex.gap, lambda a: np.asarray(a).sum(axis=(1, 2)), "H * W"),
    (ex.gap, lambda a: np.asarray(a).mean(axis=1), "one of the two spatial axes"),
    (ex.gap, lambda a: np.asarray(a).mean(axis=(1, 2, 3)), "channel axis"),
    (ex.gap, lambda a: np.asarray(a).mean(axis=(0, 1, 2)), "batch axis"),
    (ex.gap, lambda a: np.asarray(a).mean(axis=(1, 2)) + 0.01, "differ"),
    # CAM (02)
    (ex.cam, lambda a, w, c: np.maximum(ref.my_cam(a, w, c), 0), "no ReLU"),
    (ex.cam, lambda a, w, c: ref.my_cam(a, w, c) / a.shape[-1], "weighted *sum*"),
    (ex.cam, lambda a, w, c: np.asarray(a) @ np.asarray(w), "shape"),
    (ex.cam, lambda a, w, c: np.asarray(a).mean(-1) * np.asarray(w)[:, c].sum(), "own feature map"),
    (ex.cam, _normalised_cam, "normalised"),
    (ex.cam, lambda a, w, c: ref.my_cam(a, w, 0), "for class 1"),
    (ex.cam, lambda a, w, c: np.asarray(w)[c] @ a, "your code raised"),
    # box (02)
    (ex.box, lambda h: (lambda b: (b[1], b[0], b[3], b[2]))(ref.my_box(h)), "swapped"),
    (ex.box, lambda h: (lambda b: (b[0], b[1], b[2] - 1, b[3] - 1))(ref.my_box(h)), "exclusive"),
    (ex.box, lambda h: ct.box_from_map(h, 0.5), "0.5 x max"),
    (ex.box, lambda h: (0, 0, 1), "4 integers"),
]

STUBS = [
    (ex.peak, lambda heatmap, image_size: None),
    (ex.gap, lambda feature_maps: None),
    (ex.cam, lambda feature_maps, dense_kernel, class_index: None),
    (ex.box, lambda heatmap: None),
]


@pytest.mark.parametrize("exercise", [ex.peak, ex.gap, ex.cam, ex.box], ids=lambda e: e.title)
def test_reference_solution_passes(exercise):
    passed, message = exercise.evaluate(getattr(ref, exercise.function))
    assert passed, message
    assert "correct" in message


def test_reference_gap_matches_keras_layer():
    import keras

    maps = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype(np.float32)
    keras_gap = np.asarray(keras.layers.GlobalAveragePooling2D()(maps))
    np.testing.assert_allclose(ref.my_gap(maps), keras_gap, atol=1e-6)


def test_reference_peak_agrees_with_camtutor_peak():
    import camtutor as ct

    heat = np.random.default_rng(1).normal(size=(4, 8))
    assert ref.my_peak(heat, 64) == ct.peak(heat, 64)


@pytest.mark.parametrize("exercise, answer, expected_words", MISTAKES, ids=lambda v: v.title if isinstance(v, ex.Exercise) else None)
def test_typical_mistake_gets_a_message_naming_it(exercise, answer, expected_words):
    passed, message = exercise.evaluate(answer)
    assert not passed
    assert expected_words in message


@pytest.mark.parametrize("exercise, stub", STUBS, ids=lambda v: v.title if isinstance(v, ex.Exercise) else "")
def test_notebook_stub_gets_nothing_yet_without_the_answer(exercise, stub):
    for answer in (None, stub):
        passed, message = exercise.evaluate(answer)
        assert not passed and "nothing to check yet" in message.lower()
        assert "axis=(1, 2)" not in message and "@" not in message


def test_check_prints_without_the_answer(capsys):
    ex.gap.check(lambda a: np.asarray(a).max(axis=(1, 2)))
    out = capsys.readouterr().out
    assert "not yet" in out and "mean(axis=(1, 2))" not in out
