"""Notebooks 09 (the pointing game) and 10 (Spearman rank correlation of two maps)."""

import numpy as np


def my_pointing_game(maps, masks):
    """The pointing game without tolerance: (B, h, w) maps, (B, H, W) bool masks -> (B,) bool hits."""
    from camtutor.metrics import resize_maps

    masks = np.asarray(masks, dtype=bool)
    big = resize_maps(np.asarray(maps, dtype=np.float32), masks.shape[1:])     # (B, H, W)
    flat = big.reshape(len(big), -1)
    peak = flat.argmax(axis=1)                                                  # first maximum, row-major
    rows, cols = np.unravel_index(peak, masks.shape[1:])                        # (row = y, col = x)
    hits = masks[np.arange(len(masks)), rows, cols]
    constant = flat.max(axis=1) == flat.min(axis=1)                             # points nowhere
    return hits & ~constant


def my_spearman(maps_a, maps_b):
    """Spearman rank correlation per image: (B, h, w) and (B, h, w) -> (B,) in [-1, 1], average ranks for ties."""
    from scipy.stats import rankdata

    a = np.asarray(maps_a, dtype=np.float64).reshape(len(maps_a), -1)
    b = np.asarray(maps_b, dtype=np.float64).reshape(len(maps_b), -1)
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)          # ranks within each image, ties averaged
    ra, rb = ra - ra.mean(axis=1, keepdims=True), rb - rb.mean(axis=1, keepdims=True)
    return (ra * rb).sum(axis=1) / np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
