"""Turn maps into pictures: colour overlays and figure grids. No CAM math here."""

from __future__ import annotations

from typing import Sequence

import math

import cv2
import matplotlib
import numpy as np

from camtutor.errors import CamTutorError, ImageError
from camtutor.mapops import normalize, upsample

#: Longest side, in pixels, of an overlay :func:`overlay` draws by default; larger images are shrunk
#: (area averaging) first, so drawing costs O(MAX_OVERLAY_SIDE^2) memory, whatever the image's size.
MAX_OVERLAY_SIDE = 2048


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """An RGB image (H, W, 3) or grayscale (H, W) / (H, W, 1), float in [0, 1] or uint8 -> uint8 (H, W, 3)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ImageError(f"expected an RGB image (H, W, 3) or grayscale (H, W), got shape {img.shape}")
    if img.dtype == np.uint8:
        return img
    return (np.clip(img.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _color_table(cmap: str) -> np.ndarray:
    """The colormap's N colours as uint8 RGB (N, 3), exactly matplotlib's ``cmap(i)`` for i = 0..N-1."""
    colormap = matplotlib.colormaps[cmap]
    return (colormap(np.arange(colormap.N))[:, :3] * 255.0 + 0.5).astype(np.uint8)


def colorize(heatmap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """A 2-D map -> uint8 RGB (H, W, 3) through a matplotlib colormap, after per-map [0, 1] normalisation.

    Same colours as ``matplotlib.colormaps[cmap](normalize(heatmap))`` (value v gets colour
    ``min(floor(v * N), N - 1)`` of the N-colour map), looked up in a uint8 table: no float64 RGBA copy.
    """
    values = np.asarray(normalize(np.asarray(heatmap, dtype=np.float32)))
    table = _color_table(cmap)
    index = np.minimum((values * np.float32(len(table))).astype(np.intp), len(table) - 1)
    return table[index]


def check_alpha(alpha: object) -> float:
    """``alpha`` (a heatmap's opacity) as a float in [0, 1]; CamTutorError for NaN, out of range or not a number."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) or not (
        math.isfinite(float(alpha)) and 0.0 <= float(alpha) <= 1.0
    ):
        raise CamTutorError(f"alpha (the heatmap's opacity) must be a number in [0, 1], got {alpha!r}; e.g. alpha=0.4")
    return float(alpha)


