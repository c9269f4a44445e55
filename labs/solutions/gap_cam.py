"""Notebooks 00 (peak of a map), 01 (global average pooling) and 02 (CAM, the 20 % box)."""

import numpy as np


def my_peak(heatmap, image_size):
    """(x, y) image pixel at the centre of the largest cell of a 2-D map (h, w), for a square image of side image_size."""
    heatmap = np.asarray(heatmap)
    row, col = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    cell_height, cell_width = image_size / heatmap.shape[0], image_size / heatmap.shape[1]
    return (int((col + 0.5) * cell_width), int((row + 0.5) * cell_height))


def my_gap(feature_maps):
    """Global average pooling: (B, H, W, K) -> (B, K), the mean over the H x W cells of each channel."""
    return np.asarray(feature_maps).mean(axis=(1, 2))


def my_cam(feature_maps, dense_kernel, class_index):
    """CAM of one class: M_c(x, y) = sum_k w_kc * f_k(x, y).

    feature_maps (B, h, w, K), dense_kernel (K, C), class_index an int -> maps (B, h, w).
    """
    weights = np.asarray(dense_kernel)[:, class_index]  # (K,): one weight per feature map
    return np.asarray(feature_maps) @ weights  # sum over the last axis K


def my_box(heatmap):
    """Bounding box (x0, y0, x1, y1), x1 and y1 exclusive, of the cells >= 0.2 * max of a 2-D map."""
    heatmap = np.asarray(heatmap)
    rows, cols = np.nonzero(heatmap >= 0.2 * heatmap.max())
    return (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
