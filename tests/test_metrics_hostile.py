"""camtutor.metrics under hostile arguments: every public function refuses bad input with a CamTutorError
that names the fix, before numpy, OpenCV, scipy or TensorFlow sees it, and nothing allocates without bound.

Rows: (case, call, substring of the message that names the fix). Every row raised a raw TypeError,
ValueError, cv2.error or MemoryError (or gave a silent answer) before the checks were added.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import camtutor as ct
from camtutor import metrics

MAPS = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
MASKS = np.zeros((2, 16, 16), bool)
MASKS[:, 4:8, 4:8] = True
BOXES = np.array([[4, 4, 8, 8], [2, 2, 12, 10]])
IMAGE = np.zeros((4, 4, 3), np.float32)
MISSING = np.eye(4, dtype=bool)


@pytest.fixture(scope="module")
def tiny():
    """An 8x8 GAP model (64 pixels per image), small enough that every refused call would otherwise run."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


ROWS = [
    # sizes: resize_maps, similarity, box_iou share one parser and one bound
    ("resize to -3", lambda: metrics.resize_maps(MAPS, -3), "positive"),
    ("resize to 0", lambda: metrics.resize_maps(MAPS, 0), "positive"),
    ("resize to (0, 5)", lambda: metrics.resize_maps(MAPS, (0, 5)), "positive"),
    ("resize to True", lambda: metrics.resize_maps(MAPS, True), "size=224"),
    ("resize to (2.5, 3)", lambda: metrics.resize_maps(MAPS, (2.5, 3)), "size=224"),
    ("resize to 10**6 (a 10**12-pixel map)", lambda: metrics.resize_maps(MAPS, 10**6), "pixels"),
    ("complex maps", lambda: metrics.resize_maps(MAPS + 1j, 4), "real"),
    ("similarity size 0", lambda: metrics.similarity(MAPS, MAPS, size=0), "positive"),
    ("similarity size -5", lambda: metrics.similarity(MAPS, MAPS, size=-5), "positive"),
    ("similarity size 10**9", lambda: metrics.similarity(MAPS, MAPS, size=10**9), "pixels"),
    ("box_iou size 0", lambda: metrics.box_iou(MAPS, BOXES, size=0), "positive"),
    ("box_iou size -1", lambda: metrics.box_iou(MAPS, BOXES, size=-1), "positive"),
    ("box_iou threshold '0.2'", lambda: metrics.box_iou(MAPS, BOXES, size=16, threshold="0.2"), "(0, 1]"),
    ("box_iou threshold None", lambda: metrics.box_iou(MAPS, BOXES, size=16, threshold=None), "(0, 1]"),
    ("box_iou string boxes", lambda: metrics.box_iou(MAPS, np.array([list("abcd")] * 2), size=16), "int"),
    ("box_iou NaN boxes", lambda: metrics.box_iou(MAPS, np.full((2, 4), np.nan), size=16), "int"),
    ("box_iou inverted box", lambda: metrics.box_iou(MAPS, np.array([[8, 8, 4, 4]] * 2), size=16), "x0 < x1"),
    ("box_iou box outside the image", lambda: metrics.box_iou(MAPS, BOXES, size=10), "size=(H, W)"),
    ("box_iou without size, boxes beyond the maps", lambda: metrics.box_iou(MAPS, BOXES), "size=(H, W)"),
    # the pointing game's tolerance
    ("pointing tolerance '1'", lambda: metrics.pointing_game(MAPS, MASKS, tolerance="1"), "tolerance=15"),
    ("pointing tolerance None", lambda: metrics.pointing_game(MAPS, MASKS, tolerance=None), "tolerance=15"),
    ("pointing tolerance [1]", lambda: metrics.pointing_game(MAPS, MASKS, tolerance=[1]), "tolerance=15"),
    ("pointing tolerance True", lambda: metrics.pointing_game(MAPS, MASKS, tolerance=True), "tolerance=15"),
    # intervals
    ("rate confidence '0.9'", lambda: metrics.rate_interval(np.array([True]), confidence="0.9"), "0.95"),
    ("bootstrap string values", lambda: metrics.bootstrap_interval(np.array(["a", "b"])), "numbers"),
    ("bootstrap n 10**12", lambda: metrics.bootstrap_interval(np.ones(100), n=10**12), "at most"),
    ("bootstrap n True", lambda: metrics.bootstrap_interval(np.ones(3), n=True), "int >= 1"),
    ("bootstrap seed 'a'", lambda: metrics.bootstrap_interval(np.ones(3), seed="a"), "seed"),
    ("bootstrap seed -1", lambda: metrics.bootstrap_interval(np.ones(3), seed=-1), "seed"),
    ("bootstrap confidence '0.9'", lambda: metrics.bootstrap_interval(np.ones(3), confidence="0.9"), "0.95"),
    ("bootstrap string weights", lambda: metrics.bootstrap_interval(np.ones(3), weights=np.array(["a"] * 3)), "weights"),
    # ROAD's imputation
    ("impute string image", lambda: metrics.linear_imputation("abc", MISSING), "numeric"),
    ("impute noise '1'", lambda: metrics.linear_imputation(IMAGE, MISSING, noise="1"), "noise=0.01"),
    ("impute noise None", lambda: metrics.linear_imputation(IMAGE, MISSING, noise=None), "noise=0.01"),
    ("impute seed 'a'", lambda: metrics.linear_imputation(IMAGE, MISSING, seed="a"), "seed"),
    ("impute seed -1", lambda: metrics.linear_imputation(IMAGE, MISSING, seed=-1), "seed"),
    ("impute NaN image", lambda: metrics.linear_imputation(IMAGE + np.nan, MISSING), "NaN"),
]