def _bounded(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink an image (H, W, ...) by area averaging so that its longest side is at most ``max_side``."""
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    source = image if image.dtype in (np.uint8, np.float32, np.float64) else image.astype(np.float32)
    out = cv2.resize(np.ascontiguousarray(source), size, interpolation=cv2.INTER_AREA)
    return out.reshape(size[1], size[0], *image.shape[2:])


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    alpha: float = 0.4,
    cmap: str = "jet",
    *,
    max_side: int | None = MAX_OVERLAY_SIDE,
) -> np.ndarray:
    """Blend a coloured heatmap over an image: RGB uint8 (H, W, 3) at the image's size.

    ``image`` is RGB (H, W, 3) float in [0, 1] or uint8; ``heatmap`` is a 2-D map
    of any size and range. **overlay normalises the map itself**: it is resized
    bilinearly to the picture, then scaled to [0, 1] by its own min and max
    (:func:`camtutor.normalize`, each map on its own), so two overlays' colours are
    not comparable; a constant map shows as the colormap's lowest colour, never
    as NaN. ``alpha`` in [0, 1] is the heatmap's opacity.

    Bounded cost: an image whose longest side exceeds ``max_side`` (default
    :data:`MAX_OVERLAY_SIDE` = 2048) is first shrunk by area averaging so that its
    longest side is ``max_side``, and the overlay has that smaller size; pass
    ``max_side=None`` for the full size (memory grows with it).

    Raises:
        camtutor.CamTutorError: ``alpha`` outside [0, 1] or NaN, a heatmap that is not 2-D, is empty or
            holds NaN or inf (refused, never drawn blank).
    """
    alpha = check_alpha(alpha)
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise CamTutorError(f"heatmap must be 2-D (h, w), got shape {heat.shape}; pick one map, e.g. maps[0]")
    if heat.size == 0:
        raise CamTutorError(f"heatmap is empty (shape {heat.shape}); pass a map with at least one cell")
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) or max_side < 1):
        raise CamTutorError(f"max_side must be a positive int or None, got {max_side!r}")
    picture = np.asarray(image)
    if picture.ndim >= 2:
        picture = _bounded(picture, max_side)
    base = to_uint8_rgb(picture)
    heat = upsample(heat, base.shape[:2])
    colored = colorize(heat, cmap)
    blended = base.astype(np.float32)  # float32 in place: (1 - alpha) * base + alpha * colour, rounded
    blended *= np.float32(1.0 - alpha)
    blended += np.float32(alpha) * colored.astype(np.float32)
    blended += np.float32(0.5)
    return np.clip(blended, 0, 255, out=blended).astype(np.uint8)


def show_grid(
    panels: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 4,
    size: float = 2.4,
    cmap: str | None = None,
    colorbar: bool = False,
    suptitle: str | None = None,
):
    """Draw images or 2-D maps in a grid and return the matplotlib Figure (axes off, titles under each)."""
    import matplotlib.pyplot as plt

    n = len(panels)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= n:
            continue
        panel = np.asarray(panels[index])
        shown = ax.imshow(panel, cmap=cmap if panel.ndim == 2 else None)
        if colorbar and panel.ndim == 2:
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        if titles is not None and index < len(titles):
            ax.set_title(titles[index], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_overlays(
    images: np.ndarray,
    maps: np.ndarray,
    titles: Sequence[str] | None = None,
    *,
    alpha: float = 0.4,
    cmap: str = "jet",
    ncols: int = 4,
    size: float = 2.4,
    suptitle: str | None = None,
):
    """One overlay per image: ``images`` (B, H, W, 3), ``maps`` (B, h, w). Returns the Figure."""
    panels = [overlay(image, heat, alpha=alpha, cmap=cmap) for image, heat in zip(images, maps)]
    return show_grid(panels, titles, ncols=ncols, size=size, suptitle=suptitle)


def show_feature_maps(
    feature_maps: np.ndarray,
    n: int = 16,
    *,
    ncols: int = 8,
    size: float = 1.2,
    cmap: str = "viridis",
    suptitle: str | None = None,
):
    """Draw the first ``n`` channels of one image's feature maps (h, w, K) as a grid; return the Figure.

    Each panel is titled with its channel index k and its GAP value, the mean of the map,
    and shares one colour scale (0 to the largest value shown) so bright means large everywhere.
    """
    import matplotlib.pyplot as plt

    maps = np.asarray(feature_maps, dtype=np.float32)
    if maps.ndim != 3:
        raise CamTutorError(
            f"feature_maps must be one image's maps (h, w, K), got shape {maps.shape}; pick one, e.g. A[0]")
    count = max(1, min(int(n), maps.shape[-1]))
    ncols = max(1, min(ncols, count))
    nrows = (count + ncols - 1) // ncols
    high = float(maps[..., :count].max()) or 1.0
    low = min(0.0, float(maps[..., :count].min()))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < count:
            ax.imshow(maps[..., k], cmap=cmap, vmin=low, vmax=high)
            ax.set_title(f"k={k}, mean {maps[..., k].mean():.2f}", fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def draw_boxes(
    image: np.ndarray,
    boxes: Sequence[Sequence[int]],
    colors: Sequence[tuple[int, int, int]] = ((0, 255, 0), (255, 0, 0), (0, 128, 255)),
    thickness: int = 1,
) -> np.ndarray:
    """Draw ``(x0, y0, x1, y1)`` pixel boxes (x1, y1 exclusive) on a copy of ``image``: uint8 RGB (H, W, 3).

    Box i gets ``colors[i % len(colors)]`` (default: green, red, blue), e.g. true box then predicted box.
    """
    canvas = to_uint8_rgb(image).copy()
    for index, box in enumerate(boxes):
        x0, y0, x1, y1 = (int(v) for v in box)
        color = tuple(int(c) for c in colors[index % len(colors)])
        cv2.rectangle(canvas, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), color, thickness)
    return canvas
