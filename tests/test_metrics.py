"""camtutor.metrics: every score against a case small enough to count by hand, edge cases, batching, randomisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import camtutor as ct
from camtutor import metrics
from camtutor.localize import localization_scores

# 1-D bilinear weights of sample 0 of a two-sample signal [1, 0] enlarged 4x (half-pixel centres, clamped edges):
# output x = (j + 0.5) / 4 - 0.5 = -0.375, -0.125, 0.125, ..., 1.375.
PROFILE = np.array([1, 1, 0.875, 0.625, 0.375, 0.125, 0, 0])


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# --------------------------------------------------------------------------- resizing
def test_resize_maps_matches_camtutor_upsample_and_hand_profile():
    maps = np.random.default_rng(0).random((5, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(metrics.resize_maps(maps, 64), ct.upsample(maps, 64), atol=1e-6)
    np.testing.assert_allclose(metrics.resize_maps(maps, (50, 70)), ct.upsample(maps, (50, 70)), atol=1e-6)
    corner = metrics.resize_maps(np.array([[[1, 0], [0, 0]]], np.float32), 8)[0]
    np.testing.assert_allclose(corner, np.outer(PROFILE, PROFILE), atol=1e-6)


# --------------------------------------------------------------------------- pointing game
def test_pointing_game_hit_and_miss_on_a_4x4_map():
    heat = np.zeros((4, 4), np.float32)
    heat[1, 2] = 5.0
    heat[3, 3] = 4.0
    on, off = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    on[1, 2] = True
    off[3, 3] = True  # the second-highest pixel does not count
    hits = metrics.pointing_game(np.stack([heat, heat]), np.stack([on, off]))
    assert hits.dtype == bool and hits.tolist() == [True, False]


def test_pointing_game_tolerance_is_a_euclidean_radius():
    heat = np.zeros((1, 4, 4), np.float32)
    heat[0, 0, 0] = 1.0
    diagonal = np.zeros((1, 4, 4), bool)
    diagonal[0, 1, 1] = True  # sqrt(2) px from the maximum
    two_right = np.zeros((1, 4, 4), bool)
    two_right[0, 0, 2] = True  # 2 px from the maximum
    assert not metrics.pointing_game(heat, diagonal, tolerance=1)[0]  # a 3x3 square dilation would hit
    assert metrics.pointing_game(heat, diagonal, tolerance=1.5)[0]
    assert not metrics.pointing_game(heat, two_right, tolerance=1.9)[0]
    assert metrics.pointing_game(heat, two_right, tolerance=2)[0]


def test_pointing_game_ties_take_the_first_maximum_in_row_major_order():
    heat = np.zeros((1, 4, 4), np.float32)
    heat[0, 0, 3] = heat[0, 2, 1] = 1.0
    first, second = np.zeros((1, 4, 4), bool), np.zeros((1, 4, 4), bool)
    first[0, 0, 3] = True
    second[0, 2, 1] = True
    assert metrics.pointing_game(heat, first)[0]
    assert not metrics.pointing_game(heat, second)[0]


def test_pointing_game_constant_and_zero_maps_are_misses_even_on_pixel_0_0():
    everywhere = np.ones((3, 4, 4), bool)
    maps = np.stack([np.zeros((4, 4)), np.full((4, 4), 7.0), np.full((4, 4), -2.0)]).astype(np.float32)
    assert metrics.pointing_game(maps, everywhere, tolerance=10).tolist() == [False, False, False]


def test_pointing_game_upsamples_a_low_resolution_map_to_the_mask():
    heat = np.array([[[0, 1], [0, 0]]], np.float32)  # enlarged to 8x8, the maximum plateau is rows 0-1, cols 6-7
    top_right, bottom_left = np.zeros((1, 8, 8), bool), np.zeros((1, 8, 8), bool)
    top_right[0, :4, 4:] = True
    bottom_left[0, 4:, :4] = True
    assert metrics.pointing_game(heat, top_right)[0]
    assert not metrics.pointing_game(heat, bottom_left)[0]
    only_6 = np.zeros((1, 8, 8), bool)
    only_6[0, 0, 6] = True  # first maximal pixel of the plateau
    assert metrics.pointing_game(heat, only_6)[0]


def test_pointing_game_batch_equals_one_at_a_time():
    rng = np.random.default_rng(1)
    maps = rng.random((6, 5, 5)).astype(np.float32)
    masks = rng.random((6, 20, 20)) > 0.7
    batch = metrics.pointing_game(maps, masks, tolerance=2)
    single = [metrics.pointing_game(maps[i : i + 1], masks[i : i + 1], tolerance=2)[0] for i in range(6)]
    assert batch.tolist() == single


def test_pointing_game_refuses_bad_input():
    maps, masks = np.zeros((2, 4, 4)), np.ones((2, 4, 4), bool)
    with pytest.raises(ct.CamTutorError, match="one mask per map"):
        metrics.pointing_game(maps, masks[:1])
    with pytest.raises(ct.CamTutorError, match="empty"):
        metrics.pointing_game(maps, np.zeros((2, 4, 4), bool))
    with pytest.raises(ct.CamTutorError, match=r"maps\[None\]"):
        metrics.pointing_game(maps[0], masks)
    with pytest.raises(ct.CamTutorError, match="NaN"):
        metrics.pointing_game(np.full((2, 4, 4), np.nan), masks)
    with pytest.raises(ct.CamTutorError, match="tolerance"):
        metrics.pointing_game(maps, masks, tolerance=-1)


# --------------------------------------------------------------------------- energy pointing game
def test_energy_counts_positive_mass_inside_the_mask():
    heat = np.array([[1, 2, 0, 0], [0, -3, 0, 0], [0, 0, 4, 0], [0, 0, 0, 1]], np.float32)
    mask = np.zeros((4, 4), bool)
    mask[:2] = True  # positive mass inside: 1 + 2 = 3; in all: 1 + 2 + 4 + 1 = 8 (the -3 is clipped)
    np.testing.assert_allclose(metrics.energy_pointing_game(heat[None], mask[None]), [3 / 8])


def test_energy_of_zero_and_negative_maps_is_0_and_uniform_is_the_area():
    mask = np.zeros((3, 4, 4), bool)
    mask[:, :1] = True
    maps = np.stack([np.zeros((4, 4)), -np.ones((4, 4)), np.ones((4, 4))]).astype(np.float32)
    np.testing.assert_allclose(metrics.energy_pointing_game(maps, mask), [0.0, 0.0, 0.25])


def test_energy_upsamples_a_low_resolution_map():
    heat = np.array([[[1, 0], [0, 0]]], np.float32)
    mask = np.zeros((1, 8, 8), bool)
    mask[0, :4, :4] = True  # mass sum(PROFILE[:4])^2 = 3.5^2 of sum(PROFILE)^2 = 4^2
    np.testing.assert_allclose(metrics.energy_pointing_game(heat, mask), [3.5**2 / 16], rtol=1e-6)


def test_energy_batch_equals_one_at_a_time():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(5, 6, 6)).astype(np.float32)
    masks = rng.random((5, 12, 12)) > 0.5
    single = [metrics.energy_pointing_game(maps[i : i + 1], masks[i : i + 1])[0] for i in range(5)]
    np.testing.assert_allclose(metrics.energy_pointing_game(maps, masks), single)


# --------------------------------------------------------------------------- box IoU
def test_box_iou_on_a_blob_and_two_regions():
    heat = np.zeros((2, 8, 8), np.float32)
    heat[0, 2:5, 1:4] = 1.0  # box (1, 2, 4, 5)
    heat[1, 2:5, 1:4] = 1.0
    heat[1, 7, 7] = 1.0  # a smaller second region above the threshold: ignored
    boxes = np.array([[1, 2, 4, 5], [1, 2, 4, 8]])  # 9 px inside an 18 px box: IoU 0.5
    np.testing.assert_allclose(metrics.box_iou(heat, boxes, size=8), [1.0, 0.5])


def test_box_iou_upsamples_to_the_image_size_by_hand():
    heat = np.array([[[0, 1], [0, 0]]], np.float32)
    # enlarged to 8x8: value = PROFILE[i] * PROFILE[::-1][j]; >= 0.2 where PROFILE[i] >= 0.2 (i < 5) and j >= 3
    assert metrics.box_iou(heat, np.array([[3, 0, 8, 5]]), size=8).tolist() == [1.0]


def test_box_iou_agrees_with_localization_scores():
    rng = np.random.default_rng(3)
    maps = rng.random((6, 8, 8)).astype(np.float32) ** 4
    boxes = np.array([[4, 4, 20, 24]] * 6)
    np.testing.assert_allclose(metrics.box_iou(maps, boxes, size=32), localization_scores(maps, boxes, 32), atol=1e-12)
    with pytest.raises(ct.CamTutorError, match="one true box per map"):
        metrics.box_iou(maps, boxes[:2], size=32)


# --------------------------------------------------------------------------- a model with an exact probability
W, B = 4.0, -2.0


def mean_model(channels: int = 1, size: int = 4) -> keras.Model:
    """p(class 1) = sigmoid(W * mean(image) + B): softmax of logits (0, W * mean + B)."""
    inputs = keras.Input((size, size, channels))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(2, activation="softmax")
    outputs = dense(pooled)
    model = keras.Model(inputs, outputs)
    dense.set_weights([np.tile(np.array([[0.0, W / channels]], np.float32), (channels, 1)), np.array([0.0, B], np.float32)])
    return model


@pytest.fixture(scope="module")
def linear():
    return mean_model()


def p1(images: np.ndarray) -> np.ndarray:
    return sigmoid(W * images.reshape(len(images), -1).mean(axis=1) + B)


def row_image_and_map():
    image = np.repeat(np.array([0.1, 0.9, 0.4, 0.6], np.float32)[:, None], 4, axis=1)[None, ..., None]  # rows
    heat = np.arange(16, 0, -1, dtype=np.float32).reshape(1, 4, 4)  # row-major descending: row 0 first
    return image, heat


def test_deletion_curve_and_auc_by_hand(linear):
    image, heat = row_image_and_map()
    auc, curves = metrics.deletion(linear, image, heat, 1, steps=4, baseline="zeros")
    rows = np.array([0.1, 0.9, 0.4, 0.6])
    means = [rows[k:].sum() / 4 for k in range(5)]  # step k deletes rows 0 .. k-1 (4 pixels per step)
    expected = sigmoid(W * np.array(means) + B)
    np.testing.assert_allclose(curves[0], expected, atol=1e-6)
    np.testing.assert_allclose(auc, [(expected[0] / 2 + expected[1:4].sum() + expected[4] / 2) / 4], atol=1e-6)
    assert curves.shape == (1, 5) and auc.shape == (1,)


def test_insertion_curve_by_hand_and_class_0(linear):
    image, heat = row_image_and_map()
    auc, curves = metrics.insertion(linear, image, heat, 0, steps=4)  # default baseline: zeros
    rows = np.array([0.1, 0.9, 0.4, 0.6])
    expected = 1.0 - sigmoid(W * np.array([rows[:k].sum() / 4 for k in range(5)]) + B)
    np.testing.assert_allclose(curves[0], expected, atol=1e-6)
    np.testing.assert_allclose(auc, [(expected[0] / 2 + expected[1:4].sum() + expected[4] / 2) / 4], atol=1e-6)  # trapezoid, dx 1/4


def test_steps_that_do_not_divide_the_pixels_round_the_counts(linear):
    image = np.ones((1, 4, 4, 1), np.float32)
    heat = np.random.default_rng(4).random((1, 4, 4)).astype(np.float32)
    _, curves = metrics.deletion(linear, image, heat, 1, steps=3)
    removed = np.array([0, 5, 11, 16])  # round(k * 16 / 3)
    np.testing.assert_allclose(curves[0], sigmoid(W * (16 - removed) / 16 + B), atol=1e-6)


def test_baselines_mean_blur_and_array(linear):
    rng = np.random.default_rng(5)
    images = rng.random((2, 4, 4, 1)).astype(np.float32)
    heat = rng.random((2, 4, 4)).astype(np.float32)
    image, rows_first = row_image_and_map()
    rows = np.array([0.1, 0.9, 0.4, 0.6])  # mean colour 0.5 replaces the first k rows
    _, curve = metrics.deletion(linear, image, rows_first, 1, steps=4, baseline="mean")
    expected = sigmoid(W * np.array([(rows[k:].sum() + 0.5 * k) / 4 for k in range(5)]) + B)
    np.testing.assert_allclose(curve[0], expected, atol=1e-6)
    assert curve[0, 0] == pytest.approx(curve[0, -1], abs=1e-6)  # the mean image has the image's mean
    _, ins = metrics.insertion(linear, images, heat, 1, steps=4, baseline="blur")
    np.testing.assert_allclose(ins[:, -1], p1(images), atol=1e-6)  # ends at the image
    grey = np.full((4, 4, 1), 0.5, np.float32)
    _, dele = metrics.deletion(linear, images, heat, 1, steps=4, baseline=grey)
    np.testing.assert_allclose(dele[:, -1], p1(grey[None])[0], atol=1e-6)  # ends at the baseline
    with pytest.raises(ct.CamTutorError, match="baseline"):
        metrics.deletion(linear, images, heat, 1, baseline="noise")
    assert metrics.DELETION_BASELINES == ("zeros", "blur", "mean", "impute")
    with pytest.raises(ct.CamTutorError, match="shape"):
        metrics.deletion(linear, images, heat, 1, baseline=np.zeros((3, 3, 1)))


def test_linear_imputation_solves_road_s_neighbour_equations():
    rng = np.random.default_rng(7)
    image = rng.random((9, 8, 2)).astype(np.float32)
    missing = np.zeros((9, 8), bool)
    missing[2:6, 3:7] = True  # an inner block
    missing[0, 0] = missing[8, 5] = True  # a corner (3 neighbours) and an edge pixel (5)
    out = metrics.linear_imputation(image, missing, noise=0)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_array_equal(out[~missing], image[~missing])  # known pixels untouched
    weights = {(dy, dx): 1 / 6 if 0 in (dy, dx) else 1 / 12 for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    del weights[0, 0]
    for y, x in zip(*np.nonzero(missing)):  # each filled pixel: the weighted mean of its neighbours
        inside = [(w, out[y + dy, x + dx]) for (dy, dx), w in weights.items()
                  if 0 <= y + dy < 9 and 0 <= x + dx < 8]
        expected = sum(w * v for w, v in inside) / sum(w for w, _ in inside)
        np.testing.assert_allclose(out[y, x], expected, atol=1e-5)
    yy, xx = np.mgrid[0:9, 0:8]
    ramp = np.stack([yy / 8, xx / 7], axis=-1).astype(np.float32)  # a linear image is continued exactly
    inner = np.zeros_like(missing)
    inner[2:6, 3:7] = True  # (at the border the neighbours are one-sided, and a ramp is not continued)
    np.testing.assert_allclose(metrics.linear_imputation(ramp, inner, noise=0), ramp, atol=1e-4)


def test_linear_imputation_noise_all_missing_and_bad_input():
    rng = np.random.default_rng(8)
    image = rng.random((16, 16, 3)).astype(np.float32)
    missing = rng.random((16, 16)) < 0.5
    plain = metrics.linear_imputation(image, missing, noise=0)
    noisy = metrics.linear_imputation(image, missing, noise=0.01, seed=3)
    np.testing.assert_array_equal(noisy, metrics.linear_imputation(image, missing, noise=0.01, seed=3))
    assert 0.008 < np.std(noisy[missing] - plain[missing]) < 0.012 and np.all(noisy[~missing] == image[~missing])
    full = metrics.linear_imputation(image, np.ones((16, 16), bool), noise=0)
    np.testing.assert_allclose(full, np.broadcast_to(image.mean(axis=(0, 1)), image.shape), atol=1e-6)
    with pytest.raises(ct.CamTutorError, match="missing"):
        metrics.linear_imputation(image, missing[:8])
    with pytest.raises(ct.CamTutorError, match="noise"):
        metrics.linear_imputation(image, missing, noise=-1)


def test_impute_baseline_fills_each_step_from_what_is_left(linear):
    image, rows_first = row_image_and_map()
    auc, curve = metrics.deletion(linear, image, rows_first, 1, steps=4, baseline="impute")
    # rows 0..k-1 removed: continued from row k, the nearest known row (a constant fill per row block)
    filled = [metrics.linear_imputation(image[0], np.arange(4)[:, None].repeat(4, 1) < k, seed=(0, 0, k))
              for k in range(5)]
    np.testing.assert_allclose(curve[0], [p1(f[None])[0] for f in filled], atol=1e-6)
    assert abs(filled[1][0, 0, 0] - 0.9) < 0.05 and abs(filled[4].mean() - 0.5) < 0.01  # row 1 continued; mean
    again, _ = metrics.deletion(linear, image, rows_first, 1, steps=4, baseline="impute", batch_size=2)
    np.testing.assert_allclose(again, auc, atol=1e-7)  # the noise does not depend on the batching
    top = metrics.remove_top(image, rows_first, 0.25, baseline="impute")
    np.testing.assert_array_equal(top[0, 1:], image[0, 1:])  # only the first row (the top 25 %) is refilled
    _, ins = metrics.insertion(linear, image, rows_first, 1, steps=4, baseline="impute")
    np.testing.assert_allclose(ins[0, -1], p1(image)[0], atol=1e-6)


def test_remove_top_is_one_point_of_the_deletion_curve(linear):
    rng = np.random.default_rng(9)
    images = rng.random((3, 4, 4, 1)).astype(np.float32)
    heat = rng.random((3, 2, 2)).astype(np.float32)
    _, curves = metrics.deletion(linear, images, heat, 1, steps=4, baseline="mean")
    for k in range(5):
        edited = metrics.remove_top(images, heat, k / 4, baseline="mean")
        np.testing.assert_allclose(p1(edited), curves[:, k], atol=1e-6)
    black = metrics.remove_top(images, heat, 0.5)
    assert np.all((black == 0).sum(axis=(1, 2, 3)) >= 8)
    with pytest.raises(ct.CamTutorError, match="fraction"):
        metrics.remove_top(images, heat, 1.5)


def test_blur_baseline_is_a_gaussian_of_sigma_5_px_at_224_px():
    image = np.zeros((1, 224, 224, 1), np.float32)
    image[0, 112, 112] = 1.0
    base = metrics._baseline(image, "blur")
    assert base.shape == image.shape
    assert base[0, 112, 112, 0] == pytest.approx(1 / (2 * np.pi * 5**2), rel=0.02)  # peak of a 2-D Gaussian, sigma 5
    assert base[0, 112, 117, 0] == pytest.approx(base[0, 112, 112, 0] * np.exp(-0.5), rel=0.02)  # one sigma away
    assert base.sum() == pytest.approx(1.0, rel=1e-3)


def test_deletion_batch_equals_one_at_a_time_and_chunking_does_not_matter(linear):
    rng = np.random.default_rng(6)
    images = rng.random((3, 4, 4, 1)).astype(np.float32)
    heat = rng.random((3, 2, 2)).astype(np.float32)
    classes = [1, 0, 1]
    auc, curves = metrics.deletion(linear, images, heat, classes, steps=8)
    for i in range(3):
        a, c = metrics.deletion(linear, images[i : i + 1], heat[i : i + 1], classes[i], steps=8)
        np.testing.assert_allclose(c[0], curves[i], atol=1e-6)
        np.testing.assert_allclose(a[0], auc[i], atol=1e-6)
    for batch_size in (1, 7):
        np.testing.assert_allclose(metrics.deletion(linear, images, heat, classes, steps=8, batch_size=batch_size)[1], curves, atol=1e-6)


def test_low_resolution_and_constant_maps(linear):
    rng = np.random.default_rng(7)
    images = rng.random((2, 4, 4, 1)).astype(np.float32)
    low = rng.random((2, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(
        metrics.deletion(linear, images, low, 1, steps=16)[1],
        metrics.deletion(linear, images, ct.upsample(low, 4), 1, steps=16)[1],
        atol=1e-6,
    )
    raster = np.broadcast_to(np.arange(16, 0, -1, dtype=np.float32).reshape(1, 4, 4), (2, 4, 4))
    np.testing.assert_allclose(  # a constant map deletes in row-major order
        metrics.deletion(linear, images, np.zeros((2, 4, 4)), 1, steps=16)[1],
        metrics.deletion(linear, images, raster, 1, steps=16)[1],
        atol=1e-6,
    )


def test_all_steps_of_all_images_run_in_a_few_model_calls(linear, monkeypatch):
    calls = []
    real = metrics.class_probabilities

    def counting(model, images):
        calls.append(len(images))
        return real(model, images)

    monkeypatch.setattr(metrics, "class_probabilities", counting)
    images = np.random.default_rng(8).random((5, 4, 4, 1)).astype(np.float32)
    heat = np.random.default_rng(9).random((5, 4, 4)).astype(np.float32)
    metrics.insertion(linear, images, heat, 1, steps=10)
    assert calls == [55]
    calls.clear()
    metrics.deletion(linear, images, heat, 1, steps=10, batch_size=20)
    assert calls == [20, 20, 15]
    calls.clear()
    large = mean_model(channels=3, size=224)  # default: at most 32 MB of input per call, 55 images of 224x224x3
    metrics.deletion(large, np.zeros((1, 224, 224, 3), np.float32), np.zeros((1, 7, 7)), 1, steps=60)
    assert calls == [55, 6]
    with pytest.raises(ct.CamTutorError, match="batch_size"):
        metrics.average_drop(linear, images, heat, 1, batch_size=0)


def test_deletion_refuses_bad_input_before_the_model_runs(linear):
    images = np.zeros((2, 4, 4, 1), np.float32)
    with pytest.raises(ct.CamTutorError, match="one map per image"):
        metrics.deletion(linear, images, np.zeros((3, 4, 4)), 1)
    with pytest.raises(ct.TargetError, match="out of range"):
        metrics.deletion(linear, images, np.zeros((2, 4, 4)), 5)
    with pytest.raises(ct.ImageError):
        metrics.deletion(linear, np.zeros((2, 5, 5, 1)), np.zeros((2, 4, 4)), 1)
    with pytest.raises(ct.CamTutorError, match="steps"):
        metrics.insertion(linear, images, np.zeros((2, 4, 4)), 1, steps=0)


# --------------------------------------------------------------------------- Average Drop, Increase in Confidence
def test_average_drop_and_increase_in_confidence_by_hand(linear):
    images = np.ones((3, 4, 4, 1), np.float32)
    half = np.zeros((4, 4), np.float32)
    half[:2] = 3.0  # normalised: top half 1, bottom 0 -> E has mean 0.5
    maps = np.stack([half, half, np.full((4, 4), 2.0, np.float32)])  # the constant map -> L = 0 -> E = 0
    classes = [1, 0, 1]
    y = np.array([sigmoid(W + B), 1 - sigmoid(W + B), sigmoid(W + B)])
    o = np.array([sigmoid(0.5 * W + B), 1 - sigmoid(0.5 * W + B), sigmoid(B)])
    drop = metrics.average_drop(linear, images, maps, classes)
    np.testing.assert_allclose(drop, np.maximum(0, y - o) / y * 100, atol=1e-4)
    assert drop[1] == 0.0 and drop[0] > 0
    assert metrics.increase_in_confidence(linear, images, maps, classes).tolist() == [False, True, False]


def test_average_drop_upsamples_and_batches(linear):
    rng = np.random.default_rng(10)
    images = rng.random((4, 4, 4, 1)).astype(np.float32)
    low = rng.random((4, 2, 2)).astype(np.float32)
    drop = metrics.average_drop(linear, images, low, 1, batch_size=3)
    np.testing.assert_allclose(drop, metrics.average_drop(linear, images, ct.upsample(low, 4), 1), atol=1e-4)
    single = [metrics.average_drop(linear, images[i : i + 1], low[i : i + 1], 1)[0] for i in range(4)]
    np.testing.assert_allclose(drop, single, atol=1e-4)


# --------------------------------------------------------------------------- randomisation
def nested_model() -> keras.Model:
    inner_in = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv_a")(inner_in)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_b")(x)
    backbone = keras.Model(inner_in, x, name="backbone")
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(backbone(inputs))
    outputs = keras.layers.Dense(
        2, activation="softmax", name="head", bias_initializer=keras.initializers.Constant(0.25)
    )(x)
    model = keras.Model(inputs, outputs, name="nested")
    rng = np.random.default_rng(11)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])  # "trained"
    return model


PATHS = ["head", "backbone/conv_b", "backbone/conv_a"]


def changed(model, original) -> list[bool]:
    """Per layer, input to output: does any of its weights differ from the original's?"""
    layers = dict(metrics._weighted_layers(model))
    base = dict(metrics._weighted_layers(original))
    return [
        any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(layers[p].weights, base[p].weights))
        for p in PATHS[::-1]
    ]