@pytest.mark.parametrize("case, call, fix", ROWS, ids=[row[0] for row in ROWS])
def test_hostile_argument_is_a_camtutor_error_naming_the_fix(case, call, fix):
    with pytest.raises(ct.CamTutorError) as caught:
        call()
    assert fix in str(caught.value), f"{case}: {caught.value}"


MODEL_ROWS = [
    ("deletion steps 10**12", lambda m: metrics.deletion(m, np.zeros((1, 8, 8, 3)), MAPS[:1], 0, steps=10**12), "steps"),
    ("insertion steps 10**12", lambda m: metrics.insertion(m, np.zeros((1, 8, 8, 3)), MAPS[:1], 0, steps=10**12), "steps"),
    ("deletion steps above the 64 pixels", lambda m: metrics.deletion(m, np.zeros((1, 8, 8, 3)), MAPS[:1], 0, steps=65),
     "steps=64"),
    ("randomized_models seed 'a'", lambda m: next(metrics.randomized_models(m, seed="a")), "seed"),
    ("randomized_models seed 1.5", lambda m: next(metrics.randomized_models(m, seed=1.5)), "seed"),
    ("randomized_models layers=5", lambda m: next(metrics.randomized_models(m, layers=5)), "layer names"),
]


@pytest.mark.parametrize("case, call, fix", MODEL_ROWS, ids=[row[0] for row in MODEL_ROWS])
def test_hostile_argument_with_a_model_is_refused_before_the_model_runs(tiny, case, call, fix):
    with pytest.raises(ct.CamTutorError) as caught:
        call(tiny)
    assert fix in str(caught.value), f"{case}: {caught.value}"


def test_deletion_accepts_one_step_per_pixel(tiny):
    auc, curves = metrics.deletion(tiny, np.ones((1, 8, 8, 3), np.float32), MAPS[:1], 0, steps=64)
    assert curves.shape == (1, 65) and np.isfinite(auc).all()


def test_box_iou_without_size_takes_the_maps_size():
    heat = np.zeros((2, 16, 16), np.float32)
    heat[:, 4:8, 4:8] = 1.0
    np.testing.assert_allclose(metrics.box_iou(heat, BOXES), metrics.box_iou(heat, BOXES, size=16))
    assert metrics.box_iou(heat, BOXES).tolist()[0] == 1.0


def test_box_iou_still_accepts_the_size_it_always_took():
    np.testing.assert_allclose(metrics.box_iou(MAPS, BOXES, size=16), metrics.box_iou(MAPS, BOXES, size=(16, 16)))


def test_bootstrap_interval_is_unchanged_by_its_memory_bound():
    values = np.random.default_rng(4).random(3000)
    rng = np.random.default_rng(7)
    means = values[rng.integers(0, values.size, size=(4000, values.size))].mean(axis=1)
    expected = (values.mean(), *np.quantile(means, [0.025, 0.975]))
    np.testing.assert_allclose(metrics.bootstrap_interval(values, n=4000, seed=7), expected, rtol=0, atol=1e-12)
