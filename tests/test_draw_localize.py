"""Feature-map grids, box drawing, the batch localisation score, and drawing at bounded cost."""

from __future__ import annotations

import tracemalloc

import cv2
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import camtutor as ct  # noqa: E402
from camtutor.draw import colorize, draw_boxes, show_feature_maps  # noqa: E402
from camtutor.localize import boxes_from_maps, localization_scores  # noqa: E402


def test_show_feature_maps_draws_n_panels_with_means():
    maps = np.random.default_rng(0).uniform(0, 1, (5, 6, 20)).astype(np.float32)
    fig = show_feature_maps(maps, n=10, ncols=4)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 10
    assert drawn[3].get_title() == f"k=3, mean {maps[..., 3].mean():.2f}"
    plt.close(fig)


def test_show_feature_maps_needs_one_image():
    with pytest.raises(ct.CamTutorError, match="pick one"):
        show_feature_maps(np.zeros((2, 4, 4, 3)))


def test_draw_boxes_outlines_exclusive_box_on_a_copy():
    image = np.zeros((10, 12, 3), np.float32)
    out = draw_boxes(image, [(2, 3, 6, 8)], colors=[(255, 0, 0)])
    assert out.dtype == np.uint8 and out.shape == (10, 12, 3)
    red = (out[..., 0] == 255) & (out[..., 1] == 0)
    ys, xs = np.nonzero(red)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (2, 3, 6, 8)
    assert not red[5, 4]  # outline only
    assert image.max() == 0  # input untouched


def _blob_maps():
    maps = np.zeros((2, 8, 8), np.float32)
    maps[0, 2:4, 4:6] = 1.0  # cells (rows 2-3, cols 4-5) -> pixels x 16..24, y 8..16 at 32 px
    maps[1, 0:8, 0:8] = 0.0
    return maps


def test_boxes_from_maps_scales_to_image_size():
    boxes = boxes_from_maps(_blob_maps()[:1], size=8)
    assert boxes.tolist() == [[4, 2, 6, 4]]


def test_localization_scores_perfect_and_wrong():
    maps = _blob_maps()[:1]
    assert localization_scores(maps, np.array([[4, 2, 6, 4]]), size=8).tolist() == [1.0]
    far = localization_scores(maps, np.array([[0, 5, 2, 8]]), size=8)
    assert far.shape == (1,) and far[0] == 0.0


def test_localization_scores_empty_map_gives_whole_image():
    scores = localization_scores(np.zeros((1, 4, 4)), np.array([[0, 0, 8, 8]]), size=8)
    assert scores[0] == 1.0


def test_localization_scores_needs_one_box_per_map():
    with pytest.raises(ValueError, match="one true box per map"):
        localization_scores(_blob_maps(), np.array([[0, 0, 2, 2]]), size=8)


# --------------------------------------------------------------------------- drawing at bounded cost
_IMAGE = np.random.default_rng(0).random((12, 10, 3), dtype=np.float32)
_MAP = np.random.default_rng(1).random((4, 5), dtype=np.float32)

DRAWING_REFUSALS = [
    # (case, call, substring of the CamTutorError)
    ("overlay alpha 2", lambda: ct.overlay(_IMAGE, _MAP, alpha=2), "[0, 1]"),
    ("overlay alpha -0.1", lambda: ct.overlay(_IMAGE, _MAP, alpha=-0.1), "[0, 1]"),
    ("overlay alpha NaN", lambda: ct.overlay(_IMAGE, _MAP, alpha=float("nan")), "alpha"),
    ("overlay alpha text", lambda: ct.overlay(_IMAGE, _MAP, alpha="0.4"), "alpha"),
    ("overlay of a batch of maps", lambda: ct.overlay(_IMAGE, _MAP[None]), "maps[0]"),
    ("overlay of an empty map", lambda: ct.overlay(_IMAGE, np.zeros((0, 3))), "empty"),
    ("normalize of an empty array", lambda: ct.normalize(np.zeros((0, 4, 4))), "empty"),
    ("normalize of a 1-D array", lambda: ct.normalize(np.arange(5.0)), "(H, W)"),
    ("upsample to -5", lambda: ct.upsample(_MAP, -5), "size"),
    ("upsample to 0", lambda: ct.upsample(_MAP, (0, 8)), "size"),
    ("upsample to 2.5", lambda: ct.upsample(_MAP, 2.5), "size"),
    ("upsample of empty maps", lambda: ct.upsample(np.zeros((2, 0, 3)), 8), "empty"),
]