def test_cascading_randomises_one_more_layer_each_step_top_down_and_leaves_the_user_model_alone():
    model = nested_model()
    before = [w.copy() for w in model.get_weights()]
    steps = []
    for path, randomised in metrics.randomized_models(model, mode="cascading", seed=0):
        assert randomised is not model
        steps.append((path, changed(randomised, model)))
    assert [p for p, _ in steps] == PATHS
    assert [c for _, c in steps] == [[False, False, True], [False, True, True], [True, True, True]]
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))  # bitwise unchanged


def test_independent_randomises_exactly_one_layer_per_step():
    model = nested_model()
    found = [(p, changed(m, model)) for p, m in metrics.randomized_models(model, mode="independent")]
    assert found == [("head", [False, False, True]), ("backbone/conv_b", [False, True, False]), ("backbone/conv_a", [True, False, False])]


def test_randomisation_uses_the_layers_own_initializers_and_the_seed():
    model = nested_model()
    _, first = next(metrics.randomized_models(model, seed=3))
    head = first.get_layer("head")
    np.testing.assert_array_equal(head.bias.numpy(), [0.25, 0.25])  # Constant(0.25), its own initializer
    kernel = head.kernel.numpy().copy()
    limit = np.sqrt(6 / (4 + 2))  # glorot_uniform
    assert np.abs(kernel).max() <= limit and not np.array_equal(kernel, model.get_layer("head").kernel.numpy())
    _, again = next(metrics.randomized_models(model, seed=3))
    _, other = next(metrics.randomized_models(model, seed=4))
    np.testing.assert_array_equal(again.get_layer("head").kernel.numpy(), kernel)
    assert not np.array_equal(other.get_layer("head").kernel.numpy(), kernel)


