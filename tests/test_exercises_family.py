"""The notebook 11 exercise xgradcam: the reference passes and equals the library; typical mistakes are named."""

from __future__ import annotations

import numpy as np

from camtutor import maths
from camtutor.exercises import family as ex
from labs.solutions import family as ref


def _evaluate(function):
    return ex.xgradcam.evaluate(function)


def test_reference_passes_and_equals_the_library_rule():
    passed, message = _evaluate(ref.my_xgradcam_weights)
    assert passed, message
    rng = np.random.default_rng(0)
    A = np.maximum(rng.normal(size=(2, 4, 4, 3)), 0).astype(np.float32)
    A[1, ..., 0] = 0.0
    G = rng.normal(size=A.shape).astype(np.float32)
    np.testing.assert_allclose(ref.my_xgradcam_weights(A, G), maths.xgrad_cam_weights(A, G), atol=1e-6)
    assert ref.my_xgradcam_weights(A, G)[1, 0, 0, 0] == 0.0


def test_typical_mistakes_get_specific_feedback():
    assert "returned None" in _evaluate(lambda A, G: None)[1]
    assert "Grad-CAM's weights" in _evaluate(lambda A, G: G.mean(axis=(1, 2), keepdims=True))[1]
    assert "whole batch" in _evaluate(lambda A, G: (A * G).sum(axis=(1, 2), keepdims=True) / A.sum(axis=(0, 1, 2), keepdims=True))[1]
    with np.errstate(invalid="ignore"):
        no_guard = _evaluate(lambda A, G: (A * G).sum(axis=(1, 2), keepdims=True) / A.sum(axis=(1, 2), keepdims=True))
    assert not no_guard[0] and "NaN" in no_guard[1]
    flat = _evaluate(lambda A, G: ref.my_xgradcam_weights(A, G)[:, 0, 0, :])
    assert not flat[0] and "keepdims" in flat[1]
    passed, message = _evaluate(lambda A, G: ref.my_xgradcam_weights(A, G) * 2)
    assert not passed and "differ" in message


def test_last_hint_is_not_the_whole_answer():
    assert "(A * G)" not in ex.xgradcam.hints[-1]
