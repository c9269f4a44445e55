"""Matplotlib helpers for the notebooks: signed maps on a diverging colormap, boxes, weight bars.

:mod:`camtutor.draw` blends *normalised* maps into images. The helpers here
keep the sign instead: a map without the ReLU has evidence for the class
(positive, red) and against it (negative, blue), drawn with symmetric colour
limits so that zero is always white. No CAM math here.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from camtutor.mapops import upsample


def symmetric_limit(heatmap: np.ndarray) -> float:
    """``max |heatmap|``, the colour limit that puts 0 in the middle of a diverging colormap (1.0 for an all-zero map)."""
    limit = float(np.max(np.abs(np.asarray(heatmap, dtype=np.float32))))
    return limit if limit > 0 else 1.0


def draw_signed(ax, image: np.ndarray, heatmap: np.ndarray, *, cmap: str = "RdBu_r", alpha: float = 0.65, title: str | None = None):
    """Draw a grey ``image`` (H, W, 3) in [0, 1] under a raw 2-D ``heatmap`` (h, w) with limits ``-m .. m``.

    The map is resized bilinearly to the image size, not normalised, so its
    sign survives. Returns the matplotlib image of the heatmap (for a colorbar).
    """
    picture = np.asarray(image, dtype=np.float32)
    grey = picture.mean(axis=-1) if picture.ndim == 3 else picture
    heat = np.asarray(upsample(np.asarray(heatmap, dtype=np.float32), grey.shape))
    limit = symmetric_limit(heat)
    ax.imshow(grey, cmap="gray", vmin=0.0, vmax=1.0)
    shown = ax.imshow(heat, cmap=cmap, vmin=-limit, vmax=limit, alpha=alpha)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return shown


def show_signed(
    image: np.ndarray,
    heatmaps: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 2,
    size: float = 2.6,
    cmap: str = "RdBu_r",
    suptitle: str | None = None,
):
    """Several raw maps of one image, each on a diverging colormap with symmetric limits and a colorbar.

    Returns the Figure. Red is evidence for the class, blue against, white 0.
    """
    import matplotlib.pyplot as plt

    n = len(heatmaps)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.25 * size * ncols, size * nrows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= n:
            continue
        title = titles[index] if titles is not None and index < len(titles) else None
        shown = draw_signed(ax, image, heatmaps[index], cmap=cmap, title=title)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def draw_box(ax, box: Sequence[int], color: str = "lime", label: str | None = None) -> None:
    """Outline a pixel box ``(x0, y0, x1, y1)`` (x1, y1 exclusive, as in :mod:`camtutor.data`) on ``ax``."""
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = (float(v) for v in box)
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=1.5))
    if label:
        ax.text(x0, y0 - 1.5, label, color=color, fontsize=8, va="bottom")


def show_weight_bars(weights: np.ndarray, *, title: str = "", ax=None, highlight: Sequence[int] = ()):
    """Bar chart of one weight per channel, (K,): positive red, negative blue, ``highlight`` outlined.

    Returns the Axes.
    """
    import matplotlib.pyplot as plt

    values = np.asarray(weights, dtype=np.float32).reshape(-1)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.4))
    colors = ["tab:red" if v > 0 else "tab:blue" for v in values]
    bars = ax.bar(np.arange(len(values)), values, color=colors)
    for k in highlight:
        bars[int(k)].set_edgecolor("black")
        bars[int(k)].set_linewidth(1.5)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("channel k")
    ax.set_title(title, fontsize=10)
    return ax