def test_a_weight_without_an_initializer_gets_a_normal_with_its_std():
    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.factor = self.add_weight(shape=(400,), initializer="ones", name="factor")

        def call(self, x):
            return x * keras.ops.mean(self.factor)

    inputs = keras.Input((2, 2, 1))
    scale = Scale(name="scale")
    model = keras.Model(inputs, scale(keras.layers.Flatten()(inputs)))
    scale.factor.assign(np.random.default_rng(12).normal(0, 2.0, 400).astype(np.float32))
    with keras.utils.custom_object_scope({"Scale": Scale}):
        path, randomised = next(metrics.randomized_models(model))
    new = randomised.get_layer("scale").factor.numpy()
    assert path == "scale" and 1.6 < new.std() < 2.4 and not np.allclose(new, scale.factor.numpy())


def test_layers_subset_copies_and_bad_names():
    model = nested_model()
    assert [p for p, _ in metrics.randomized_models(model, layers=["conv_a", "head"])] == ["head", "backbone/conv_a"]
    kept = list(metrics.randomized_models(model, copies=True))
    assert len({id(m) for _, m in kept}) == 3
    assert [changed(m, model) for _, m in kept] == [[False, False, True], [False, True, True], [True, True, True]]
    with pytest.raises(ct.CamTutorError, match="not a layer with weights"):
        metrics.randomized_models(model, layers=["gap"])  # at the call, before any iteration
    with pytest.raises(ct.CamTutorError, match="mode"):
        metrics.randomized_models(model, mode="all")
    with pytest.raises(ct.ModelError, match="keras.Model"):
        metrics.randomized_models("model.keras")


