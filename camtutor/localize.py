"""Weakly supervised localisation from a map, as in the CAM paper (Zhou et al. 2016, Sec. 3.1).

Threshold the map at a fraction of its max (20% in the paper), keep the
largest connected region, and take its bounding box. Boxes are pixel boxes
``(x0, y0, x1, y1)`` with x1, y1 exclusive, like :mod:`camtutor.data`.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from camtutor.errors import CamTutorError
from camtutor.images import parse_size
from camtutor.mapops import upsample


def box_from_map(heatmap: np.ndarray, threshold: float = 0.2, size: int | Sequence[int] | None = None) -> tuple[int, int, int, int]:
    """Bounding box of the largest region above ``threshold`` x max of a 2-D map.

    The map is first resized to ``size`` = (H, W) when given (the image size).
    As in the paper, the cut is ``threshold * max`` of the map itself, so
    negative values never count. A map with no positive value gives the whole
    image as box.
    """
    heat = np.asarray(heatmap, dtype=np.float32)
    if size is not None:
        heat = upsample(heat, size)
    height, width = heat.shape
    top = float(heat.max())
    mask = (heat >= threshold * top) & (heat > 0)
    if not mask.any():
        return (0, 0, width, height)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    largest = 1 + int(np.argmax(stats[1:count, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(stats[largest, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    return (x, y, x + w, y + h)


def iou(box_a: Sequence[int], box_b: Sequence[int]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes, in [0, 1]."""
    ax0, ay0, ax1, ay1 = box_a
    bx0, by0, bx1, by1 = box_b
    inter = max(0, min(ax1, bx1) - max(ax0, bx0)) * max(0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return float(inter / union) if union > 0 else 0.0


def peak(heatmap: np.ndarray, size: int | Sequence[int] | None = None) -> tuple[int, int]:
    """(x, y) pixel of the map's maximum, in image coordinates when ``size`` = (H, W) is given.

    A cell of an (h, w) map covers (H/h) x (W/w) pixels; the peak is reported at the cell's centre.
    """
    heat = np.asarray(heatmap, dtype=np.float32)
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    if size is None:
        return int(col), int(row)
    height, width = parse_size(size)
    return int((col + 0.5) * width / heat.shape[1]), int((row + 0.5) * height / heat.shape[0])


def boxes_from_maps(maps: np.ndarray, size: int | Sequence[int], threshold: float = 0.2) -> np.ndarray:
    """:func:`box_from_map` for a batch of maps (B, h, w): boxes (B, 4) int64 in image pixels of ``size``."""
    return np.array([box_from_map(m, threshold, size) for m in np.asarray(maps, dtype=np.float32)], dtype=np.int64).reshape(-1, 4)


def localization_scores(
    maps: np.ndarray, boxes: np.ndarray, size: int | Sequence[int], threshold: float = 0.2
) -> np.ndarray:
    """IoU of the box found in each map with the true box: (B,) floats in [0, 1].

    ``maps`` (B, h, w) are upsampled to ``size`` = the image size (H, W), thresholded with
    :func:`box_from_map` and compared with ``boxes`` (B, 4) ``(x0, y0, x1, y1)``. The CAM paper
    counts a localisation as correct when IoU >= 0.5: ``np.mean(scores >= 0.5)``.
    The threshold is a fraction of each map's max, as in the paper.
    """
    predicted = boxes_from_maps(maps, size, threshold)
    true = np.asarray(boxes).reshape(-1, 4)
    if len(true) != len(predicted):
        raise CamTutorError(f"got {len(predicted)} maps but {len(true)} boxes; pass one true box per map")
    return np.array([iou(p, t) for p, t in zip(predicted, true)], dtype=np.float64)