@pytest.mark.parametrize("case, call, fix", DRAWING_REFUSALS, ids=[row[0] for row in DRAWING_REFUSALS])
def test_drawing_refuses_bad_arguments_with_a_camtutor_error(case, call, fix):
    with pytest.raises(ct.CamTutorError) as raised:
        call()
    assert fix in str(raised.value)


def test_overlay_says_that_it_normalises_each_map_itself():
    doc = " ".join(ct.overlay.__doc__.split())
    assert "normalises the map itself" in doc and "each map on its own" in doc


def test_colorize_is_matplotlibs_colormap_without_the_float64_copy():
    heat = np.random.default_rng(2).normal(size=(33, 17)).astype(np.float32)
    heat[0, 0], heat[1, 1] = heat.max() + 1, heat.min() - 1  # exact 0 and 1 after normalising
    for cmap in ("jet", "viridis", "tab10"):
        expected = (matplotlib.colormaps[cmap](ct.normalize(heat))[..., :3] * 255.0 + 0.5).astype(np.uint8)
        np.testing.assert_array_equal(colorize(heat, cmap), expected)


def test_normalize_gives_the_same_numbers_for_numpy_and_tensors():
    import tensorflow as tf

    maps = np.random.default_rng(3).normal(size=(3, 7, 6)).astype(np.float32)
    maps[1] = 2.5  # a constant map
    np.testing.assert_array_equal(ct.normalize(maps), ct.maths.normalize(tf.constant(maps)).numpy())


def test_overlay_of_a_small_image_is_unchanged_by_the_size_bound():
    base = (_IMAGE * 255 + 0.5).astype(np.uint8).astype(np.float32)
    heat = cv2.resize(_MAP, (10, 12), interpolation=cv2.INTER_LINEAR)
    colored = (matplotlib.colormaps["jet"](ct.normalize(heat))[..., :3] * 255.0 + 0.5).astype(np.uint8)
    expected = np.clip(0.6 * base + 0.4 * colored.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(ct.overlay(_IMAGE, _MAP, alpha=0.4), expected)


def test_overlay_of_a_huge_image_is_drawn_at_a_bounded_size_and_memory():
    image = np.zeros((6000, 4000, 3), np.uint8)
    image[:, :2000, 0] = 255  # left half red
    heat = np.zeros((8, 8), np.float32)
    heat[:, 4:] = 1.0  # hot on the right
    tracemalloc.start()
    out = ct.overlay(image, heat, alpha=0.5)
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out.shape == (ct.draw.MAX_OVERLAY_SIDE, round(4000 * ct.draw.MAX_OVERLAY_SIDE / 6000), 3)
    assert peak_bytes < 200 * 2**20, f"overlay allocated {peak_bytes / 2**20:.0f} MB"  # the image itself is 69 MB
    jet = (matplotlib.colormaps["jet"]([0.0, 1.0])[:, :3] * 255 + 0.5).astype(int)  # coldest, hottest
    np.testing.assert_allclose(out[:, :500].mean(axis=(0, 1)), (np.array([255, 0, 0]) + jet[0]) / 2, atol=1)
    np.testing.assert_allclose(out[:, -500:].mean(axis=(0, 1)), jet[1] / 2, atol=1)
    assert ct.overlay(image[:100, :50], heat, max_side=None).shape == (100, 50, 3)