def test_grad_cam_sees_the_weights_changed_in_place():
    model = nested_model()
    images = np.random.default_rng(13).random((2, 8, 8, 1)).astype(np.float32)
    trained = ct.grad_cam(model, images, 1, layer="conv_b", relu=False)
    seen = []
    for _, randomised in metrics.randomized_models(model, layers=["conv_b", "conv_a"]):
        maps = ct.grad_cam(randomised, images, 1, layer="conv_b", relu=False)
        expected_model = keras.models.clone_model(randomised)
        expected_model.set_weights(randomised.get_weights())
        np.testing.assert_allclose(maps, ct.grad_cam(expected_model, images, 1, layer="conv_b", relu=False), atol=1e-5)
        seen.append(maps)
    assert not np.allclose(seen[0], trained) and not np.allclose(seen[1], seen[0])


# --------------------------------------------------------------------------- similarity
def test_similarity_by_hand():
    a = np.arange(9, dtype=np.float32).reshape(1, 3, 3)
    b = a.copy()
    b[0, 2, 1], b[0, 2, 2] = 8, 7  # one adjacent swap: rho = 1 - 6 * 2 / (9 * 80)
    result = metrics.similarity(np.concatenate([a, a, a]), np.concatenate([a, b, 4 - a]))
    np.testing.assert_allclose(result["spearman"], [1.0, 1 - 12 / 720, -1.0], atol=1e-12)
    assert result["spearman_abs"][0] == pytest.approx(1.0)
    assert result["ssim"][0] == pytest.approx(1.0) and result["ssim"][2] < 0
    sym = np.array([[[-2, -1, 0], [1, 2, 3], [-3, 4, -4]]], np.float32)
    flipped = metrics.similarity(sym, -sym)
    assert flipped["spearman"][0] == pytest.approx(-1.0) and flipped["spearman_abs"][0] == pytest.approx(1.0)


