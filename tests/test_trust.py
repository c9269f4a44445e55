"""camtutor.trust: score tables with intervals, the two-object layout, the randomisation summary."""

from __future__ import annotations

import numpy as np
import pytest

import camtutor as ct
from camtutor import metrics, trust


def _toy(n=40, size=16, seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), bool)
    boxes = np.zeros((n, 4), int)
    for i in range(n):
        y, x = rng.integers(0, size - 4, 2)
        masks[i, y:y + 4, x:x + 4] = True
        boxes[i] = (x, y, x + 4, y + 4)
    return masks, boxes


def test_scores_of_a_perfect_and_a_blind_map():
    masks, boxes = _toy()
    table = trust.localisation_scores({"mask": masks.astype(float), "zeros": np.zeros(masks.shape)}, masks, boxes)
    assert table["mask"]["pointing"][0] == 1.0 and table["mask"]["energy"][0] == pytest.approx(1.0)
    assert table["mask"]["iou"][0] == pytest.approx(1.0)
    assert table["zeros"]["pointing"] == pytest.approx(metrics.rate_interval(np.zeros(40, bool)))
    assert table["zeros"]["energy"][0] == 0.0
    assert table["(area)"]["energy"][0] == pytest.approx(16 / 256)


def test_intervals_are_wilson_and_bootstrap_and_contain_the_value():
    masks, boxes = _toy()
    rng = np.random.default_rng(1)
    heat = rng.random(masks.shape)
    row = trust.localisation_scores({"r": heat}, masks, boxes)["r"]
    assert row["pointing"] == pytest.approx(metrics.rate_interval(metrics.pointing_game(heat, masks)))
    assert row["energy"] == pytest.approx(metrics.bootstrap_interval(metrics.energy_pointing_game(heat, masks)))
    for value, low, high in row.values():
        assert low <= value <= high


def test_groups_resample_images_not_rows():
    masks, boxes = _toy(40)
    heat = masks.astype(float)
    heat[::2] = 0                                       # rows 0, 2, ... miss
    groups = np.arange(40) // 2                         # each image: one hit, one miss -> no spread
    row = trust.localisation_scores({"h": heat}, masks, boxes, groups=groups)["h"]
    assert row["pointing"] == pytest.approx((0.5, 0.5, 0.5))
    lone = trust.localisation_scores({"h": heat}, masks, boxes)["h"]
    assert lone["pointing"][2] - lone["pointing"][1] > 0.2  # independent rows: a real interval
    with pytest.raises(ct.CamTutorError, match="same number of rows"):
        trust.localisation_scores({"h": heat}, masks, boxes, groups=np.r_[np.zeros(3), np.arange(37) + 1])


def test_two_object_rows_layout():
    data = ct.data.two_shapes(3, seed=4)
    images, classes, masks, boxes, groups = trust.two_object_rows(data)
    assert images.shape[0] == classes.shape[0] == masks.shape[0] == boxes.shape[0] == 6
    np.testing.assert_array_equal(classes, np.r_[data.labels[:, 0], data.labels[:, 1]])
    np.testing.assert_array_equal(masks[4], data.masks[1, 1])
    np.testing.assert_array_equal(images[4], data.images[1])
    np.testing.assert_array_equal(groups, [0, 1, 2, 0, 1, 2])


def test_discrimination_scores_by_hand():
    # 3 images x 2 objects (rows k * 3 + i), 4x4 masks: object 0 on the left half, object 1 on the right half
    left = np.zeros((4, 4), bool)
    left[:, :2] = True
    masks = np.stack([left] * 3 + [~left] * 3)
    other = np.stack([~left] * 3 + [left] * 3)
    groups = np.tile(np.arange(3), 2)
    peak = lambda y, x: np.pad(np.ones((1, 1)), ((y, 3 - y), (x, 3 - x)))   # 4x4 map, its max at (y, x)
    on_left, on_right, nowhere = peak(0, 0), peak(0, 3), np.zeros((4, 4))
    # a "model" map: image 0 right for both objects; image 1: object 0 right, object 1 wrong; image 2: misses both
    model = np.stack([on_left, on_left, nowhere, on_right, on_left, nowhere])
    # a class-blind map: the same map for both objects of an image (image 0 left, 1 right, 2 left)
    blind = np.stack([on_left, on_right, on_left] * 2)
    table = trust.discrimination_scores({"model": model, "blind": blind}, masks, other, groups=groups)
    # model: right 3 of 6 rows, other 1, either 4; discrimination 3 / 4
    assert table["model"]["right"][0] == pytest.approx(3 / 6) and table["model"]["other"][0] == pytest.approx(1 / 6)
    assert table["model"]["either"][0] == pytest.approx(4 / 6)
    assert table["model"]["discrimination"][0] == pytest.approx(3 / 4)
    # class-blind: every peak on an object is right for one row, wrong for the other -> exactly 0.5, no spread
    assert table["blind"]["either"][0] == 1.0 and table["blind"]["discrimination"] == pytest.approx((0.5, 0.5, 0.5))
    for row in table.values():
        for value, low, high in row.values():
            assert low <= value <= high
    with pytest.raises(ct.CamTutorError, match="overlap"):
        trust.discrimination_scores({"m": model}, masks, masks, groups=groups)
    with pytest.raises(ct.CamTutorError, match="undefined"):
        trust.discrimination_scores({"zeros": np.zeros((6, 4, 4))}, masks, other, groups=groups)


