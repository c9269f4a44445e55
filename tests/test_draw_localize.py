"""Feature-map grids, box drawing and the batch localisation score."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from camtutor.draw import draw_boxes, show_feature_maps  # noqa: E402
from camtutor.localize import boxes_from_maps, localization_scores  # noqa: E402


def test_show_feature_maps_draws_n_panels_with_means():
    maps = np.random.default_rng(0).uniform(0, 1, (5, 6, 20)).astype(np.float32)
    fig = show_feature_maps(maps, n=10, ncols=4)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 10
    assert drawn[3].get_title() == f"k=3, mean {maps[..., 3].mean():.2f}"
    plt.close(fig)


def test_show_feature_maps_needs_one_image():
    with pytest.raises(ValueError, match="pick one"):
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
