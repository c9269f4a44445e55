"""camtutor.figures: signed maps keep their sign and put 0 at the centre of the colormap."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from camtutor import figures  # noqa: E402


def test_symmetric_limit():
    assert figures.symmetric_limit(np.array([[-3.0, 1.0], [0.5, 2.0]])) == 3.0
    assert figures.symmetric_limit(np.zeros((2, 2))) == 1.0


def test_signed_map_is_resized_not_normalised_with_symmetric_limits():
    image = np.full((8, 8, 3), 0.5, np.float32)
    heat = np.array([[-2.0, 1.0], [0.0, 0.5]], np.float32)
    fig, ax = plt.subplots()
    shown = figures.draw_signed(ax, image, heat, title="t")
    assert shown.get_array().shape == (8, 8)
    assert shown.get_clim() == (-2.0, 2.0)
    assert shown.get_array().min() < 0 < shown.get_array().max()
    assert ax.get_title() == "t"
    plt.close(fig)


def test_show_signed_grid_has_one_panel_and_colorbar_per_map():
    image = np.random.default_rng(0).uniform(size=(16, 16, 3)).astype(np.float32)
    maps = [np.ones((4, 4)), -np.ones((4, 4)), np.zeros((4, 4))]
    fig = figures.show_signed(image, maps, ["a", "b", "c"], ncols=2, suptitle="s")
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == ["a", "b", "c"]
    assert len(fig.axes) == 4 + 3  # 2x2 panels + 3 colorbars
    plt.close(fig)


def test_box_and_bars():
    fig, ax = plt.subplots()
    figures.draw_box(ax, (2, 3, 10, 12), label="A")
    (patch,) = ax.patches
    assert (patch.get_width(), patch.get_height()) == (8.0, 9.0)
    assert ax.texts[0].get_text() == "A"
    bars_ax = figures.show_weight_bars(np.array([0.5, -1.0, 2.0]), highlight=[2], title="w")
    heights = [bar.get_height() for bar in bars_ax.patches]
    np.testing.assert_allclose(heights, [0.5, -1.0, 2.0])
    assert bars_ax.patches[2].get_linewidth() == 1.5
    plt.close("all")