def test_similarity_ssim_uses_data_range_1_after_normalisation():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(14)
    a, b = rng.random((2, 9, 9)), rng.random((2, 9, 9))
    result = metrics.similarity(a * 100, b - 5)  # scale and offset do not matter after min-max
    norm = lambda m: (m - m.min()) / (m.max() - m.min())  # noqa: E731
    expected = [structural_similarity(norm(x), norm(y), data_range=1.0, win_size=7) for x, y in zip(a, b)]
    np.testing.assert_allclose(result["ssim"], expected, atol=1e-5)


def test_similarity_resizes_constant_is_nan_and_batches():
    rng = np.random.default_rng(15)
    low = rng.random((3, 4, 4)).astype(np.float32)
    high = ct.upsample(low, 8)
    same = metrics.similarity(low, high)
    np.testing.assert_allclose(same["spearman"], 1.0, atol=1e-6)
    assert np.isnan(metrics.similarity(np.zeros((1, 8, 8)), high[:1])["spearman"][0])
    single = [metrics.similarity(low[i : i + 1], high[::-1][i : i + 1])["ssim"][0] for i in range(3)]
    np.testing.assert_allclose(metrics.similarity(low, high[::-1])["ssim"], single)


# --------------------------------------------------------------------------- intervals
def test_wilson_interval_matches_published_values():
    rate, low, high = metrics.rate_interval(np.array([True] * 8 + [False] * 2))
    assert rate == 0.8 and low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    rate, low, high = metrics.rate_interval(np.zeros(10, bool))
    assert (rate, low) == (0.0, 0.0) and high == pytest.approx(0.2775, abs=1e-4)
    rate, low, high = metrics.rate_interval(np.array([1] * 16 + [0] * 4), confidence=0.95)
    assert (round(low, 2), round(high, 2)) == (0.58, 0.92)  # the example in the module docstring
    assert metrics.rate_interval(np.ones(10, bool), confidence=0.5)[1] > metrics.rate_interval(np.ones(10, bool))[1]
    with pytest.raises(ct.CamTutorError, match="0/1"):
        metrics.rate_interval(np.array([0.2, 0.9]))