def test_format_table_lists_every_row_and_blank_cells():
    text = trust.format_table({"a": {"pointing": (0.5, 0.25, 0.75)}, "(area)": {"energy": (0.1, 0.05, 0.15)}})
    lines = text.splitlines()
    assert len(lines) == 3 and "0.500 [0.250, 0.750]" in lines[1] and "0.100 [0.050, 0.150]" in lines[2]


def test_baseline_maps_and_unknown_method():
    images = ct.data.shapes(2, seed=0).images
    maps = trust.baseline_maps(images)
    assert set(maps) == set(ct.baselines.BASELINES)
    assert all(m.shape == (2, 64, 64) for m in maps.values())
    with pytest.raises(ct.CamTutorError, match="unknown method"):
        trust.method_maps(None, images, 0, methods=("LIME",))


def test_methods_agree_at_the_gap_layer_and_randomisation_decorrelates():
    model = ct.models.load("shapes")
    data = ct.data.shapes(8, seed=5)
    maps = trust.method_maps(model, data.images, data.labels, layer="last_conv")
    np.testing.assert_array_equal(metrics.pointing_game(maps["CAM"], data.masks),
                                  metrics.pointing_game(maps["HiResCAM"], data.masks))

    def explain(m, x, c):
        return ct.grad_cam(m, x, c, layer="last_conv")

    paths, curves, kept = trust.randomisation_similarity(model, data.images, data.labels, explain, keep=("conv1",))
    assert paths[0] == "predictions" and paths[-1] == "conv1" and len(paths) == 5
    assert set(curves) == {"spearman", "spearman_abs", "ssim", "constant"} and curves["ssim"].shape == (5,)
    assert kept["trained"].shape == kept["conv1"].shape == (8, 16, 16)
    assert np.all((curves["constant"] >= 0) & (curves["constant"] <= 1))
    assert curves["ssim"][-1] < 0.5   # every layer random: the maps no longer look like the trained model's


def test_method_maps_read_the_registry_and_keep_each_method_s_relu():
    model = ct.models.load("shapes")
    data = ct.data.shapes(4, seed=6)
    maps = trust.method_maps(model, data.images, data.labels, layer="last_conv", methods=("CAM", "Grad-CAM", "LayerCAM"))
    np.testing.assert_allclose(maps["CAM"], ct.cam(model, data.images, data.labels, layer="last_conv"), atol=1e-6)
    assert (maps["CAM"] < 0).any()  # the paper's CAM has no ReLU
    np.testing.assert_allclose(maps["Grad-CAM"], ct.grad_cam(model, data.images, data.labels, layer="last_conv"), atol=1e-6)
    np.testing.assert_allclose(maps["LayerCAM"], ct.heatmap(model, data.images, data.labels, method="layercam"), atol=1e-6)


def test_positive_over_max_keeps_zero_where_min_max_would_not():
    cam = np.array([[[-3.0, 0.0], [3.0, 6.0]], [[-1.0, -2.0], [-1.0, -1.0]]], np.float32)
    shown = trust.positive_over_max(cam)
    np.testing.assert_allclose(shown[0], [[0, 0], [0.5, 1]])
    assert np.all(shown[1] == 0)  # nothing positive: nothing shown
    np.testing.assert_allclose(ct.normalize(cam)[0], [[0, 1 / 3], [2 / 3, 1]], atol=1e-6)  # min-max lifts it
    with pytest.raises(ct.CamTutorError, match="B, h, w"):
        trust.positive_over_max(cam[0])


def test_peak_in_frame():
    maps = np.zeros((4, 16, 16), np.float32)
    maps[0, 0, 8] = 1  # top row
    maps[1, 8, 15] = 1  # right column
    maps[2, 8, 8] = 1  # centre
    # maps[3] is constant: no peak
    assert trust.peak_in_frame(maps, 16, width=2).tolist() == [True, True, False, False]
    small = np.zeros((1, 4, 4), np.float32)
    small[0, 1, 1] = 1  # cell (1, 1) of 4 -> pixels 4..7 of 16 (bilinear), outside a 2-px frame
    assert not trust.peak_in_frame(small, 16, width=2)[0]
    with pytest.raises(ct.CamTutorError, match="width"):
        trust.peak_in_frame(maps, 16, width=8)