def test_bootstrap_interval():
    values = np.array([0.0, 1.0] * 50)
    mean, low, high = metrics.bootstrap_interval(values)
    assert mean == 0.5 and 0.38 < low < 0.45 and 0.55 < high < 0.62  # about 0.5 -+ 1.96 * 0.05
    assert metrics.bootstrap_interval(values, seed=0) == (mean, low, high)
    assert metrics.bootstrap_interval(np.full(7, 3.0)) == (3.0, 3.0, 3.0)
    with pytest.raises(ct.CamTutorError, match="NaN"):
        metrics.bootstrap_interval(np.array([1.0, np.nan]))


def test_bootstrap_interval_weighted_is_the_pooled_share():
    # per image: 2 of 2, 0 of 1, 1 of 2 hits -> pooled share (2 + 0 + 1) / (2 + 1 + 2) = 0.6, not the mean 0.5
    share, low, high = metrics.bootstrap_interval(np.array([1.0, 0.0, 0.5]), weights=np.array([2.0, 1.0, 2.0]))
    assert share == pytest.approx(0.6) and 0.0 <= low <= share <= high <= 1.0
    # a zero-weight value counts for nothing, whatever it is; equal weights give the plain mean and its interval
    assert metrics.bootstrap_interval(np.array([1.0, 0.0, 7.0]), weights=np.array([1.0, 1.0, 0.0]))[0] == 0.5
    values = np.array([0.0, 1.0] * 20)
    assert metrics.bootstrap_interval(values, weights=np.full(40, 3.0)) == pytest.approx(metrics.bootstrap_interval(values))
    for bad in (np.zeros(3), np.array([1.0, -1.0, 1.0]), np.ones(2)):
        with pytest.raises(ct.CamTutorError, match="weights"):
            metrics.bootstrap_interval(np.array([1.0, 0.0, 0.5]), weights=bad)
